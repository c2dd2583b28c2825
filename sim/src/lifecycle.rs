//! The seam between the simulated cloud and the simulated machines.
//!
//! The cloud decides when a device is up; the node side (SSH server, shims, apiserver) makes an
//! up device reachable. The cloud only knows this trait, so it can be tested without any node,
//! and the node side knows nothing of HTTP.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::Ipv4Addr;
use std::pin::Pin;
use std::time::Duration;

/// What the node side needs to bring one device's machine up.
#[derive(Clone, PartialEq, Eq)]
pub struct NodeSpec {
    /// The device's UUID.
    pub device_id: String,
    /// The device's hostname.
    pub hostname: String,
    /// Where the node's SSH server (and apiserver) listens.
    pub public_ip: Ipv4Addr,
    /// The node's address in the project's private block.
    pub private_ip: Ipv4Addr,
    /// The device's `userdata` (an Ignition config for Flatcar).
    pub user_data: String,
    /// Real time during which SSH connections are refused after boot.
    pub ssh_refused_for: Duration,
    /// Real time between a valid static apiserver pod appearing and the apiserver answering.
    pub apiserver_start_delay: Duration,
    /// A Packet device, whose metadata service serves `COREOS_PACKET_*`; false for a rack's
    /// machine, which has none.
    pub packet_metadata: bool,
}

impl std::fmt::Debug for NodeSpec {
    // `user_data` may hold keys and tokens; it never goes to logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeSpec")
            .field("device_id", &self.device_id)
            .field("hostname", &self.hostname)
            .field("public_ip", &self.public_ip)
            .field("private_ip", &self.private_ip)
            .field(
                "user_data",
                &format_args!("<{} bytes>", self.user_data.len()),
            )
            .field("ssh_refused_for", &self.ssh_refused_for)
            .field("apiserver_start_delay", &self.apiserver_start_delay)
            .field("packet_metadata", &self.packet_metadata)
            .finish()
    }
}

/// A boxed future, so that the trait can be used as `dyn NodeLifecycle`.
pub type NodeFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Starts and stops the machines behind devices.
pub trait NodeLifecycle: Send + Sync + 'static {
    /// Brings up the machine of a device that just became active. An error is logged; the
    /// device stays active, as a real machine whose SSH never comes up would.
    fn start_node(&self, spec: NodeSpec) -> NodeFuture<'_, Result<(), String>>;
    /// Takes down the machine of a device that is being deprovisioned.
    fn stop_node<'a>(&'a self, device_id: &'a str) -> NodeFuture<'a, ()>;
    /// Each running node's static pods, and whether they run, by hostname and pod.
    fn static_pods(&self) -> BTreeMap<String, BTreeMap<String, StaticPodStatus>> {
        BTreeMap::new()
    }
    /// Whether each running node's kubelet started, and why not, by hostname.
    fn kubelets(&self) -> BTreeMap<String, KubeletStatus> {
        BTreeMap::new()
    }
    /// The log of cordons, evictions, Node deletions and device deletions (a clone shares
    /// it). Without machines there is no apiserver: a fresh, unshared log.
    fn api_events(&self) -> crate::apiserver::ApiEvents {
        crate::apiserver::ApiEvents::default()
    }
}

/// Whether a node's `kubelet.service` started a kubelet, as the judge (`crate::judge::kubelet`)
/// decided from the node's Ignition.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KubeletStatus {
    /// The kubelet runs and registered with the apiserver.
    pub running: bool,
    /// Why it would not start on a real Flatcar node (empty when it runs).
    pub problems: Vec<String>,
}

/// Whether a static pod of a node's kubelet runs, as the judge (`crate::judge::pod`) decided
/// from the file in its manifest path and the files it names.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StaticPodStatus {
    /// The pod's container runs.
    pub running: bool,
    /// The component it runs (`kube-apiserver`), when it runs.
    pub component: String,
    /// Why it would not run on a real node (empty when it runs).
    pub problems: Vec<String>,
}

/// Devices without machines: the cloud alone, for tests of the APIs.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoNodes;

impl NodeLifecycle for NoNodes {
    fn start_node(&self, _spec: NodeSpec) -> NodeFuture<'_, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }

    fn stop_node<'a>(&'a self, _device_id: &'a str) -> NodeFuture<'a, ()> {
        Box::pin(async {})
    }
}
