//! The HTTP side of the boot server: one handler for every request, so that each answer, a
//! 404 included, is logged the same way.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::config::{BootMachine, NetbootConfig, NetbootError};
use super::mac::MacAddr;
use super::script;
use crate::ignition::netboot::{InstallerParams, render_installer};
use crate::ignition::wipe::render_wipe;

/// One request the server answered, as logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootRequest {
    /// `GET`, or whatever the client sent.
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The MAC the client named, when it is one (known or not).
    pub mac: Option<MacAddr>,
    /// The answer's status code.
    pub status: u16,
}

/// A running boot server; it stops when shut down or dropped.
pub struct BootServer {
    addr: SocketAddr,
    url: String,
    served: Arc<Served>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

struct Served {
    /// Where machines reach the server (`http://host:port`), for the URLs in its answers.
    url: String,
    config: NetbootConfig,
    /// Each machine's installer Ignition and own Ignition, by MAC.
    machines: RwLock<BTreeMap<MacAddr, Rendered>>,
    requests: Arc<Mutex<Vec<BootRequest>>>,
}

struct Rendered {
    hostname: String,
    /// What `/ignition` answers: the installer, or a wipe.
    installer: String,
    /// The node's own Ignition; `None` for a machine served a wipe, which installs nothing.
    node: Option<String>,
}

impl BootServer {
    /// Binds `bind` and serves `machines`. `advertise` is the server's URL as the machines
    /// reach it (`http://10.0.2.2:8080` behind a NAT); by default `http://<bound address>`.
    pub async fn start(
        bind: SocketAddr,
        advertise: Option<String>,
        config: NetbootConfig,
        machines: Vec<BootMachine>,
    ) -> Result<BootServer, NetbootError> {
        let listener = TcpListener::bind(bind)
            .await
            .map_err(|source| NetbootError::Bind { addr: bind, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| NetbootError::Bind { addr: bind, source })?;
        let url = match advertise {
            Some(url) => url.trim_end_matches('/').to_owned(),
            // `http://0.0.0.0:…` in a script would send every machine to itself.
            None if addr.ip().is_unspecified() => {
                return Err(NetbootError::NoAdvertisedUrl { addr });
            }
            None => format!("http://{addr}"),
        };
        let served = Arc::new(Served {
            url: url.clone(),
            config,
            machines: RwLock::new(BTreeMap::new()),
            requests: Arc::default(),
        });
        for machine in machines {
            served.insert(machine)?;
        }
        let app = Router::new().fallback(answer).with_state(served.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serving = axum::serve(listener, app).with_graceful_shutdown(async {
                // A dropped sender stops the server as a sent one does.
                let _ = stopped.await;
            });
            if let Err(error) = serving.await {
                tracing::warn!(%addr, %error, "boot server stopped");
            }
        });
        tracing::info!(%addr, %url, "boot server listening");
        Ok(BootServer {
            addr,
            url,
            served,
            stop: Some(stop),
            task,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's URL as the machines reach it.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Serves one more machine (a node whose Ignition was rendered after the server started).
    /// A machine of the same hostname is replaced; another machine's MAC is refused.
    pub fn serve(&self, machine: BootMachine) -> Result<(), NetbootError> {
        self.served.insert(machine)
    }

    /// Serves a retired machine its wipe (`boot_server.retire: wipe`): the same script, kernel
    /// and initrd, and at `/ignition` the wipe of `install_disk`; nothing at `/node-ignition`.
    /// Whatever the MAC was served before is replaced. `name` (the machine's) is for logs.
    pub fn serve_wipe(
        &self,
        mac: MacAddr,
        name: &str,
        install_disk: &str,
    ) -> Result<(), NetbootError> {
        let wipe = render_wipe(install_disk, &self.served.config.ssh_keys).map_err(|source| {
            NetbootError::Wipe {
                machine: name.to_owned(),
                source,
            }
        })?;
        self.served.machines_mut().insert(
            mac,
            Rendered {
                hostname: name.to_owned(),
                installer: wipe,
                node: None,
            },
        );
        Ok(())
    }

    /// Stops serving a MAC (a machine deleted from the cluster); whether it was served.
    pub fn forget(&self, mac: MacAddr) -> bool {
        self.served.machines_mut().remove(&mac).is_some()
    }

    /// Every request answered so far, oldest first.
    pub fn requests(&self) -> Vec<BootRequest> {
        self.served
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Stops accepting requests and waits for those in flight.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl std::fmt::Debug for BootServer {
    // What it serves holds the nodes' keys; only where it listens is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BootServer")
            .field("addr", &self.addr)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Drop for BootServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Served {
    fn machines(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<MacAddr, Rendered>> {
        self.machines.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn machines_mut(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<MacAddr, Rendered>> {
        self.machines
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Renders a machine's installer and serves it, in place of its hostname's former MAC.
    fn insert(&self, machine: BootMachine) -> Result<(), NetbootError> {
        let node_ignition_url = format!("{}/node-ignition?mac={}", self.url, machine.mac);
        let installer = render_installer(&InstallerParams {
            node_ignition_url: &node_ignition_url,
            install_disk: &machine.install_disk,
            channel: &self.config.channel,
            version: &self.config.version,
            ssh_keys: &self.config.ssh_keys,
        })
        .map_err(|source| NetbootError::Installer {
            hostname: machine.hostname.clone(),
            source,
        })?;
        let mut machines = self.machines_mut();
        // A wipe served to the MAC is the machine's past, not another node's claim on it.
        if let Some(first) = machines.get(&machine.mac)
            && first.node.is_some()
            && first.hostname != machine.hostname
        {
            return Err(NetbootError::DuplicateMac {
                mac: machine.mac,
                first: first.hostname.clone(),
                second: machine.hostname,
            });
        }
        machines.retain(|_, m| m.hostname != machine.hostname);
        machines.insert(
            machine.mac,
            Rendered {
                hostname: machine.hostname,
                installer,
                node: Some(machine.ignition),
            },
        );
        Ok(())
    }
}

async fn answer(State(served): State<Arc<Served>>, request: Request) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = Query::<HashMap<String, String>>::try_from_uri(request.uri())
        .map(|q| q.0)
        .unwrap_or_default();
    let named = query.get("mac");
    let mac = named.and_then(|m| m.parse::<MacAddr>().ok());
    let (status, body) = match method {
        Method::GET => choose(&served, &path, named.is_some(), mac),
        _ => None,
    }
    .map_or((StatusCode::NOT_FOUND, None), |body| {
        (StatusCode::OK, Some(body))
    });
    let hostname = mac.and_then(|m| served.machines().get(&m).map(|m| m.hostname.clone()));
    tracing::info!(
        %method,
        path,
        mac = mac.map(|m| m.to_string()),
        hostname,
        status = status.as_u16(),
        "boot request"
    );
    served
        .requests
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(BootRequest {
            method: method.to_string(),
            path,
            mac,
            status: status.as_u16(),
        });
    match body {
        Some((content_type, text)) => {
            ([(header::CONTENT_TYPE, content_type)], Body::from(text)).into_response()
        }
        None => status.into_response(),
    }
}

/// The answer to a GET: a content type and a body, or `None` for a 404.
fn choose(
    served: &Served,
    path: &str,
    mac_named: bool,
    mac: Option<MacAddr>,
) -> Option<(&'static str, String)> {
    const IPXE: &str = "text/plain";
    const IGNITION: &str = "application/json";
    if path == "/boot.ipxe" && !mac_named {
        return Some((IPXE, script::chain(&served.url)));
    }
    let machines = served.machines();
    let machine = machines.get(&mac?)?;
    match path {
        "/boot.ipxe" | "/ipxe" => Some((IPXE, script::install(&served.config, &served.url))),
        "/ignition" => Some((IGNITION, machine.installer.clone())),
        "/node-ignition" => Some((IGNITION, machine.node.clone()?)),
        _ => None,
    }
}
