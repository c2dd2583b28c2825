//! Emulated nodes served by a real OpenSSH sshd per node, driven by the real OpenSSH client.
//! Clients log in as the simulator's OS user (`Nodes::ssh_login_user`), with `core`'s keys.

mod nodes_support;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use sim::nodes::{NodeSpec, Nodes, NodesConfig, SshBackend};

use nodes_support::{IgnitionSpec, SshClient, cluster, free_port, ignition, ssh_keygen, text};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_sshd_admits_ignition_keys_runs_commands_in_the_node_and_starts_bootkube() {
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

    let tarball = std::process::Command::new("tar")
        .arg("-C")
        .arg(&pki.assets)
        .args(["-cf", "-", "."])
        .output()
        .expect("tar");
    let start = "sudo systemctl start bootkube || (sudo journalctl -u bootkube --no-pager; exit 1)";
    let output = client.run(start, b"").await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("tls/apiserver.key"),
        "{}",
        text(&output)
    );
    // loko's own command lines (steps/src/bootstrap.rs): probe, copy by tar into a partial
    // directory renamed into place, start.
    let probe = "if test -f /opt/bootkube/init_bootkube.done; then echo done; \
        elif test -d /opt/bootkube/assets; then echo copied; else echo fresh; fi";
    let output = client.run(probe, b"").await;
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "fresh\n",
        "{}",
        text(&output)
    );
    let copy = "sudo rm -rf /opt/bootkube/assets.partial \
        && sudo mkdir -p /opt/bootkube/assets.partial \
        && sudo tar -x --no-same-owner -C /opt/bootkube/assets.partial \
        && sudo mv /opt/bootkube/assets.partial /opt/bootkube/assets";
    let output = client.run(copy, &tarball.stdout).await;
    assert!(output.status.success(), "{}", text(&output));
    let output = client.run(probe, b"").await;
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "copied\n",
        "{}",
        text(&output)
    );
    let output = client.run(start, b"").await;
    assert!(output.status.success(), "{}", text(&output));
    let output = client.run(probe, b"").await;
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "done\n",
        "{}",
        text(&output)
    );
    assert_eq!(nodes.bootkube_starts().get("saturn-controller-0"), Some(&2));
    assert!(
        nodes
            .node_root("saturn-controller-0")
            .join("opt/bootkube/init_bootkube.done")
            .exists()
    );

    // A restart keeps the machine's disk; its sshd comes back on the same address.
    nodes.start_node(node.clone()).await.expect("node restarts");
    client.wait_ready().await;
    assert!(
        nodes
            .node_root("saturn-controller-0")
            .join("opt/bootkube/init_bootkube.done")
            .exists()
    );

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

    // A new device of the same name is a new machine: a fresh disk, but the start count stays.
    nodes
        .start_node(NodeSpec {
            device_id: "dev-o2".to_owned(),
            ..node
        })
        .await
        .expect("replacement node starts");
    assert!(
        !nodes
            .node_root("saturn-controller-0")
            .join("opt/bootkube/init_bootkube.done")
            .exists()
    );
    assert_eq!(nodes.bootkube_starts().get("saturn-controller-0"), Some(&2));
    client.wait_ready().await;
}
