//! Rendering the assets of a 1000-node cluster: the PKI, the kubeconfigs, the manifests, and
//! each node's host key and Ignition (written to disk, as `loko run` does). Prints figures.

use std::time::{Instant, SystemTime};

use steps::assets::{AssetDir, kubeconfig, manifests, pki};
use steps::ignition;

fn main() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/tutorial.yaml"
    ))
    .expect("examples/tutorial.yaml");
    // Pools hold at most 100 nodes: 3 controllers and 997 workers in 10 pools.
    let head = text.split("worker_pools:").next().expect("worker_pools");
    let mut text = head.replace("controller_count: 1", "controller_count: 3") + "worker_pools:\n";
    for i in 0..10 {
        let count = if i == 9 { 97 } else { 100 };
        text.push_str(&format!(
            "  - pool_name: pool{i}\n    count: {count}\n    type: t1.small.x86\n"
        ));
    }
    let cluster = specs::parse(&text, "bench.yaml").expect("spec").desired();
    assert_eq!(cluster.nodes.len(), 1000);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = AssetDir::create(tmp.path()).expect("asset dir");

    for round in ["first (keys generated)", "again (everything exists)"] {
        let start = Instant::now();
        pki::ensure_pki(
            &dir,
            &pki::PkiInputs::from_desired(&cluster),
            SystemTime::now(),
        )
        .expect("pki");
        let pki_done = start.elapsed();
        let token = steps::assets::bootstrap_token::ensure_token(&dir, SystemTime::now(), true)
            .expect("bootstrap token");
        kubeconfig::write_kubeconfigs(&dir, &cluster, &token).expect("kubeconfigs");
        let kubelet = kubeconfig::kubelet_kubeconfig(&dir, &cluster).expect("kubelet");
        manifests::render_manifests(&dir, &cluster).expect("manifests");
        let shared_done = start.elapsed();
        let mut rendering = std::time::Duration::ZERO;
        for node in &cluster.nodes {
            let key = ignition::ensure_host_key(&dir, &node.hostname).expect("host key");
            let before = Instant::now();
            let text = ignition::render(&cluster, node, &key, &kubelet).expect("render");
            rendering += before.elapsed();
            ignition::write(&dir, &node.hostname, &text).expect("write");
        }
        let total = start.elapsed();
        println!(
            "assets of 1000 nodes, {round}: total {:.3} s (pki {:.3} s, kubeconfigs+manifests {:.3} s, \
             1000 host keys + Ignition {:.3} s, of which rendering the Ignition in memory {:.3} s; \
             the rest is key generation and fsync'd writes)",
            total.as_secs_f64(),
            pki_done.as_secs_f64(),
            (shared_done - pki_done).as_secs_f64(),
            (total - shared_done).as_secs_f64(),
            rendering.as_secs_f64(),
        );
    }
}
