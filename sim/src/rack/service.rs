//! The rack's BMC service: started on its own listener, stopped when dropped.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::lifecycle::NodeLifecycle;

use super::model::{
    BmcFault, BootOverride, Machine, MachineState, MachineStatus, RackConfig, RackError, RackInner,
    RackMachine,
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
    /// Starts the BMCs of `machines`; booted nodes start through `lifecycle`.
    pub async fn start(
        config: RackConfig,
        machines: Vec<RackMachine>,
        lifecycle: Arc<dyn NodeLifecycle>,
    ) -> Result<Rack, RackError> {
        let mut by_id: BTreeMap<String, Machine> = BTreeMap::new();
        for spec in machines {
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
        let inner = Arc::new(RackInner {
            config,
            lifecycle,
            machines: Mutex::new(by_id),
            boot_filename: Mutex::new(None),
        });
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

    /// Stops the BMCs (the nodes keep running).
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
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
