//! What the rack holds: its machines as listed, their BMCs' state, and what a boot did; and
//! what of it the rack's state file keeps ([`SavedRack`]): every machine the rack ever had, its
//! power, its boot override, what it installed (the node's Ignition, so that its node boots
//! again as the same node, with its host key and kubelet) and its events. Its fault is not
//! kept: a fault plan is the command's, not the rack's. The file is written as the simulator's
//! own is (`crate::state_file`: atomically, owner-only, since an installed Ignition holds the
//! node's keys).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::faults::BmcFault;
use crate::ignition::NodeIgnition;
use crate::lifecycle::{NodeLifecycle, NodeSpec};
use crate::state_file::{Persister, StateFileError, check_format, read_json};

use super::boot::{self, Installed};
use super::wipe::Wiped;

/// A machine of the rack, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RackMachine {
    /// The machine's name (its Redfish system's `Name`).
    pub name: String,
    /// Its Redfish system's `Id`.
    pub system_id: String,
    /// Its NIC's MAC, lowercase with `:`.
    pub mac: String,
    /// Its disks (`/dev/sda`): `flatcar-install -d` must name one.
    pub disks: Vec<String>,
    /// The node's public IPv4 (where its SSH answers).
    pub public_ip: Ipv4Addr,
    /// The node's private IPv4.
    pub private_ip: Ipv4Addr,
}

/// How the rack's BMCs listen and behave.
#[derive(Clone)]
pub struct RackConfig {
    /// Where the BMCs' Redfish service listens.
    pub listen: SocketAddr,
    /// The BMCs' user.
    pub username: String,
    /// The BMCs' password.
    pub password: String,
    /// How long a reset takes before `PowerState` shows it (sushy-tools: 1 to 11 s).
    pub power_delay: Duration,
    /// Real time during which a booted node refuses SSH.
    pub ssh_refused_for: Duration,
    /// Real time between a valid static apiserver pod and the apiserver answering.
    pub apiserver_start_delay: Duration,
    /// Where the rack keeps its machines (power, boot override, installed disk, events), so
    /// that a rack started again on it has every machine it ever had, as a real rack does;
    /// `None`: nothing is kept.
    pub state_file: Option<PathBuf>,
}

impl std::fmt::Debug for RackConfig {
    // The BMCs' password never goes to logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RackConfig")
            .field("listen", &self.listen)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("power_delay", &self.power_delay)
            .field("ssh_refused_for", &self.ssh_refused_for)
            .field("apiserver_start_delay", &self.apiserver_start_delay)
            .field("state_file", &self.state_file)
            .finish()
    }
}

/// Where a machine is in its boot.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum MachineState {
    /// Powered off.
    Off,
    /// Powered on, network-booting or installing.
    Booting,
    /// Powered on, without a network boot and with nothing on its disks.
    NoBootableDevice,
    /// Powered on and stuck: why a real machine would be.
    BootFailed(String),
    /// Its node runs (SSH, kubelet).
    Running,
}

/// What a test or an operator sees of one machine.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MachineStatus {
    /// Whether it is powered.
    pub powered: bool,
    /// Where its boot is.
    pub state: MachineState,
    /// The disk Flatcar was installed on, once it was.
    pub installed_on: Option<String>,
    /// What it did, oldest first: resets, boot requests, judgements (never Ignition content).
    pub events: Vec<String>,
}

/// Why the rack did not start.
#[derive(Debug, thiserror::Error)]
pub enum RackError {
    /// The BMCs' address could not be bound.
    #[error("rack: cannot listen for Redfish on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The rack's state file cannot be read.
    #[error("rack: {0}")]
    State(#[from] StateFileError),
    /// Two machines share a system id or a MAC.
    #[error("rack: machines {first} and {second} share {what}")]
    Duplicate {
        /// `system id X` or `MAC X`.
        what: String,
        /// The first machine.
        first: String,
        /// The second.
        second: String,
    },
}

pub(crate) struct RackInner {
    pub(super) config: RackConfig,
    pub(super) lifecycle: Arc<dyn NodeLifecycle>,
    pub(super) machines: Mutex<BTreeMap<String, Machine>>,
    pub(super) boot_filename: Mutex<Option<String>>,
    pub(super) persister: Option<Persister>,
    /// Numbers the snapshots of the machines, so that a slower write of an older one never
    /// replaces a newer one in the state file.
    pub(super) snapshots: AtomicU64,
}

/// A Redfish boot override (`Boot.BootSourceOverride*`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BootOverride {
    pub target: String,
    pub enabled: String,
}

pub(crate) struct Machine {
    pub spec: RackMachine,
    pub powered: bool,
    pub state: MachineState,
    pub boot: BootOverride,
    pub installed: Option<Installed>,
    pub fault: Option<BmcFault>,
    pub events: Vec<String>,
    /// Bumped by each reset, so that a late power change of an older one does nothing.
    pub generation: u64,
}

impl RackInner {
    pub(crate) fn machines(&self) -> MutexGuard<'_, BTreeMap<String, Machine>> {
        self.machines.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes the machines to the state file, if the rack keeps one; after every change a
    /// client may see, as the Packet simulator's state file is.
    pub(crate) async fn save(&self) {
        let Some(persister) = &self.persister else {
            return;
        };
        let (number, snapshot) = {
            let machines = self.machines();
            let number = self.snapshots.fetch_add(1, Ordering::SeqCst) + 1;
            (number, SavedRack::of(&machines))
        };
        if let Err(e) = persister.write(number, &snapshot).await {
            tracing::error!(error = %e, "cannot save the rack's machines");
        }
    }

    /// The fault in force for one request of a machine's system; a request answered 503 by
    /// [`BmcFault::UnavailableRequests`] spends one of them.
    pub(crate) fn fault_of_request(&self, system_id: &str) -> Option<BmcFault> {
        let mut machines = self.machines();
        let machine = machines.get_mut(system_id)?;
        match machine.fault.clone() {
            Some(BmcFault::UnavailableRequests(left)) => {
                machine.fault = left
                    .checked_sub(1)
                    .filter(|left| *left > 0)
                    .map(BmcFault::UnavailableRequests);
                (left > 0).then_some(BmcFault::Unavailable)
            }
            fault => fault,
        }
    }

    pub(super) fn event(&self, system_id: &str, event: String) {
        if let Some(machine) = self.machines().get_mut(system_id) {
            tracing::info!(machine = %machine.spec.name, "{event}");
            machine.events.push(event);
        }
    }

    fn set_state(&self, system_id: &str, generation: u64, state: MachineState) -> bool {
        match self.machines().get_mut(system_id) {
            Some(machine) if machine.generation == generation => {
                machine.state = state;
                true
            }
            _ => false,
        }
    }

    /// A reset the BMC accepted: after the power delay, the machine is off, or (re)boots.
    pub(crate) fn reset(self: &Arc<Self>, system_id: &str, reset_type: &str) {
        let generation = {
            let mut machines = self.machines();
            let Some(machine) = machines.get_mut(system_id) else {
                return;
            };
            machine.events.push(format!("reset {reset_type}"));
            if machine.fault == Some(BmcFault::PowerStuck) {
                return;
            }
            machine.generation += 1;
            machine.generation
        };
        let inner = self.clone();
        let id = system_id.to_owned();
        let reset_type = reset_type.to_owned();
        tokio::spawn(async move {
            tokio::time::sleep(inner.config.power_delay).await;
            let Some(was_on) = inner
                .machines()
                .get(&id)
                .filter(|m| m.generation == generation)
                .map(|m| m.powered)
            else {
                return;
            };
            let (stop, boot) = match reset_type.as_str() {
                "ForceOff" | "GracefulShutdown" => (was_on, false),
                "On" | "ForceOn" => (false, !was_on),
                // A restart of a machine that is off powers it on, as sushy-tools' does.
                _ => (was_on, true),
            };
            if stop {
                inner.lifecycle.stop_node(&id).await;
                if let Some(machine) = inner.machines().get_mut(&id) {
                    machine.powered = false;
                    machine.state = MachineState::Off;
                }
            }
            if boot {
                if let Some(machine) = inner.machines().get_mut(&id) {
                    machine.powered = true;
                }
                inner.power_on(&id, generation).await;
            }
            inner.save().await;
        });
    }

    /// The firmware's boot: the network when the override says PXE, else the disk.
    async fn power_on(&self, id: &str, generation: u64) {
        let (pxe, spec, fault) = {
            let mut machines = self.machines();
            let Some(machine) = machines.get_mut(id) else {
                return;
            };
            machine.state = MachineState::Booting;
            let pxe = machine.boot.target == "Pxe" && machine.boot.enabled != "Disabled";
            // A one-time override is spent by the boot that uses it (DMTF: back to Disabled).
            if pxe && machine.boot.enabled == "Once" {
                machine.boot.enabled = "Disabled".to_owned();
            }
            (pxe, machine.spec.clone(), machine.fault.clone())
        };
        if pxe {
            let filename = self
                .boot_filename
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            let Some(filename) = filename else {
                self.event(id, "PXE: DHCP offered no boot filename".to_owned());
                self.set_state(
                    id,
                    generation,
                    MachineState::BootFailed("PXE: no boot filename".to_owned()),
                );
                return;
            };
            let mac = match fault {
                Some(BmcFault::BootsWithMac(mac)) => mac,
                _ => spec.mac.clone(),
            };
            self.event(id, format!("PXE boot of {mac} from {filename}"));
            match boot::network_boot(&filename, &mac, &spec.disks).await {
                Ok(boot::NetworkBoot::Wiped(wiped)) => {
                    self.wiped(id, generation, wiped).await;
                    return;
                }
                Ok(boot::NetworkBoot::Installed(installed)) => {
                    self.event(
                        id,
                        format!(
                            "kernel {}; Flatcar installed on {}; rebooting",
                            installed.kernel_url, installed.disk
                        ),
                    );
                    if let Some(machine) = self.machines().get_mut(id) {
                        machine.installed = Some(installed);
                    }
                }
                Err(reason) => {
                    self.event(id, format!("boot failed: {reason}"));
                    self.set_state(id, generation, MachineState::BootFailed(reason));
                    return;
                }
            }
        }
        let installed = self.machines().get(id).and_then(|m| m.installed.clone());
        let Some(installed) = installed else {
            self.event(id, "no bootable device".to_owned());
            self.set_state(id, generation, MachineState::NoBootableDevice);
            return;
        };
        self.boot_node(id, generation, &spec, &installed.ignition, false)
            .await;
    }

    /// The installed system's boot: the node starts as a Packet device's does. `resumed`: the
    /// machine was on when the rack last ran, its node up all along (the simulator only
    /// stopped), so its SSH and apiserver answer at once, as a restarted Packet simulator's
    /// nodes do.
    pub(super) async fn boot_node(
        &self,
        id: &str,
        generation: u64,
        spec: &RackMachine,
        ignition: &str,
        resumed: bool,
    ) {
        let after_boot = |delay: Duration| if resumed { Duration::ZERO } else { delay };
        // Flatcar takes its hostname from the Ignition's /etc/hostname when it has one.
        let hostname = NodeIgnition::parse(ignition)
            .file("/etc/hostname")
            .map(|f| String::from_utf8_lossy(&f.contents).trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| spec.name.clone());
        let node = NodeSpec {
            device_id: spec.system_id.clone(),
            hostname: hostname.clone(),
            public_ip: spec.public_ip,
            private_ip: spec.private_ip,
            user_data: ignition.to_owned(),
            ssh_refused_for: after_boot(self.config.ssh_refused_for),
            apiserver_start_delay: after_boot(self.config.apiserver_start_delay),
            packet_metadata: false,
        };
        let current = |inner: &Self| {
            inner
                .machines()
                .get(id)
                .is_some_and(|m| m.generation == generation)
        };
        // A reset during the network boot supersedes this boot.
        if !current(self) {
            return;
        }
        match self.lifecycle.start_node(node).await {
            Ok(()) if !current(self) => self.lifecycle.stop_node(id).await,
            Ok(()) => {
                self.event(id, format!("booted node {hostname}"));
                self.set_state(id, generation, MachineState::Running);
            }
            Err(reason) => {
                self.event(id, format!("node {hostname} did not start: {reason}"));
                self.set_state(id, generation, MachineState::BootFailed(reason));
            }
        }
    }
}

/// The format of the rack's state file; another is refused, not misread.
const SAVED_RACK_FORMAT: u32 = 1;

/// What the rack's state file holds.
#[derive(Serialize, Deserialize)]
pub(crate) struct SavedRack {
    format: u32,
    pub(crate) machines: Vec<SavedMachine>,
}

/// One machine as saved. Its fault is not kept: a fault plan is the command's, not the rack's.
#[derive(Serialize, Deserialize)]
pub(crate) struct SavedMachine {
    pub(crate) spec: RackMachine,
    pub(crate) powered: bool,
    pub(crate) boot: BootOverride,
    pub(crate) installed: Option<Installed>,
    pub(crate) events: Vec<String>,
}

impl SavedRack {
    /// The machines as the state file keeps them.
    fn of(machines: &BTreeMap<String, Machine>) -> SavedRack {
        SavedRack {
            format: SAVED_RACK_FORMAT,
            machines: machines
                .values()
                .map(|m| SavedMachine {
                    spec: m.spec.clone(),
                    powered: m.powered,
                    boot: m.boot.clone(),
                    installed: m.installed.clone(),
                    events: m.events.clone(),
                })
                .collect(),
        }
    }

    /// The rack saved at `path`; `None` when there is none yet.
    pub(crate) fn load(path: &Path) -> Result<Option<SavedRack>, RackError> {
        let Some(saved) = read_json::<SavedRack>(path)? else {
            return Ok(None);
        };
        check_format(path, saved.format, SAVED_RACK_FORMAT, "rack")?;
        Ok(Some(saved))
    }
}

/// The machines of the rack saved at `path` (none when there is no file yet), as listed when
/// it last ran: what keeps a demo's machine at its address from one command to the next.
pub fn saved_machines(path: &Path) -> Result<Vec<RackMachine>, RackError> {
    Ok(SavedRack::load(path)?
        .map(|saved| saved.machines.into_iter().map(|m| m.spec).collect())
        .unwrap_or_default())
}

impl RackInner {
    /// A wipe ran on the machine: its disk holds no node, so a later boot without PXE finds
    /// nothing, and after the power delay (the wipe and shutdown take time) it is off.
    pub(super) async fn wiped(&self, id: &str, generation: u64, wiped: Wiped) {
        {
            let mut machines = self.machines();
            let Some(machine) = machines.get_mut(id).filter(|m| m.generation == generation) else {
                return;
            };
            machine.installed = None;
        }
        self.event(
            id,
            format!(
                "kernel {}; wiped {}; powering off",
                wiped.kernel_url, wiped.disk
            ),
        );
        tokio::time::sleep(self.config.power_delay).await;
        if let Some(machine) = self.machines().get_mut(id)
            && machine.generation == generation
        {
            machine.powered = false;
            machine.state = MachineState::Off;
            machine.events.push("powered off by the wipe".to_owned());
        }
        self.save().await;
    }
}
