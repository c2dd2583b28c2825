//! SSH-reachable emulated Flatcar nodes.
//!
//! When the cloud reports a device active it calls [`Nodes::start_node`]: the node gets a root
//! directory (its filesystem; `root.rs` documents the layout and how node paths such as
//! `/etc/kubernetes` are kept inside it), an SSH server on its public
//! IPv4 (each node has its own 127.x.y.z address; workers may go without, see
//! [`Nodes::set_worker_ssh`]), and a kubelet entry that the apiserver emulators list. The
//! kubelet entry exists only when [`crate::judge::kubelet::judge_kubelet`] finds that the node's
//! `kubelet.service` would start a kubelet on Flatcar; otherwise the node records why (in
//! `journalctl -u kubelet`, in `systemctl is-active kubelet` answering `failed`, and in
//! [`Nodes::kubelets`]).
//!
//! A running kubelet with a `--pod-manifest-path` runs the static pods there (`static_pods.rs`),
//! as the real one does, at boot and whenever the directory changes: each file is judged
//! ([`crate::judge::pod::judge_static_pod`]: a v1 Pod on the host network whose program takes
//! its flags and whose files exist on the node), and a valid kube-apiserver pod starts the
//! apiserver emulator on the node's address with the files its flags name, serving the objects
//! of its `--etcd-servers` ([`crate::apiserver::ObjectStores`]). A rebooted controller starts it
//! again from its disk. Verdicts are in `journalctl -u kubelet` and [`Nodes::static_pods`].
//! Loko drives nodes only through SSH, as it does real ones: uploading files (tar or cat over
//! exec, or sftp) and `sudo` commands.
//!
//! Two SSH backends exist: [`SshBackend::Embedded`] (in-process, user `core`) and
//! [`SshBackend::OpenSsh`] (a real `sshd` per node; login as the simulator's OS user, see
//! [`Nodes::ssh_login_user`]). Both run commands through the same wrapper and shims.

mod embedded;
mod error;
mod openssh;
mod root;
mod static_pods;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use russh::keys::{PrivateKey, PublicKey};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::apiserver::{Kubelet, KubeletRegistry, ObjectStores, Taint};
use crate::ignition::{self, NodeIgnition};
use crate::judge::kubelet::{
    KUBELET_UNIT, KubeletStart, etcd_serving_cert, judge_kubelet, packet_metadata,
};
use crate::judge::metadata::rack_metadata;
/// One node to boot: the seam's type, shared with the cloud side.
pub use crate::lifecycle::NodeSpec;
use crate::lifecycle::{KubeletStatus, StaticPodStatus};
use crate::lifecycle::{NodeFuture, NodeLifecycle};
pub use error::NodesError;
use root::NodeRoot;
use static_pods::StaticPodKubelet;

/// How each node's SSH server is provided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SshBackend {
    /// An in-process SSH server; clients log in as `core`.
    #[default]
    Embedded,
    /// A real OpenSSH `sshd` per node; clients log in as the simulator's OS user.
    OpenSsh {
        /// The sshd binary, usually `/usr/sbin/sshd`.
        sshd_path: PathBuf,
    },
}

/// Where and how nodes run.
#[derive(Debug, Clone)]
pub struct NodesConfig {
    /// Directory holding one root directory per node (`<root_dir>/<hostname>/`).
    pub root_dir: PathBuf,
    /// SSH port on every node's public IPv4 (22 needs privileges).
    pub ssh_port: u16,
    /// The SSH server implementation.
    pub backend: SshBackend,
}

/// The emulated nodes of one simulated cloud. Cheap to clone; clones share the nodes.
#[derive(Debug, Clone)]
pub struct Nodes {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: NodesConfig,
    kubelets: KubeletRegistry,
    running: Mutex<BTreeMap<String, RunningNode>>,
    /// The judge's verdict on each running node's kubelet, by hostname.
    kubelet_status: Mutex<BTreeMap<String, KubeletStatus>>,
    /// The verdict on each running node's static pods, by hostname and pod.
    static_pods: Arc<Mutex<BTreeMap<String, BTreeMap<String, StaticPodStatus>>>>,
    /// Every cluster's objects (its etcd), under `<root_dir>/.etcd`.
    stores: ObjectStores,
    /// Whether workers get an SSH server; see [`Nodes::set_worker_ssh`].
    worker_ssh: AtomicBool,
}

#[derive(Debug)]
struct RunningNode {
    hostname: String,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for RunningNode {
    fn drop(&mut self) {
        // Aborting drops what the tasks own: listeners, sshd children, apiserver emulators.
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Nodes {
    /// Prepares `root_dir`; nodes start with [`Nodes::start_node`].
    pub fn new(config: NodesConfig) -> Result<Nodes, NodesError> {
        std::fs::create_dir_all(&config.root_dir).map_err(|source| NodesError::RootDir {
            path: config.root_dir.clone(),
            source,
        })?;
        if let SshBackend::OpenSsh { sshd_path } = &config.backend
            && !sshd_path.is_file()
        {
            return Err(NodesError::SshdMissing {
                path: sshd_path.clone(),
            });
        }
        let stores = ObjectStores::new(config.root_dir.join(".etcd"));
        Ok(Nodes {
            inner: Arc::new(Inner {
                config,
                kubelets: KubeletRegistry::default(),
                running: Mutex::new(BTreeMap::new()),
                kubelet_status: Mutex::new(BTreeMap::new()),
                static_pods: Arc::default(),
                stores,
                worker_ssh: AtomicBool::new(true),
            }),
        })
    }

    /// Whether workers boot an SSH server (by default they do, as real ones). loko logs into
    /// controllers only (etcd secrets, the control plane), so the demo and `loko bench` turn it
    /// off: for thousands of workers, host keys and SSH servers are most of what booting costs
    /// the simulator on the cores loko shares. A controller is a node whose Ignition declares
    /// `etcd-member.service`; it always gets one. A worker without SSH gets no root directory
    /// either (its files would be read only over SSH); its kubelet is still judged and
    /// registers, and [`Nodes::kubelets`] still says why one would not start.
    pub fn set_worker_ssh(&self, on: bool) {
        self.inner.worker_ssh.store(on, Ordering::Relaxed);
    }

    /// The login name SSH clients must use: `core` (embedded) or the OS user (OpenSSH backend).
    pub fn ssh_login_user(&self) -> String {
        match self.inner.config.backend {
            SshBackend::Embedded => ignition::SSH_USER.to_owned(),
            SshBackend::OpenSsh { .. } => openssh::os_user_name(),
        }
    }

    /// The host directory holding `hostname`'s filesystem.
    pub fn node_root(&self, hostname: &str) -> PathBuf {
        self.inner.config.root_dir.join(hostname)
    }

    /// Boots a node: prepares its root, starts SSH (after `ssh_refused_for`) and its kubelet.
    ///
    /// Starting a device that is already running restarts it; a running node of the same
    /// hostname (an older device) is stopped first.
    pub async fn start_node(&self, spec: NodeSpec) -> Result<(), NodesError> {
        validate_hostname(&spec.hostname)?;
        // The device itself (a restart), or an older device of the same hostname whose root
        // and addresses this one takes over.
        let superseded: Vec<String> = self
            .running()
            .iter()
            .filter(|(device_id, node)| {
                **device_id == spec.device_id || node.hostname == spec.hostname
            })
            .map(|(device_id, _)| device_id.clone())
            .collect();
        for device_id in superseded {
            self.stop_node(&device_id).await;
        }
        let ignition = NodeIgnition::parse(&spec.user_data);
        for warning in &ignition.warnings {
            tracing::warn!(hostname = %spec.hostname, "Ignition: {warning}");
        }
        let config = &self.inner.config;
        let controller = ignition.declares_unit(CONTROLLER_UNIT);
        let addr = SocketAddr::from((spec.public_ip, config.ssh_port));
        let mut tasks = Vec::new();
        // A node without SSH gets no root either: its files and journal are read only over SSH.
        let root = match controller || self.inner.worker_ssh.load(Ordering::Relaxed) {
            true => {
                let root = NodeRoot::prepare(
                    &config.root_dir,
                    &spec.hostname,
                    &spec.device_id,
                    &ignition,
                )?;
                tasks.push(self.start_ssh(&spec, &ignition, &root, addr).await?);
                Some(root)
            }
            false => None,
        };
        let kubelet = self.start_kubelet(&spec, &ignition, root.as_ref());
        self.static_pods_guard().remove(&spec.hostname);
        if let (Some(root), Some(manifests)) = (
            root.as_ref(),
            kubelet.and_then(|start| start.pod_manifest_path),
        ) {
            let kubelet = StaticPodKubelet {
                root: root.clone(),
                manifests,
                hostname: spec.hostname.clone(),
                public_ip: spec.public_ip,
                etcd_serving_cert: etcd_serving_cert(&ignition),
                apiserver_start_delay: spec.apiserver_start_delay,
                stores: self.inner.stores.clone(),
                registry: self.inner.kubelets.clone(),
                verdicts: Arc::clone(&self.inner.static_pods),
            };
            tasks.push(tokio::spawn(kubelet.run()));
        }
        tracing::info!(hostname = %spec.hostname, device_id = %spec.device_id, %addr, "node started");
        let mut running = self.running();
        running.insert(
            spec.device_id.clone(),
            RunningNode {
                hostname: spec.hostname,
                tasks,
            },
        );
        Ok(())
    }

    /// The node's SSH server, listening once `ssh_refused_for` has passed.
    async fn start_ssh(
        &self,
        spec: &NodeSpec,
        ignition: &NodeIgnition,
        root: &NodeRoot,
        addr: SocketAddr,
    ) -> Result<JoinHandle<()>, NodesError> {
        let host_key = host_key(root, &spec.hostname, ignition)?;
        let authorized = authorized_keys(root, &spec.hostname, ignition)?;
        match &self.inner.config.backend {
            SshBackend::Embedded => {
                let server = embedded::EmbeddedSsh::new(host_key, authorized, root.exec_wrapper());
                let hostname = spec.hostname.clone();
                let bind_error = move |source| NodesError::SshBind {
                    hostname: hostname.clone(),
                    addr,
                    source,
                };
                if spec.ssh_refused_for.is_zero() {
                    let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
                    Ok(tokio::spawn(server.serve(listener)))
                } else {
                    let delay = spec.ssh_refused_for;
                    Ok(tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        match TcpListener::bind(addr).await {
                            Ok(listener) => server.serve(listener).await,
                            Err(source) => tracing::error!("{}", bind_error(source)),
                        }
                    }))
                }
            }
            SshBackend::OpenSsh { sshd_path } => {
                let sshd = openssh::Sshd::configure(sshd_path, root, &spec.hostname, addr)?;
                let delay = spec.ssh_refused_for;
                Ok(tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    sshd.run().await;
                }))
            }
        }
    }

    /// Starts the node's kubelet if its unit would start one on Flatcar: it then registers with
    /// the labels of its `--node-labels`. Otherwise the unit is `failed` and its journal says why.
    fn start_kubelet(
        &self,
        spec: &NodeSpec,
        ignition: &NodeIgnition,
        root: Option<&NodeRoot>,
    ) -> Option<KubeletStart> {
        let journal = |line: &str| {
            if let Some(root) = root {
                root.journal(KUBELET_UNIT, line);
            }
        };
        let metadata = match spec.packet_metadata {
            true => packet_metadata(
                &spec.hostname,
                &spec.public_ip.to_string(),
                &spec.private_ip.to_string(),
            ),
            false => rack_metadata(ignition),
        };
        let (status, started) = match judge_kubelet(ignition, &metadata) {
            Ok(start) => {
                self.inner.kubelets.register(Kubelet {
                    node_name: spec.hostname.clone(),
                    kubeconfig: ignition
                        .file(&start.kubeconfig)
                        .map(|file| String::from_utf8_lossy(&file.contents).into_owned()),
                    labels: start.labels.clone(),
                    internal_ip: spec.private_ip,
                    external_ip: spec.public_ip,
                    registered_at: chrono::Utc::now(),
                    taints: start
                        .args
                        .value("register-with-taints")
                        .map(Taint::parse_list)
                        .unwrap_or_default(),
                    // A list flag: repeated flags and commas add up.
                    cluster_dns: start
                        .args
                        .values("cluster-dns")
                        .into_iter()
                        .flat_map(|value| value.split(','))
                        .map(str::trim)
                        .filter(|ip| !ip.is_empty())
                        .map(str::to_owned)
                        .collect(),
                    host_nameservers: start.host_nameservers.clone(),
                    firewall: std::sync::Arc::new(crate::judge::iptables::NodeFirewall::of(
                        ignition,
                    )),
                    bootstrap: start.bootstrap,
                    rotate_certificates: start.rotate_certificates,
                });
                journal("Started Kubelet.");
                (
                    KubeletStatus {
                        running: true,
                        problems: Vec::new(),
                    },
                    Some(start),
                )
            }
            Err(problems) => {
                for problem in &problems {
                    journal(&problem.to_string());
                }
                journal("kubelet.service: Failed with result 'exit-code'.");
                if let Some(root) = root.filter(|_| ignition.declares_unit(KUBELET_UNIT)) {
                    root.set_unit_state(KUBELET_UNIT, "failed");
                }
                tracing::warn!(
                    hostname = %spec.hostname,
                    "the kubelet would not start on Flatcar: {}",
                    crate::judge::problem::lines(&problems).replace('\n', "; ")
                );
                (
                    KubeletStatus {
                        running: false,
                        problems: problems.iter().map(ToString::to_string).collect(),
                    },
                    None,
                )
            }
        };
        self.kubelet_status().insert(spec.hostname.clone(), status);
        started
    }

    /// The log of cordons, evictions, Node deletions and device deletions.
    pub fn api_events(&self) -> &crate::apiserver::ApiEvents {
        self.inner.stores.events()
    }

    /// Whether each running node's kubelet started, and why not, by hostname.
    pub fn kubelets(&self) -> BTreeMap<String, KubeletStatus> {
        self.kubelet_status().clone()
    }

    fn kubelet_status(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, KubeletStatus>> {
        self.inner
            .kubelet_status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Powers a node off: SSH, sshd and its apiserver stop, its kubelet leaves the apiserver.
    /// Its root stays on disk for inspection. Unknown devices are ignored.
    pub async fn stop_node(&self, device_id: &str) {
        let stopped = self.running().remove(device_id);
        if let Some(mut node) = stopped {
            // Wait for the tasks to be gone, so that their sockets are closed before a restart
            // binds the same addresses.
            for task in std::mem::take(&mut node.tasks) {
                task.abort();
                let _ = task.await;
            }
            self.inner.kubelets.unregister(&node.hostname);
            self.kubelet_status().remove(&node.hostname);
            self.static_pods_guard().remove(&node.hostname);
            tracing::info!(hostname = %node.hostname, device_id, "node stopped");
        }
    }

    /// Hostname → each static pod of the node's kubelet (by its name, else its file) and
    /// whether it runs, and why not.
    pub fn static_pods(&self) -> BTreeMap<String, BTreeMap<String, StaticPodStatus>> {
        self.static_pods_guard().clone()
    }

    fn static_pods_guard(
        &self,
    ) -> std::sync::MutexGuard<'_, BTreeMap<String, BTreeMap<String, StaticPodStatus>>> {
        self.inner
            .static_pods
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn running(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, RunningNode>> {
        self.inner
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The cloud drives nodes through this trait; errors become the cloud's log lines.
impl NodeLifecycle for Nodes {
    fn start_node(&self, spec: NodeSpec) -> NodeFuture<'_, Result<(), String>> {
        Box::pin(async move {
            Nodes::start_node(self, spec)
                .await
                .map_err(|error| error.to_string())
        })
    }

    fn stop_node<'a>(&'a self, device_id: &'a str) -> NodeFuture<'a, ()> {
        Box::pin(Nodes::stop_node(self, device_id))
    }

    fn static_pods(&self) -> BTreeMap<String, BTreeMap<String, StaticPodStatus>> {
        Nodes::static_pods(self)
    }

    fn kubelets(&self) -> BTreeMap<String, KubeletStatus> {
        Nodes::kubelets(self)
    }

    fn api_events(&self) -> crate::apiserver::ApiEvents {
        Nodes::api_events(self).clone()
    }
}

/// The unit that makes a node a controller: it runs an etcd member, and the control plane.
const CONTROLLER_UNIT: &str = "etcd-member";

/// The Ignition's host key, else the one generated for this node on an earlier boot, else a new one.
fn host_key(
    root: &NodeRoot,
    hostname: &str,
    ignition: &NodeIgnition,
) -> Result<PrivateKey, NodesError> {
    let key_error = |reason: String| NodesError::HostKey {
        hostname: hostname.to_owned(),
        reason,
    };
    let path = root.host_key_path();
    let key = if let Some(text) = ignition.host_key() {
        russh::keys::decode_secret_key(&text, None).map_err(|error| {
            key_error(format!(
                "the Ignition's {} is not a usable private key: {error}",
                ignition::HOST_KEY_PATH
            ))
        })?
    } else if let Ok(text) = std::fs::read_to_string(&path) {
        russh::keys::decode_secret_key(&text, None).map_err(|error| {
            key_error(format!(
                "{} is not a usable private key: {error}",
                path.display()
            ))
        })?
    } else {
        let seed: [u8; 32] = rand::random();
        PrivateKey::from(russh::keys::ssh_key::private::Ed25519Keypair::from_seed(
            &seed,
        ))
    };
    let text = key
        .to_openssh(russh::keys::ssh_key::LineEnding::LF)
        .map_err(|error| key_error(format!("cannot encode it for sshd: {error}")))?;
    write_private(&path, text.as_bytes())?;
    Ok(key)
}

/// Parses `core`'s authorized keys and writes them for sshd; unparsable lines are skipped.
fn authorized_keys(
    root: &NodeRoot,
    hostname: &str,
    ignition: &NodeIgnition,
) -> Result<Vec<PublicKey>, NodesError> {
    let mut keys = Vec::new();
    let mut lines = String::new();
    for line in &ignition.authorized_keys {
        match PublicKey::from_openssh(line) {
            Ok(key) => {
                keys.push(key);
                lines.push_str(line);
                lines.push('\n');
            }
            Err(error) => {
                tracing::warn!(hostname, %error, "skipping an unparsable sshAuthorizedKeys entry")
            }
        }
    }
    write_private(&root.authorized_keys_path(), lines.as_bytes())?;
    Ok(keys)
}

fn write_private(path: &Path, contents: &[u8]) -> Result<(), NodesError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    use std::os::unix::fs::PermissionsExt as _;
    let result = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut file| {
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            file.write_all(contents)
        });
    result.map_err(|source| NodesError::RootDir {
        path: path.to_owned(),
        source,
    })
}

fn validate_hostname(hostname: &str) -> Result<(), NodesError> {
    let valid = !hostname.is_empty()
        && hostname.len() <= 253
        && !hostname.starts_with(['.', '-'])
        && hostname
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if valid {
        Ok(())
    } else {
        Err(NodesError::InvalidHostname {
            hostname: hostname.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::time::Duration;

    use super::*;

    fn assert_send<T: Send>(_: &T) {}

    #[test]
    fn nodes_can_be_shared_across_tasks() {
        fn assert_shareable<T: Send + Sync + Clone + 'static>() {}
        assert_shareable::<Nodes>();
        let dir = tempfile::tempdir().expect("tempdir");
        let nodes = Nodes::new(NodesConfig {
            root_dir: dir.path().to_owned(),
            ssh_port: 2222,
            backend: SshBackend::Embedded,
        })
        .expect("nodes");
        let spec = NodeSpec {
            device_id: "d".to_owned(),
            hostname: "h".to_owned(),
            public_ip: Ipv4Addr::LOCALHOST,
            private_ip: Ipv4Addr::LOCALHOST,
            user_data: String::new(),
            ssh_refused_for: Duration::ZERO,
            apiserver_start_delay: Duration::ZERO,
            packet_metadata: true,
        };
        // Never polled: only its type matters (spawnable from any task).
        let future = nodes.start_node(spec);
        assert_send(&future);
    }

    #[test]
    fn hostnames_must_be_plain_dns_names() {
        for bad in ["", "../x", "a/b", ".hidden", "-x", "a b"] {
            assert!(validate_hostname(bad).is_err(), "{bad:?}");
        }
        assert!(validate_hostname("mercury-controller-0").is_ok());
    }

    #[test]
    fn the_openssh_backend_needs_its_binary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let error = Nodes::new(NodesConfig {
            root_dir: dir.path().to_owned(),
            ssh_port: 2222,
            backend: SshBackend::OpenSsh {
                sshd_path: dir.path().join("no-sshd"),
            },
        })
        .expect_err("missing sshd");
        assert!(error.to_string().contains("no-sshd"), "{error}");
    }
}
