//! What only a run has: the clients of the clouds and the nodes, the waits, ports and access
//! of the run's settings, and the asset directory. [`crate::actions`] binds the kinds with it;
//! the DAG builders never see it, so `loko graph` and `loko plan` connect to nothing.

use std::sync::Arc;
use std::time::Duration;

use engine::StepError;
use specs::DesiredCluster;

use crate::assets::AssetDir;
use crate::dns::Route53;
use crate::packet::{DevicePoller, DeviceSettings, PacketClient};
use crate::provider::netbooted::NetbootedRack;
use crate::provider::packet::PacketProvider;
use crate::ssh::Ssh;

/// The clients every remote step uses.
#[derive(Clone)]
pub struct Clients {
    pub machines: Machines,
    pub route53: Route53,
    pub ssh: Ssh,
}

/// Who provides the cluster's machines: the spec's `provider`.
#[derive(Clone)]
pub enum Machines {
    /// Packet's devices.
    Packet {
        client: Arc<PacketClient>,
        /// The one poller serving every waiting device step.
        poller: Arc<DevicePoller>,
    },
    /// A rack's machines and the run's boot server (`provider: redfish`).
    Rack(Arc<NetbootedRack>),
}

impl Machines {
    /// The Packet client and poller, for a device step; a rack's run has none (its DAG plans
    /// no device step, so this is a DAG and run that disagree).
    pub fn packet(
        &self,
        step: &str,
    ) -> Result<(&Arc<PacketClient>, &Arc<DevicePoller>), StepError> {
        match self {
            Machines::Packet { client, poller } => Ok((client, poller)),
            Machines::Rack(_) => Err(StepError::permanent(format!(
                "{step}: a Packet device step in the run of a rack (provider: redfish)"
            ))),
        }
    }

    /// The rack, for a machine step; a Packet run has none.
    pub fn rack(&self, step: &str) -> Result<&Arc<NetbootedRack>, StepError> {
        match self {
            Machines::Rack(rack) => Ok(rack),
            Machines::Packet { .. } => Err(StepError::permanent(format!(
                "{step}: a rack's machine step in the run of a Packet cluster"
            ))),
        }
    }
}

/// Waits, deadlines, ports and access; the simulator's demo shrinks the waits with its time
/// scale.
#[derive(Clone, Debug)]
pub struct RunSettings {
    pub device: DeviceSettings,
    pub dns_poll: Duration,
    pub dns_deadline: Duration,
    pub ssh_port: u16,
    pub ssh_user: String,
    pub api_port: u16,
    pub ready_poll: Duration,
    pub ready_deadline: Duration,
    /// Overwrite DNS records that hold values loko did not set (`--take-over-dns`).
    pub take_over_dns: bool,
    /// How long a drain asks again for evictions a disruption budget refuses
    /// (`--drain-timeout`).
    pub drain_timeout: Duration,
    /// Delete workers' devices without draining their nodes (`--skip-drain`).
    pub skip_drain: bool,
    /// Keys the nodes admit besides the spec's `ssh_keys` (the demo's throwaway key). Not part
    /// of the desired cluster, so the spec and its journal stay as the user wrote them.
    pub extra_authorized_keys: Vec<specs::SshPublicKey>,
}

impl Default for RunSettings {
    fn default() -> Self {
        RunSettings {
            device: DeviceSettings::default(),
            // Every wait sees its change up to one poll late, and a cluster's critical path
            // crosses three of them (device, DNS, readiness): at 5 s that was up to 4 % of a
            // 370 s creation. Route53 allows 5 requests a second; the apiserver answers the
            // nodes list from its cache.
            dns_poll: Duration::from_secs(2),
            dns_deadline: Duration::from_secs(10 * 60),
            ssh_port: 22,
            ssh_user: "core".into(),
            api_port: 6443,
            ready_poll: Duration::from_secs(2),
            ready_deadline: Duration::from_secs(30 * 60),
            take_over_dns: false,
            // Five minutes: longer than a rolling update of a budgeted Deployment takes, shorter
            // than leaving a scale down hanging on a budget that will never allow it.
            drain_timeout: Duration::from_secs(5 * 60),
            skip_drain: false,
            extra_authorized_keys: Vec::new(),
        }
    }
}

/// What a run supplies to the actions.
pub struct RunContext {
    /// The desired cluster, as the run records it.
    pub desired: DesiredCluster,
    /// The asset directory, created by the run.
    pub assets: AssetDir,
    pub clients: Clients,
    pub settings: RunSettings,
}

impl RunContext {
    /// The cluster's Packet devices behind the provider seam, for a device step (`step`); a
    /// rack's run has none (see [`Machines::packet`]).
    pub fn packet(&self, step: &str) -> Result<PacketProvider, StepError> {
        let (client, poller) = self.clients.machines.packet(step)?;
        Ok(PacketProvider {
            client: Arc::clone(client),
            poller: Arc::clone(poller),
            settings: self.settings.device.clone(),
            private_network: self.desired.settings.node_private_cidr,
            cluster: self.desired.settings.cluster_name.to_string(),
        })
    }
}
