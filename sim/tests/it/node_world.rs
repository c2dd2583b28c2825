//! A started simulated node and what every node test needs around it: one `Nodes` on a free
//! port, the admin's key that each node's Ignition authorizes, the host key it pins, and
//! OpenSSH clients that trust it. A test states only its addresses and what its nodes carry.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use sim::StaticPodStatus;
use sim::nodes::{NodeSpec, Nodes, NodesConfig, SshBackend};

use crate::nodes_support::{IgnitionSpec, SshClient, free_port, ignition, ssh_keygen};

/// Nodes served on one SSH port, in a temporary directory, with an admin key and a host key.
pub struct NodeWorld {
    pub dir: tempfile::TempDir,
    pub nodes: Nodes,
    pub port: u16,
    /// The admin's private key file, authorized by [`NodeWorld::ignition`].
    pub key: PathBuf,
    /// The admin's public key line.
    pub public: String,
    /// The OpenSSH private key text every node's Ignition installs as its host key.
    pub host_key: String,
    /// The host key's public line, which the clients trust.
    pub host_public: String,
}

impl NodeWorld {
    /// Nodes on the embedded SSH server, on a port free on `ip`.
    pub fn new(ip: Ipv4Addr) -> NodeWorld {
        NodeWorld::with_backend(ip, SshBackend::Embedded)
    }

    pub fn with_backend(ip: Ipv4Addr, backend: SshBackend) -> NodeWorld {
        let dir = tempfile::tempdir().expect("tempdir");
        let (key, public) = ssh_keygen(dir.path(), "admin");
        let (host_private, host_public) = ssh_keygen(dir.path(), "host");
        let host_key = std::fs::read_to_string(&host_private).expect("host key");
        let port = free_port(ip);
        let nodes = Nodes::new(NodesConfig {
            root_dir: dir.path().join("nodes"),
            ssh_port: port,
            backend,
        })
        .expect("nodes");
        NodeWorld {
            dir,
            nodes,
            port,
            key,
            public,
            host_key,
            host_public,
        }
    }

    /// Ignition authorizing the admin's key and installing the host key.
    pub fn ignition(&self, kubelet_kubeconfig: Option<&str>, controller: bool) -> String {
        ignition(&IgnitionSpec {
            authorized_keys: vec![self.public.clone()],
            host_key: Some(self.host_key.clone()),
            kubelet_kubeconfig,
            controller,
        })
    }

    /// Starts `spec`'s node; panics naming `what` if it does not start.
    pub async fn start(&self, spec: NodeSpec, what: &str) {
        self.nodes
            .start_node(spec)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
    }

    /// The node's SSH address.
    pub fn addr(&self, ip: Ipv4Addr) -> SocketAddr {
        SocketAddr::from((ip, self.port))
    }

    /// An OpenSSH client logging in as `user` with the admin's key, trusting the host key.
    pub fn client(&self, user: &str, ip: Ipv4Addr) -> SshClient {
        self.client_with(self.key.clone(), user, ip)
    }

    /// An OpenSSH client logging in as `core` with the admin's key.
    pub fn core(&self, ip: Ipv4Addr) -> SshClient {
        self.client("core", ip)
    }

    /// An OpenSSH client logging in as `user` with `key`, trusting the host key.
    pub fn client_with(&self, key: PathBuf, user: &str, ip: Ipv4Addr) -> SshClient {
        SshClient::new(self.dir.path(), key, user, self.addr(ip), &self.host_public)
    }

    /// Waits until `host` runs a static pod of manifest file or component `key`, and returns its
    /// status once `done` holds for it.
    pub async fn static_pod(
        &self,
        host: &str,
        key: &str,
        done: impl Fn(&StaticPodStatus) -> bool,
    ) -> StaticPodStatus {
        eventually(
            Duration::from_secs(30),
            Duration::from_millis(100),
            async || {
                let pods = self.nodes.static_pods();
                pods.get(host)
                    .and_then(|pods| pods.get(key))
                    .filter(|status| done(status))
                    .cloned()
                    .ok_or_else(|| format!("no static pod {key} on {host} as expected: {pods:?}"))
            },
        )
        .await
    }
}

/// A node `hostname` (device `device_id`) on `ip`, with a private address in 10.88.0.0/24 and
/// an apiserver that takes 300 ms to serve.
pub fn spec(hostname: &str, device_id: &str, ip: Ipv4Addr, user_data: String) -> NodeSpec {
    NodeSpec {
        device_id: device_id.to_owned(),
        hostname: hostname.to_owned(),
        public_ip: ip,
        private_ip: Ipv4Addr::new(10, 88, 0, ip.octets()[3]),
        user_data,
        ssh_refused_for: Duration::ZERO,
        apiserver_start_delay: Duration::from_millis(300),
        packet_metadata: true,
    }
}

/// Embedded-SSH nodes in a temporary directory on a port free on 127.0.0.1 (which loopback
/// address a node takes is its device's business): for tests that need no keys.
pub fn loopback_nodes() -> (tempfile::TempDir, u16, Nodes) {
    let roots = tempfile::tempdir().expect("tempdir");
    let ssh_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let nodes = Nodes::new(NodesConfig {
        root_dir: roots.path().to_owned(),
        ssh_port,
        backend: SshBackend::Embedded,
    })
    .expect("nodes");
    (roots, ssh_port, nodes)
}

/// Runs `probe` every `every` until it gives a value; panics with its last complaint once
/// `within` has passed.
pub async fn eventually<T>(
    within: Duration,
    every: Duration,
    mut probe: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(complaint) => assert!(Instant::now() < deadline, "{complaint}"),
        }
        tokio::time::sleep(every).await;
    }
}

/// An OpenSSH `program` (ssh, scp, sftp) with `client`'s key and known hosts only, and
/// `port_flag` (`-p` for ssh, `-P` for scp and sftp) naming the node's port.
pub fn openssh(client: &SshClient, program: &str, port_flag: &str) -> std::process::Command {
    let mut command = std::process::Command::new(program);
    command
        .args(["-F", "/dev/null", "-o", "BatchMode=yes"])
        .args([
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "StrictHostKeyChecking=yes",
        ])
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            client.known_hosts.display()
        ))
        .arg("-i")
        .arg(&client.key)
        .arg(port_flag)
        .arg(client.addr.port().to_string());
    command
}
