//! A controller's kube-apiserver reaches etcd only at hosts the etcd members' serving
//! certificate names (its etcd-member unit's `--cert-file`), as Go's TLS checks them: with a
//! certificate naming other hosts, the pod is reported with etcd's refusal and serves nothing;
//! with one naming its `--etcd-servers`, it runs.

use std::net::Ipv4Addr;

use crate::apiserver_support::etcd_servers;
use crate::node_world::{NodeWorld, spec};
use crate::nodes_support::{cluster, control_plane_pki, tar, text};
use crate::static_pods::static_apiserver_pod;

/// The test Ignition's etcd member, and the same member serving `/etc/ssl/etcd/etcd/server.crt`
/// from the host's `/etc/ssl/etcd`, as Lokomotive's etcd-member.service runs it.
const PLAIN_ETCD: &str = "--network host quay.io/coreos/etcd:v3.5.17 /usr/local/bin/etcd";
const ETCD_WITH_CERT: &str = "--network host -v /etc/ssl/etcd:/etc/ssl/etcd:ro \
     quay.io/coreos/etcd:v3.5.17 /usr/local/bin/etcd --cert-file=/etc/ssl/etcd/etcd/server.crt";

/// A self-signed certificate naming `names` (an address as an IP address SAN), as PEM.
fn certificate(names: &[&str]) -> Vec<u8> {
    let key = rcgen::KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let cert = rcgen::CertificateParams::new(names)
        .unwrap()
        .self_signed(&key)
        .unwrap();
    cert.pem().into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apiserver_runs_only_when_the_etcd_certificate_names_its_etcd_servers() {
    let ip = Ipv4Addr::new(127, 77, 41, 3);
    let world = NodeWorld::new(ip);
    let dir = world.dir.path();
    let pki = cluster(&dir.join("pki"), "saturn");
    let ignition = world.ignition(Some(&pki.kubelet_kubeconfig), true);
    assert!(ignition.contains(PLAIN_ETCD), "{ignition}");
    let ignition = ignition.replace(PLAIN_ETCD, ETCD_WITH_CERT);
    world
        .start(
            spec("saturn-controller-0", "dev-c0", ip, ignition),
            "controller",
        )
        .await;
    let core = world.core(ip);
    let etcd =
        "sudo mkdir -p /etc/ssl/etcd/etcd && sudo tar -x --no-same-owner -C /etc/ssl/etcd/etcd";
    let kubernetes =
        "sudo mkdir -p /etc/kubernetes && sudo tar -x --no-same-owner -C /etc/kubernetes";

    // The members named by their addresses, the apiserver dialing a name: refused.
    let server = |names: &[&str]| tar(dir, &[("server.crt", certificate(names))]);
    let output = core
        .run(etcd, &server(&["localhost", "10.10.0.11", "127.0.0.1"]))
        .await;
    assert!(output.status.success(), "{}", text(&output));
    let mut files = control_plane_pki(&pki);
    files.push((
        "manifests/kube-apiserver.json",
        static_apiserver_pod(&pki).into_bytes(),
    ));
    let output = core.run(kubernetes, &tar(dir, &files)).await;
    assert!(output.status.success(), "{}", text(&output));
    let host = etcd_servers(&pki)
        .trim_start_matches("https://")
        .trim_end_matches(":2379")
        .to_owned();
    let refused = world
        .static_pod("saturn-controller-0", "kube-apiserver.json", |status| {
            !status.problems.is_empty()
        })
        .await
        .problems
        .join("\n");
    assert!(
        refused.contains(&format!(
            "kube-apiserver exits: cannot reach etcd at {}: transport: authentication \
             handshake failed: tls: failed to verify certificate: x509: certificate is valid \
             for localhost, not {host}",
            etcd_servers(&pki)
        )),
        "{refused}"
    );

    // A certificate naming the host it dials: the apiserver runs.
    let output = core.run(etcd, &server(&[&host, "localhost"])).await;
    assert!(output.status.success(), "{}", text(&output));
    world
        .static_pod("saturn-controller-0", "kube-apiserver", |status| {
            status.running
        })
        .await;
}
