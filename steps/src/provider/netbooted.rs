//! A rack's machines with loko's boot server: what a run's machine steps do with a
//! [`RedfishProvider`] and the one [`BootServer`] of the run.
//!
//! Booting a node's machine serves its Ignition by its MAC, then sets PXE once and powers it
//! (the provider's `ensure`), then waits until the machine's installer fetched the node's
//! Ignition from the server: the install is under way, and a NIC that booted with another MAC
//! than the spec's is found here, by name, instead of as a node that never answers SSH.
//! Retiring powers the machine off (`boot_server.retire: power-off`), or boots it into the wipe
//! of its install disk and waits until the wipe powered it off (`wipe`); then forgets its MAC.

use std::time::{Duration, Instant};

use engine::StepError;
use specs::RetirePolicy;

use super::rack::RedfishProvider;
use super::{Intents, MachineProvider, ProvidedMachine};
use crate::netboot::{BootMachine, BootServer, MacAddr, NetbootConfig, NetbootError};

/// The path of the node's Ignition on the boot server; its installer fetches it.
const NODE_IGNITION: &str = "/node-ignition";
/// The path of the Ignition the kernel fetches: the installer's, or a wipe's.
const BOOT_IGNITION: &str = "/ignition";

/// A rack's provider and the run's boot server.
pub struct NetbootedRack {
    pub provider: RedfishProvider,
    /// None in a run that boots nothing (`loko destroy` of machines only powered off).
    pub server: Option<BootServer>,
    /// How long a machine powered on may take to fetch its node's Ignition; for a wipe, to
    /// fetch it, and then to power off.
    pub install_deadline: Duration,
    /// What retiring a machine does (the spec's `boot_server.retire`).
    pub retire: RetirePolicy,
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

/// Says the machine was wiped, for the user.
fn report_wiped(intents: &impl Intents, machine: &specs::Machine) {
    intents.progress(format!(
        "machine {}: {} wiped; off",
        machine.name, machine.install_disk
    ));
}

/// The boot server's MAC of a machine.
fn mac_of(machine: &specs::Machine) -> MacAddr {
    MacAddr::from_octets(machine.mac.0)
}

impl NetbootedRack {
    /// The run's boot server, which booting or wiping `machine` needs.
    fn server(&self, machine: &specs::Machine, doing: &str) -> Result<&BootServer, StepError> {
        self.server.as_ref().ok_or_else(|| {
            StepError::permanent(format!(
                "machine {}: {doing} in a run without a boot server (one that only powers machines off)",
                machine.name
            ))
        })
    }

    /// The node `hostname`'s machine, installing or installed with `ignition` (its own).
    pub async fn boot(
        &self,
        intents: &impl Intents,
        hostname: &str,
        machine: &specs::Machine,
        ignition: String,
    ) -> Result<ProvidedMachine, StepError> {
        let mac = mac_of(machine);
        let server = self.server(machine, "booted")?;
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
            self.wait_for_fetch(server, machine, mac, seen, NODE_IGNITION, "installer")
                .await?;
        }
        Ok(provided)
    }

    /// Whether the machine of `mac` fetched `path` since the first `seen` requests.
    fn fetched(server: &BootServer, mac: MacAddr, seen: usize, path: &str) -> bool {
        let requests = server.requests();
        requests
            .get(seen..)
            .unwrap_or_default()
            .iter()
            .any(|r| r.path == path && r.mac == Some(mac) && r.status == 200)
    }

    /// Waits until the machine's `what` (`installer`, `wipe`) fetched `path` (requests after
    /// the first `seen`). Past the deadline, a request of a MAC the server does not boot names
    /// the NIC that booted instead: permanent, since retrying boots the same NIC.
    async fn wait_for_fetch(
        &self,
        server: &BootServer,
        machine: &specs::Machine,
        mac: MacAddr,
        seen: usize,
        path: &str,
        what: &str,
    ) -> Result<(), StepError> {
        let deadline = Instant::now() + self.install_deadline;
        loop {
            if Self::fetched(server, mac, seen, path) {
                return Ok(());
            }
            let requests = server.requests();
            let since = requests.get(seen..).unwrap_or_default();
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
                        "machine {}: powered on with PXE once, but no {what} fetched the Ignition of MAC {} within {waited}s",
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

    /// The machine powered off, its install disk wiped first with `retire: wipe`, and its MAC
    /// no longer served.
    pub async fn retire(
        &self,
        intents: &impl Intents,
        machine: &specs::Machine,
    ) -> Result<(), StepError> {
        match self.retire {
            RetirePolicy::PowerOff => self.provider.retire(intents, machine).await?,
            RetirePolicy::Wipe => self.wipe(intents, machine).await?,
        }
        if let Some(server) = &self.server {
            server.forget(mac_of(machine));
        }
        Ok(())
    }

    /// Boots the machine into the wipe of its install disk, off or on, and waits until it
    /// fetched the wipe, then until the wipe powered it off.
    async fn wipe(
        &self,
        intents: &impl Intents,
        machine: &specs::Machine,
    ) -> Result<(), StepError> {
        let mac = mac_of(machine);
        let server = self.server(machine, "wiped")?;
        server
            .serve_wipe(mac, machine.name.as_str(), &machine.install_disk)
            .map_err(|e: NetbootError| StepError::permanent(e.to_string()))?;
        let seen = server.requests().len();
        if !self.provider.boot_to_wipe(intents, machine, true).await? {
            // An earlier attempt's wipe is under way: waited for. One that never ends (its
            // machine booted while no server answered, a crashed loko's) is started again.
            match self.provider.wait_off(machine, self.install_deadline).await {
                Ok(()) => {
                    report_wiped(intents, machine);
                    return Ok(());
                }
                Err(e) if Self::fetched(server, mac, seen, BOOT_IGNITION) => return Err(e),
                Err(_) => {
                    intents.progress(format!(
                        "machine {}: the earlier attempt's wipe never powered it off; booting it again",
                        machine.name
                    ));
                    self.provider.boot_to_wipe(intents, machine, false).await?;
                }
            }
        }
        self.wait_for_fetch(server, machine, mac, seen, BOOT_IGNITION, "wipe")
            .await?;
        self.provider
            .wait_off(machine, self.install_deadline)
            .await
            .map_err(|e| {
                StepError::retryable(format!(
                    "machine {}: fetched the wipe of {}, but is not off: {e}; its console, or ssh -p 2222 core@ its address, and journalctl -u wipe.service, say why",
                    machine.name, machine.install_disk
                ))
            })?;
        report_wiped(intents, machine);
        Ok(())
    }

    /// Stops the boot server at the end of the run.
    pub async fn shutdown(self) {
        if let Some(server) = self.server {
            server.shutdown().await;
        }
    }
}
