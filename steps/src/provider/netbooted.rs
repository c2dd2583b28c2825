//! A rack's machines with loko's boot server: what a run's machine steps do with a
//! [`RedfishProvider`] and the one [`BootServer`] of the run.
//!
//! Booting a node's machine serves its Ignition by its MAC, then sets PXE once and powers it
//! (the provider's `ensure`), then waits until the machine's installer fetched the node's
//! Ignition from the server: the install is under way, and a NIC that booted with another MAC
//! than the spec's is found here, by name, instead of as a node that never answers SSH.
//! Retiring powers the machine off, then forgets its MAC.

use std::time::{Duration, Instant};

use engine::StepError;

use super::rack::RedfishProvider;
use super::{Intents, MachineProvider, ProvidedMachine};
use crate::netboot::{BootMachine, BootServer, MacAddr, NetbootConfig, NetbootError};

/// The path of the node's Ignition on the boot server; its installer fetches it.
const NODE_IGNITION: &str = "/node-ignition";

/// A rack's provider and the run's boot server.
pub struct NetbootedRack {
    pub provider: RedfishProvider,
    /// None in a run that boots nothing (`loko destroy`): it only powers machines off.
    pub server: Option<BootServer>,
    /// How long a machine powered on may take to fetch its node's Ignition.
    pub install_deadline: Duration,
    /// How often the server's log is read meanwhile.
    pub poll: Duration,
}

/// The boot server's configuration from the spec's `boot_server`; `ssh_keys` are `core`'s in
/// the installer.
pub fn netboot_config(
    settings: &specs::BootServerSettings,
    ssh_keys: Vec<String>,
) -> NetbootConfig {
    NetbootConfig {
        mirror: settings.mirror.clone(),
        kernel_args: settings.kernel_args.clone(),
        ssh_keys,
        ..NetbootConfig::default()
    }
}

/// The boot server's MAC of a machine.
fn mac_of(machine: &specs::Machine) -> MacAddr {
    MacAddr::from_octets(machine.mac.0)
}

impl NetbootedRack {
    /// The node `hostname`'s machine, installing or installed with `ignition` (its own).
    pub async fn boot(
        &self,
        intents: &impl Intents,
        hostname: &str,
        machine: &specs::Machine,
        ignition: String,
    ) -> Result<ProvidedMachine, StepError> {
        let mac = mac_of(machine);
        let server = self.server.as_ref().ok_or_else(|| {
            StepError::permanent(format!(
                "machine {}: booted in a run without a boot server (one that only powers machines off)",
                machine.name
            ))
        })?;
        server
            .serve(BootMachine {
                mac,
                hostname: hostname.to_owned(),
                install_disk: machine.install_disk.clone(),
                ignition,
            })
            .map_err(|e: NetbootError| StepError::permanent(e.to_string()))?;
        let seen = server.requests().len();
        let provided = self.provider.ensure(intents, hostname, machine).await?;
        if provided.acted {
            self.wait_for_install(server, machine, mac, seen).await?;
        }
        Ok(provided)
    }

    /// Waits until the machine's installer fetched its node's Ignition (requests after the
    /// first `seen`). Past the deadline, a request of a MAC the server does not boot names the
    /// NIC that booted instead: permanent, since retrying boots the same NIC.
    async fn wait_for_install(
        &self,
        server: &BootServer,
        machine: &specs::Machine,
        mac: MacAddr,
        seen: usize,
    ) -> Result<(), StepError> {
        let deadline = Instant::now() + self.install_deadline;
        loop {
            let requests = server.requests();
            let since = requests.get(seen..).unwrap_or_default();
            if since
                .iter()
                .any(|r| r.path == NODE_IGNITION && r.mac == Some(mac) && r.status == 200)
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let mut unknown: Vec<String> = since
                    .iter()
                    .filter(|r| r.status == 404)
                    .filter_map(|r| r.mac.map(|m| m.to_string()))
                    .collect();
                unknown.dedup();
                let waited = self.install_deadline.as_secs();
                return Err(match unknown.is_empty() {
                    true => StepError::retryable(format!(
                        "machine {}: powered on with PXE once, but no installer fetched the Ignition of MAC {} within {waited}s",
                        machine.name, machine.mac
                    )),
                    false => StepError::permanent(format!(
                        "machine {}: MAC {} never booted within {waited}s, and the boot server was asked for unknown MAC(s) {}: a NIC booting with another MAC than the spec's? check the mac of machine {}",
                        machine.name,
                        machine.mac,
                        unknown.join(", "),
                        machine.name
                    )),
                });
            }
            tokio::time::sleep(self.poll).await;
        }
    }

    /// The machine powered off and its MAC no longer served.
    pub async fn retire(
        &self,
        intents: &impl Intents,
        machine: &specs::Machine,
    ) -> Result<(), StepError> {
        self.provider.retire(intents, machine).await?;
        if let Some(server) = &self.server {
            server.forget(mac_of(machine));
        }
        Ok(())
    }

    /// Stops the boot server at the end of the run.
    pub async fn shutdown(self) {
        if let Some(server) = self.server {
            server.shutdown().await;
        }
    }
}
