//! What the rack tests share: the simulator's rack settings and nodes, and the tutorial's first
//! node with the Ignition loko renders for it.

use std::path::Path;
use std::time::Duration;

use sim::nodes::{Nodes, NodesConfig, SshBackend};
use sim::rack::RackConfig;

/// A rack on a free local port whose BMCs take `username` admin and `password`, power on after
/// `power_delay`, never refuse SSH, and serve a booted node's apiserver after
/// `apiserver_start_delay`.
pub fn rack_config(
    password: &str,
    power_delay: Duration,
    apiserver_start_delay: Duration,
) -> RackConfig {
    RackConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        username: "admin".to_owned(),
        password: password.to_owned(),
        power_delay,
        ssh_refused_for: Duration::ZERO,
        apiserver_start_delay,
        state_file: None,
    }
}

/// The simulator's nodes under `root/nodes`, reached by the embedded SSH server on `ssh_port`.
pub fn embedded_nodes(root: &Path, ssh_port: u16) -> Nodes {
    Nodes::new(NodesConfig {
        root_dir: root.join("nodes"),
        ssh_port,
        backend: SshBackend::Embedded,
    })
    .unwrap()
}

/// The tutorial's first node and the Ignition loko renders for it, its host key in an asset
/// directory under `root` (the kubeconfig is a stub: the rack tests never reach an apiserver).
pub fn tutorial_node_ignition(root: &Path) -> (specs::DesiredNode, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/tutorial.yaml");
    let cluster = specs::load(&path).unwrap().desired();
    let node = cluster.nodes.first().unwrap().clone();
    let dir = steps::assets::AssetDir::create(root.join("assets")).unwrap();
    let key = steps::ignition::ensure_host_key(&dir, &node.hostname).unwrap();
    let kubeconfig = "apiVersion: v1\nkind: Config\nclusters: []\n";
    let ignition = steps::ignition::render(&cluster, &node, &key, kubeconfig).unwrap();
    (node, ignition)
}
