//! Packet (Equinix Metal) behind the provider seam: a node's machine is a device, created at
//! most once and found again by its `loko:node=` tag ([`crate::packet::DeviceStep`] holds the
//! attempt: adoption, the create intent, replacement of failed devices, the shared poller);
//! retiring it deletes it; a changed plan (machine type) recreates it.

use std::sync::Arc;

use engine::StepError;

use super::{Change, Intents, ListedMachine, MachineProvider, ProvidedMachine};
use crate::packet::{
    DeleteDeviceStep, DevicePoller, DeviceSettings, DeviceSpec, DeviceStep, PacketClient,
    cluster_tag, node_tag, step_error,
};

/// Devices of one Packet project, through the run's client and its shared poller.
#[derive(Clone)]
pub struct PacketProvider {
    pub client: Arc<PacketClient>,
    /// The one poller serving every waiting device step.
    pub poller: Arc<DevicePoller>,
    pub settings: DeviceSettings,
    /// The spec's `node_private_cidr`: a device's private address must lie in it.
    pub private_network: ipnet::Ipv4Net,
    /// The cluster's name, whose tag every device of it carries.
    pub cluster: String,
}

/// One node's device as the provider needs it.
#[derive(Clone, Debug)]
pub struct PacketMachine {
    pub spec: DeviceSpec,
    /// Nodes whose named hardware reservations a `next-available` create could take: it waits
    /// until their devices are listed.
    pub named_first: Vec<String>,
}

impl PacketProvider {
    /// Deletes every device carrying `tag` (a node's, or the whole cluster's for `loko
    /// destroy`) and waits until Packet no longer lists them; the ids it deleted.
    pub async fn delete_tagged(
        &self,
        intents: &impl Intents,
        tag: &str,
    ) -> Result<Vec<String>, StepError> {
        DeleteDeviceStep {
            client: Arc::clone(&self.client),
            poller: Arc::clone(&self.poller),
            tag: tag.to_owned(),
            deadline: self.settings.provision_deadline,
        }
        .run(intents)
        .await
    }
}

impl MachineProvider for PacketProvider {
    type Machine = PacketMachine;

    async fn ensure(
        &self,
        intents: &impl Intents,
        hostname: &str,
        machine: &PacketMachine,
    ) -> Result<ProvidedMachine, StepError> {
        if machine.spec.hostname != hostname {
            return Err(StepError::permanent(format!(
                "the device of {hostname} was asked for with the spec of {}",
                machine.spec.hostname
            )));
        }
        DeviceStep {
            client: Arc::clone(&self.client),
            poller: Arc::clone(&self.poller),
            spec: machine.spec.clone(),
            settings: self.settings.clone(),
            named_first: machine.named_first.clone(),
            private_network: self.private_network,
        }
        .run(intents)
        .await
    }

    async fn retire(
        &self,
        intents: &impl Intents,
        machine: &PacketMachine,
    ) -> Result<(), StepError> {
        self.delete_tagged(intents, &node_tag(&machine.spec.hostname))
            .await
            .map(|_| ())
    }

    async fn list(&self) -> Result<Vec<ListedMachine>, StepError> {
        let devices = self
            .client
            .list_devices(&cluster_tag(&self.cluster))
            .await
            .map_err(step_error)?;
        Ok(devices
            .into_iter()
            .map(|d| ListedMachine {
                id: d.id,
                state: d.state.as_str().to_owned(),
            })
            .collect())
    }

    fn change(&self, was: &PacketMachine, is: &PacketMachine) -> Change {
        match was.spec.machine_type == is.spec.machine_type {
            true => Change::None,
            // The tutorial's "recreate": a device's plan cannot change in place.
            false => Change::Recreate {
                why: format!(
                    "machine type {} -> {}",
                    was.spec.machine_type, is.spec.machine_type
                ),
            },
        }
    }
}
