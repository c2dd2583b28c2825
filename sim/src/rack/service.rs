//! The rack's BMC service: started on its own listener, stopped when dropped.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::faults::BmcFault;
use crate::lifecycle::NodeLifecycle;
use crate::state_file::Persister;

use super::model::{
    BootOverride, Machine, MachineState, MachineStatus, RackConfig, RackError, RackInner,
    RackMachine, SavedRack,
};
use super::redfish;

/// The rack's running BMC service. Dropping it stops the service; nodes it booted keep running
/// in the [`NodeLifecycle`] until stopped there.
pub struct Rack {
    inner: Arc<RackInner>,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Rack {
    /// Starts the BMCs of `machines`; booted nodes start through `lifecycle`. With a state
    /// file, the machines saved there are kept too (a machine listed again keeps its state,
    /// with the listing's NIC, disks and addresses), and each one saved powered with an
    /// installed disk boots it before this returns: its node is back, as it was.
    pub async fn start(
        config: RackConfig,
        machines: Vec<RackMachine>,
        lifecycle: Arc<dyn NodeLifecycle>,
    ) -> Result<Rack, RackError> {
        let saved = match &config.state_file {
            Some(path) => SavedRack::load(path)?,
            None => None,
        };
        let mut by_id: BTreeMap<String, Machine> = BTreeMap::new();
        for spec in machines {
            add(&mut by_id, spec)?;
        }
        for kept in saved.map(|s| s.machines).unwrap_or_default() {
            let listed = by_id.values().any(|m| m.spec.name == kept.spec.name);
            if !listed {
                add(&mut by_id, kept.spec.clone())?;
            }
            if let Some(machine) = by_id.values_mut().find(|m| m.spec.name == kept.spec.name) {
                machine.powered = kept.powered;
                machine.boot = kept.boot;
                machine.installed = kept.installed;
                machine.events = kept.events;
            }
        }
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| RackError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| RackError::Bind {
            addr: config.listen,
            source,
        })?;
        let persister = config.state_file.clone().map(Persister::new);
        let inner = Arc::new(RackInner {
            config,
            lifecycle,
            machines: Mutex::new(by_id),
            boot_filename: Mutex::new(None),
            persister,
            snapshots: AtomicU64::new(0),
        });
        power_on_saved(&inner).await;
        inner.save().await;
        let app = redfish::router(inner.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serving = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(error) = serving.await {
                tracing::warn!(%addr, %error, "rack BMCs stopped");
            }
        });
        Ok(Rack {
            inner,
            addr,
            stop: Some(stop),
            task,
        })
    }

    /// The Redfish service's root URL (`http://addr/redfish/v1`).
    pub fn url(&self) -> String {
        format!("http://{}/redfish/v1", self.addr)
    }

    /// The Redfish URL of a machine's system, by machine name.
    pub fn system_url(&self, name: &str) -> Option<String> {
        let machines = self.inner.machines();
        let machine = machines.values().find(|m| m.spec.name == name)?;
        Some(format!("{}/Systems/{}", self.url(), machine.spec.system_id))
    }

    /// What the rack's DHCP hands a network-booting NIC as its boot filename (a URL: the boot
    /// server's `/boot.ipxe`); `None` leaves network boots without a script.
    pub fn set_boot_filename(&self, url: Option<String>) {
        *self
            .inner
            .boot_filename
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = url;
    }

    /// Sets or clears a machine's fault; false when no machine has that name.
    pub fn set_fault(&self, name: &str, fault: Option<BmcFault>) -> bool {
        let mut machines = self.inner.machines();
        match machines.values_mut().find(|m| m.spec.name == name) {
            Some(machine) => {
                machine.fault = fault;
                true
            }
            None => false,
        }
    }

    /// A machine's status, by name.
    pub fn status(&self, name: &str) -> Option<MachineStatus> {
        let machines = self.inner.machines();
        let machine = machines.values().find(|m| m.spec.name == name)?;
        Some(MachineStatus {
            powered: machine.powered,
            state: machine.state.clone(),
            installed_on: machine.installed.as_ref().map(|i| i.disk.clone()),
            events: machine.events.clone(),
        })
    }

    /// Stops the BMCs (the nodes keep running) and saves the machines a last time.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
        self.inner.save().await;
    }
}

/// Adds a listed machine, unless it shares its system id or MAC with one already there.
fn add(by_id: &mut BTreeMap<String, Machine>, spec: RackMachine) -> Result<(), RackError> {
    let clash = by_id.values().find_map(|m| {
        (m.spec.system_id == spec.system_id)
            .then(|| format!("system id {}", spec.system_id))
            .or_else(|| (m.spec.mac == spec.mac).then(|| format!("MAC {}", spec.mac)))
            .map(|what| (what, m.spec.name.clone()))
    });
    if let Some((what, first)) = clash {
        return Err(RackError::Duplicate {
            what,
            first,
            second: spec.name,
        });
    }
    by_id.insert(
        spec.system_id.clone(),
        Machine {
            spec,
            powered: false,
            state: MachineState::Off,
            boot: BootOverride {
                target: "Hdd".to_owned(),
                enabled: "Disabled".to_owned(),
            },
            installed: None,
            fault: None,
            events: Vec::new(),
            generation: 0,
        },
    );
    Ok(())
}

/// The machines saved powered, as they were when the rack last ran: one with an installed
/// disk boots it (its node comes back, side by side with the others, as Packet's devices'
/// do); one without has nothing to boot (its network boot's server went with the last run).
async fn power_on_saved(inner: &Arc<RackInner>) {
    let mut booting = tokio::task::JoinSet::new();
    for (id, machine) in inner.machines().iter_mut().filter(|(_, m)| m.powered) {
        let Some(installed) = machine.installed.clone() else {
            machine.state = MachineState::NoBootableDevice;
            continue;
        };
        machine.state = MachineState::Booting;
        machine.events.push(format!(
            "on since the rack last ran: boots {}",
            installed.disk
        ));
        let (inner, id, spec) = (Arc::clone(inner), id.clone(), machine.spec.clone());
        booting.spawn(async move {
            inner
                .boot_node(&id, 0, &spec, &installed.ignition, true)
                .await;
        });
    }
    while booting.join_next().await.is_some() {}
}

impl std::fmt::Debug for Rack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rack")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for Rack {
    fn drop(&mut self) {
        self.task.abort();
    }
}
