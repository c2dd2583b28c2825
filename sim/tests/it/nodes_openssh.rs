//! Emulated nodes served by a real OpenSSH sshd per node, driven by the real OpenSSH client.
//! Clients log in as the simulator's OS user (`Nodes::ssh_login_user`), with `core`'s keys.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use sim::nodes::{NodeSpec, Nodes, NodesConfig, SshBackend};

use crate::nodes_support::{
    IgnitionSpec, SshClient, cluster, control_plane_pki, free_port, ignition, ssh_keygen,
    static_apiserver_pod, tar, text,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_sshd_admits_ignition_keys_runs_commands_in_the_node_and_installs_the_control_plane() {
    let sshd = PathBuf::from("/usr/sbin/sshd");
    assert!(
        sshd.is_file(),
        "openssh-server must be installed for this test"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let (key, public) = ssh_keygen(dir.path(), "admin");
    let (stranger_key, _) = ssh_keygen(dir.path(), "stranger");
    let (host_private, host_public) = ssh_keygen(dir.path(), "host");
    let ip = Ipv4Addr::new(127, 77, 3, 1);
    let port = free_port(ip);
    let nodes = Nodes::new(NodesConfig {
        root_dir: dir.path().join("nodes"),
        ssh_port: port,
        backend: SshBackend::OpenSsh { sshd_path: sshd },
    })
    .expect("nodes");
    let pki = cluster(&dir.path().join("pki"), "saturn");
    let user_data = ignition(&IgnitionSpec {
        authorized_keys: vec![public],
        host_key: Some(std::fs::read_to_string(&host_private).expect("host key")),
        kubelet_kubeconfig: Some(&pki.kubelet_kubeconfig),
        controller: true,
    });
    let node = NodeSpec {
        device_id: "dev-o1".to_owned(),
        hostname: "saturn-controller-0".to_owned(),
        public_ip: ip,
        private_ip: Ipv4Addr::new(10, 88, 3, 1),
        user_data,
        ssh_refused_for: Duration::ZERO,
        apiserver_start_delay: Duration::ZERO,
    };
    nodes.start_node(node.clone()).await.expect("node starts");
    let addr = SocketAddr::from((ip, port));
    let user = nodes.ssh_login_user();
    let client = SshClient::new(dir.path(), key, &user, addr, &host_public);
    client.wait_ready().await;

    let output = client.run("echo hi; pwd", b"").await;
    assert!(output.status.success(), "{}", text(&output));
    let node_home = nodes.node_root("saturn-controller-0").join("home/core");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("hi\n{}\n", node_home.display())
    );

    let stranger = SshClient::new(dir.path(), stranger_key, &user, addr, &host_public);
    let output = stranger.run("echo hi", b"").await;
    assert_eq!(output.status.code(), Some(255), "{}", text(&output));

    // loko's own command line (steps/src/bootstrap.rs): stage by tar into a private
    // directory, then rename each file into place, the PKI before the pods.
    let install = "sudo rm -rf /etc/kubernetes/.loko-control-plane \
    && sudo mkdir -p -m 0700 /etc/kubernetes/.loko-control-plane \
    && sudo tar -x --no-same-owner -C /etc/kubernetes/.loko-control-plane \
    && sudo mkdir -p /etc/kubernetes/pki /etc/kubernetes/manifests \
    && sudo chmod 0700 /etc/kubernetes/pki \
    && sudo sh -c 'mv -f /etc/kubernetes/.loko-control-plane/pki/* /etc/kubernetes/pki/ \
        && mv -f /etc/kubernetes/.loko-control-plane/manifests/* /etc/kubernetes/manifests/' \
    && sudo rm -rf /etc/kubernetes/.loko-control-plane";
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
        assert!(!root.join("etc/kubernetes/.loko-control-plane").exists());
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !nodes
        .static_pods()
        .get("saturn-controller-0")
        .and_then(|pods| pods.get("kube-apiserver"))
        .is_some_and(|pod| pod.running)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the static apiserver never ran: {:?}",
            nodes.static_pods()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A restart keeps the machine's disk; its sshd comes back on the same address.
    nodes.start_node(node.clone()).await.expect("node restarts");
    client.wait_ready().await;
    assert!(root.join("etc/kubernetes/pki/apiserver.key").is_file());

    nodes.stop_node("dev-o1").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let output = client.run("echo hi", b"").await;
        if output.status.code() == Some(255) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "sshd kept running after stop_node"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // A new device of the same name is a new machine: a fresh disk.
    nodes
        .start_node(NodeSpec {
            device_id: "dev-o2".to_owned(),
            ..node
        })
        .await
        .expect("replacement node starts");
    assert!(!root.join("etc/kubernetes/pki/apiserver.key").exists());
    client.wait_ready().await;
}
