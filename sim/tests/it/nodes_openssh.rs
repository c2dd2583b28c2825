//! Emulated nodes served by a real OpenSSH sshd per node, driven by the real OpenSSH client.
//! Clients log in as the simulator's OS user (`Nodes::ssh_login_user`), with `core`'s keys.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use sim::nodes::{NodeSpec, SshBackend};

use crate::node_world::{NodeWorld, eventually, spec};
use crate::nodes_support::{cluster, control_plane_pki, ssh_keygen, tar, text};
use crate::static_pods::static_apiserver_pod;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_sshd_admits_ignition_keys_runs_commands_in_the_node_and_installs_the_control_plane() {
    let sshd = PathBuf::from("/usr/sbin/sshd");
    assert!(
        sshd.is_file(),
        "openssh-server must be installed for this test"
    );
    let ip = Ipv4Addr::new(127, 77, 3, 1);
    let world = NodeWorld::with_backend(ip, SshBackend::OpenSsh { sshd_path: sshd });
    let (dir, nodes) = (&world.dir, &world.nodes);
    let (stranger_key, _) = ssh_keygen(dir.path(), "stranger");
    let pki = cluster(&dir.path().join("pki"), "saturn");
    let user_data = world.ignition(Some(&pki.kubelet_kubeconfig), true);
    let node = NodeSpec {
        private_ip: Ipv4Addr::new(10, 88, 3, 1),
        apiserver_start_delay: Duration::ZERO,
        packet_metadata: true,
        ..spec("saturn-controller-0", "dev-o1", ip, user_data)
    };
    world.start(node.clone(), "node starts").await;
    let user = nodes.ssh_login_user();
    let client = world.client(&user, ip);
    client.wait_ready().await;

    let output = client.run("echo hi; pwd", b"").await;
    assert!(output.status.success(), "{}", text(&output));
    let node_home = nodes.node_root("saturn-controller-0").join("home/core");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("hi\n{}\n", node_home.display())
    );

    let stranger = world.client_with(stranger_key, &user, ip);
    let output = stranger.run("echo hi", b"").await;
    assert_eq!(output.status.code(), Some(255), "{}", text(&output));

    // What any installer of the control plane needs from a node: sudo, a tar read from stdin,
    // directories made under the node's /etc. loko's own command line (steps/src/control_plane.rs)
    // runs on these OpenSSH nodes through `loko run` in tests/it/run_e2e.rs; the simulator's
    // tests do not keep a copy of it, which would go stale.
    let install = "sudo mkdir -p /etc/kubernetes && sudo tar -x --no-same-owner -C /etc/kubernetes";
    let mut files = control_plane_pki(&pki);
    files.push((
        "manifests/kube-apiserver.json",
        static_apiserver_pod(&pki).into_bytes(),
    ));
    let archive = tar(dir.path(), &files);
    let root = nodes.node_root("saturn-controller-0");
    for _ in 0..2 {
        // A rerun converges to the same files.
        let output = client.run(install, &archive).await;
        assert!(output.status.success(), "{}", text(&output));
        assert!(root.join("etc/kubernetes/pki/apiserver.key").is_file());
        assert!(
            root.join("etc/kubernetes/manifests/kube-apiserver.json")
                .is_file()
        );
    }
    world
        .static_pod("saturn-controller-0", "kube-apiserver", |pod| pod.running)
        .await;

    // A restart keeps the machine's disk; its sshd comes back on the same address.
    world.start(node.clone(), "node restarts").await;
    client.wait_ready().await;
    assert!(root.join("etc/kubernetes/pki/apiserver.key").is_file());

    nodes.stop_node("dev-o1").await;
    eventually(
        Duration::from_secs(60),
        Duration::from_millis(300),
        async || {
            let output = client.run("echo hi", b"").await;
            (output.status.code() == Some(255))
                .then_some(())
                .ok_or_else(|| "sshd kept running after stop_node".to_owned())
        },
    )
    .await;

    // A new device of the same name is a new machine: a fresh disk.
    world
        .start(
            NodeSpec {
                device_id: "dev-o2".to_owned(),
                ..node
            },
            "replacement node starts",
        )
        .await;
    assert!(!root.join("etc/kubernetes/pki/apiserver.key").exists());
    client.wait_ready().await;
}
