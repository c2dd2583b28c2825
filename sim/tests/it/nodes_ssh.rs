//! Emulated nodes over the embedded SSH server, driven by the real OpenSSH client.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use sim::nodes::{NodeSpec, Nodes, NodesConfig, SshBackend};

use crate::nodes_support::{
    IgnitionSpec, SshClient, apply_manifests, cluster, control_plane_pki, free_port, ignition,
    kubectl, ssh_keygen, static_apiserver_pod, static_scheduler_pod, tar, text,
};

fn spec(hostname: &str, device_id: &str, ip: Ipv4Addr, user_data: String) -> NodeSpec {
    NodeSpec {
        device_id: device_id.to_owned(),
        hostname: hostname.to_owned(),
        public_ip: ip,
        private_ip: Ipv4Addr::new(10, 88, 0, ip.octets()[3]),
        user_data,
        ssh_refused_for: Duration::ZERO,
        apiserver_start_delay: Duration::from_millis(300),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_auth_admits_core_with_ignition_keys_and_presents_the_ignition_host_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (key, public) = ssh_keygen(dir.path(), "admin");
    let (stranger_key, _) = ssh_keygen(dir.path(), "stranger");
    let (host_private, host_public) = ssh_keygen(dir.path(), "host");
    let (_, other_host_public) = ssh_keygen(dir.path(), "other-host");
    let ip = Ipv4Addr::new(127, 77, 2, 1);
    let port = free_port(ip);
    let nodes = Nodes::new(NodesConfig {
        root_dir: dir.path().join("nodes"),
        ssh_port: port,
        backend: SshBackend::Embedded,
    })
    .expect("nodes");
    let user_data = ignition(&IgnitionSpec {
        authorized_keys: vec![public],
        host_key: Some(std::fs::read_to_string(&host_private).expect("host key")),
        ..Default::default()
    });
    nodes
        .start_node(spec("k-worker-0", "dev-1", ip, user_data))
        .await
        .expect("node starts");
    let addr = SocketAddr::from((ip, port));

    let core = SshClient::new(dir.path(), key.clone(), "core", addr, &host_public);
    let output = core.run("echo hi; echo oops >&2; exit 3", b"").await;
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "hi\n");
    assert_eq!(String::from_utf8_lossy(&output.stderr), "oops\n");

    // `ssh -tt` asks for a terminal; the command runs (on pipes).
    let output = tokio::process::Command::new("ssh")
        .args([
            "-F",
            "/dev/null",
            "-tt",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
        ])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", core.known_hosts.display()))
        .arg("-i")
        .arg(&core.key)
        .arg("-p")
        .arg(port.to_string())
        .arg(format!("core@{ip}"))
        .arg("echo with-tty")
        .stdin(std::process::Stdio::null())
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), output)
        .await
        .expect("ssh -tt finished")
        .expect("run ssh -tt");
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("with-tty"),
        "{}",
        text(&output)
    );

    let stranger = SshClient::new(dir.path(), stranger_key, "core", addr, &host_public);
    let output = stranger.run("echo hi", b"").await;
    assert_eq!(output.status.code(), Some(255), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("Permission denied"),
        "{}",
        text(&output)
    );

    let root = SshClient::new(dir.path(), key.clone(), "root", addr, &host_public);
    let output = root.run("echo hi", b"").await;
    assert_eq!(output.status.code(), Some(255), "{}", text(&output));

    // A client that expects another host key must refuse to talk to the node.
    let mitm = SshClient::new(
        &dir.path().join("nodes"),
        key,
        "core",
        addr,
        &other_host_public,
    );
    let output = mitm.run("echo hi", b"").await;
    assert_eq!(output.status.code(), Some(255), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("HOST IDENTIFICATION HAS CHANGED"),
        "{}",
        text(&output)
    );

    // A session open when the node stops is cut, like a powered-off machine's.
    let mut long = tokio::process::Command::new("ssh")
        .args([
            "-F",
            "/dev/null",
            "-T",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
        ])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", core.known_hosts.display()))
        .arg("-i")
        .arg(&core.key)
        .arg("-p")
        .arg(port.to_string())
        .arg(format!("core@{ip}"))
        .arg("echo started; sleep 600")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn ssh");
    let mut stdout = tokio::io::BufReader::new(long.stdout.take().expect("stdout"));
    let mut line = String::new();
    tokio::io::AsyncBufReadExt::read_line(&mut stdout, &mut line)
        .await
        .expect("read the first line");
    assert_eq!(line, "started\n");

    nodes.stop_node("dev-1").await;
    let status = tokio::time::timeout(Duration::from_secs(60), long.wait())
        .await
        .expect("the open session ends when the node stops")
        .expect("ssh status");
    assert!(!status.success());
    let output = core.run("echo hi", b"").await;
    assert_eq!(
        output.status.code(),
        Some(255),
        "a stopped node answers no SSH: {}",
        text(&output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_arrive_by_tar_and_cat_and_node_paths_stay_in_the_node_root() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (key, public) = ssh_keygen(dir.path(), "admin");
    let (host_private, host_public) = ssh_keygen(dir.path(), "host");
    let ip = Ipv4Addr::new(127, 77, 2, 2);
    let port = free_port(ip);
    let nodes = Nodes::new(NodesConfig {
        root_dir: dir.path().join("nodes"),
        ssh_port: port,
        backend: SshBackend::Embedded,
    })
    .expect("nodes");
    let user_data = ignition(&IgnitionSpec {
        authorized_keys: vec![public],
        host_key: Some(std::fs::read_to_string(&host_private).expect("host key")),
        // A kubelet is active only with the kubeconfig its --kubeconfig names.
        kubelet_kubeconfig: Some("apiVersion: v1\nkind: Config\n"),
        controller: true,
    });
    nodes
        .start_node(spec("k-controller-0", "dev-2", ip, user_data))
        .await
        .expect("node starts");
    let core = SshClient::new(
        dir.path(),
        key,
        "core",
        SocketAddr::from((ip, port)),
        &host_public,
    );

    let upload = dir.path().join("upload");
    std::fs::create_dir_all(upload.join("tls")).expect("upload dir");
    std::fs::write(upload.join("tls/etcd-client.crt"), "CERT").expect("upload file");
    let tarball = std::process::Command::new("tar")
        .arg("-C")
        .arg(&upload)
        .args(["-cf", "-", "."])
        .output()
        .expect("tar");
    let output = core
        .run(
            "mkdir -p $HOME/assets && tar -x -C $HOME/assets",
            &tarball.stdout,
        )
        .await;
    assert!(output.status.success(), "{}", text(&output));
    let output = core
        .run("cat > $HOME/note.txt", b"written through stdin\n")
        .await;
    assert!(output.status.success(), "{}", text(&output));

    let node_root = nodes.node_root("k-controller-0");
    assert_eq!(
        std::fs::read_to_string(node_root.join("home/core/assets/tls/etcd-client.crt"))
            .expect("uploaded"),
        "CERT"
    );
    assert_eq!(
        std::fs::read_to_string(node_root.join("home/core/note.txt")).expect("catted"),
        "written through stdin\n"
    );

    let output = core
        .run(
            "sudo mkdir -p /etc/ssl/etcd/etcd && sudo mv $HOME/assets/tls/etcd-client.crt /etc/ssl/etcd/ \
             && sudo chown -R etcd:etcd /etc/ssl/etcd && sudo chmod -R 500 /etc/ssl/etcd && ls /etc/ssl/etcd",
            b"",
        )
        .await;
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("etcd-client.crt"),
        "{}",
        text(&output)
    );
    assert!(node_root.join("etc/ssl/etcd/etcd-client.crt").is_file());
    assert!(
        !std::path::Path::new("/etc/ssl/etcd/etcd-client.crt").exists(),
        "the host's /etc was touched"
    );

    let output = core
        .run("sudo chown nobody-such-user /etc/ssl/etcd/missing", b"")
        .await;
    assert!(
        !output.status.success(),
        "chown of a missing file must fail: {}",
        text(&output)
    );

    let output = core
        .run(
            "systemctl is-active kubelet; systemctl stop etcd-member; systemctl is-active etcd-member; systemctl status nosuch",
            b"",
        )
        .await;
    assert_eq!(
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .take(2)
            .collect::<Vec<_>>(),
        ["active", "inactive"]
    );
    assert_eq!(output.status.code(), Some(4), "{}", text(&output));
}

/// Lists the nodes through the apiserver at `addr` until it answers; their names.
async fn wait_for_nodes(
    dir: &std::path::Path,
    pki: &crate::nodes_support::Cluster,
    addr: SocketAddr,
) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let output = kubectl(
            dir,
            &pki.admin_kubeconfig(),
            addr,
            &pki.fqdn(),
            &["get", "nodes", "-o", "name"],
        )
        .await;
        if output.status.success() {
            return String::from_utf8_lossy(&output.stdout).into_owned();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "apiserver never answered: {}",
            text(&output)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_apiserver_pod_serves_once_its_files_are_there_and_again_after_a_reboot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (key, public) = ssh_keygen(dir.path(), "admin");
    let (host_private, host_public) = ssh_keygen(dir.path(), "host");
    let controller_ip = Ipv4Addr::new(127, 77, 2, 3);
    let worker_ip = Ipv4Addr::new(127, 77, 2, 4);
    let port = free_port(controller_ip);
    let nodes = Nodes::new(NodesConfig {
        root_dir: dir.path().join("nodes"),
        ssh_port: port,
        backend: SshBackend::Embedded,
    })
    .expect("nodes");
    let pki = cluster(&dir.path().join("pki"), "jupiter");
    let host_key = std::fs::read_to_string(&host_private).expect("host key");
    let controller = ignition(&IgnitionSpec {
        authorized_keys: vec![public.clone()],
        host_key: Some(host_key.clone()),
        kubelet_kubeconfig: Some(&pki.kubelet_kubeconfig),
        controller: true,
    });
    let worker = ignition(&IgnitionSpec {
        authorized_keys: vec![public],
        host_key: Some(host_key),
        kubelet_kubeconfig: Some(&pki.kubelet_kubeconfig),
        controller: false,
    });
    let controller_spec = spec("jupiter-controller-0", "dev-c0", controller_ip, controller);
    nodes
        .start_node(controller_spec.clone())
        .await
        .expect("controller");
    nodes
        .start_node(spec(
            "jupiter-general-worker-0",
            "dev-w0",
            worker_ip,
            worker,
        ))
        .await
        .expect("worker");
    let core = SshClient::new(
        dir.path(),
        key,
        "core",
        SocketAddr::from((controller_ip, port)),
        &host_public,
    );
    let install = "sudo mkdir -p /etc/kubernetes && sudo tar -x --no-same-owner -C /etc/kubernetes";

    // The pod alone: the kubelet sees it, and the apiserver exits for its missing files.
    let pod = tar(
        dir.path(),
        &[(
            "manifests/kube-apiserver.json",
            static_apiserver_pod(&pki).into_bytes(),
        )],
    );
    let output = core.run(install, &pod).await;
    assert!(output.status.success(), "{}", text(&output));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let problems = loop {
        let pods = nodes.static_pods();
        if let Some(status) = pods
            .get("jupiter-controller-0")
            .and_then(|pods| pods.get("kube-apiserver.json"))
        {
            break status.problems.join("\n");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the kubelet never judged the pod: {pods:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        problems.contains("/etc/kubernetes/pki/apiserver.crt"),
        "{problems}"
    );
    let output = core.run("sudo journalctl -u kubelet --no-pager", b"").await;
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("/etc/kubernetes/pki/ca.crt"),
        "{}",
        text(&output)
    );

    // Its files: the apiserver answers, with no object but Kubernetes' bootstrap policy, so no
    // kubelet may register yet.
    let output = core
        .run(install, &tar(dir.path(), &control_plane_pki(&pki)))
        .await;
    assert!(output.status.success(), "{}", text(&output));
    let apiserver = SocketAddr::from((controller_ip, 6443));
    assert_eq!(wait_for_nodes(dir.path(), &pki, apiserver).await, "");
    assert!(nodes.static_pods()["jupiter-controller-0"]["kube-apiserver"].running);

    // A scheduler beside it acting as the kubelet may not do a scheduler's work: it runs for
    // nothing, and says why. With an identity its role is bound to (the admin here), it runs.
    let scheduler = |kubeconfig: Vec<u8>| {
        tar(
            dir.path(),
            &[
                ("pki/scheduler.kubeconfig", kubeconfig),
                (
                    "manifests/kube-scheduler.json",
                    static_scheduler_pod().into_bytes(),
                ),
            ],
        )
    };
    let output = core
        .run(
            install,
            &scheduler(pki.kubelet_kubeconfig.clone().into_bytes()),
        )
        .await;
    assert!(output.status.success(), "{}", text(&output));
    let scheduler_status = |key: &str| {
        nodes
            .static_pods()
            .get("jupiter-controller-0")
            .and_then(|pods| pods.get(key).cloned())
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let refused = loop {
        if let Some(status) = scheduler_status("kube-scheduler.json") {
            break status.problems.join("\n");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            nodes.static_pods()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        refused.contains("User \"kubelet\" cannot") && refused.contains("forbidden"),
        "{refused}"
    );
    let admin = std::fs::read(pki.admin_kubeconfig()).expect("admin kubeconfig");
    let output = core.run(install, &scheduler(admin)).await;
    assert!(output.status.success(), "{}", text(&output));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !scheduler_status("kube-scheduler").is_some_and(|s| s.running) {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            nodes.static_pods()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The manifests, applied: both kubelets register.
    apply_manifests(&pki, apiserver);
    let listed = wait_for_nodes(dir.path(), &pki, apiserver).await;
    assert_eq!(
        listed,
        "node/jupiter-controller-0\nnode/jupiter-general-worker-0\n"
    );

    // A reboot: the kubelet starts the apiserver again from the disk, and it serves what was
    // applied before.
    nodes.stop_node("dev-c0").await;
    nodes.start_node(controller_spec).await.expect("rebooted");
    let listed = wait_for_nodes(dir.path(), &pki, apiserver).await;
    assert_eq!(
        listed,
        "node/jupiter-controller-0\nnode/jupiter-general-worker-0\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_is_refused_until_sshd_is_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (key, public) = ssh_keygen(dir.path(), "admin");
    let (host_private, host_public) = ssh_keygen(dir.path(), "host");
    let ip = Ipv4Addr::new(127, 77, 2, 5);
    let port = free_port(ip);
    let nodes = Nodes::new(NodesConfig {
        root_dir: dir.path().join("nodes"),
        ssh_port: port,
        backend: SshBackend::Embedded,
    })
    .expect("nodes");
    let mut node = spec(
        "k-worker-1",
        "dev-5",
        ip,
        ignition(&IgnitionSpec {
            authorized_keys: vec![public],
            host_key: Some(std::fs::read_to_string(&host_private).expect("host key")),
            ..Default::default()
        }),
    );
    // Long enough that the first attempt below surely lands inside it, even on a busy machine.
    node.ssh_refused_for = Duration::from_secs(5);
    nodes.start_node(node).await.expect("node starts");
    let core = SshClient::new(
        dir.path(),
        key,
        "core",
        SocketAddr::from((ip, port)),
        &host_public,
    );
    let output = core.run("echo hi", b"").await;
    assert_eq!(output.status.code(), Some(255), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("Connection refused"),
        "{}",
        text(&output)
    );
    core.wait_ready().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_keys_boots_and_refuses_everyone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (key, _) = ssh_keygen(dir.path(), "admin");
    let ip = Ipv4Addr::new(127, 77, 2, 6);
    let port = free_port(ip);
    let nodes = Nodes::new(NodesConfig {
        root_dir: dir.path().join("nodes"),
        ssh_port: port,
        backend: SshBackend::Embedded,
    })
    .expect("nodes");
    nodes
        .start_node(spec("k-worker-2", "dev-6", ip, "not ignition".to_owned()))
        .await
        .expect("node starts");
    let generated = std::fs::read_to_string(
        nodes
            .node_root("k-worker-2")
            .join(".sim/ssh/ssh_host_ed25519_key"),
    )
    .expect("generated host key");
    let key_file = dir.path().join("generated_host_key");
    std::fs::write(&key_file, generated).expect("write key");
    std::fs::set_permissions(
        &key_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("chmod");
    let public = std::process::Command::new("ssh-keygen")
        .arg("-y")
        .arg("-f")
        .arg(&key_file)
        .output()
        .expect("ssh-keygen -y");
    let host_public = String::from_utf8_lossy(&public.stdout).into_owned();
    let core = SshClient::new(
        dir.path(),
        key,
        "core",
        SocketAddr::from((ip, port)),
        &host_public,
    );
    let output = core.run("echo hi", b"").await;
    assert_eq!(output.status.code(), Some(255), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("Permission denied"),
        "{}",
        text(&output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sftp_and_legacy_scp_uploads_land_in_the_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (key, public) = ssh_keygen(dir.path(), "admin");
    let (host_private, host_public) = ssh_keygen(dir.path(), "host");
    let ip = Ipv4Addr::new(127, 77, 2, 7);
    let port = free_port(ip);
    let nodes = Nodes::new(NodesConfig {
        root_dir: dir.path().join("nodes"),
        ssh_port: port,
        backend: SshBackend::Embedded,
    })
    .expect("nodes");
    let user_data = ignition(&IgnitionSpec {
        authorized_keys: vec![public],
        host_key: Some(std::fs::read_to_string(&host_private).expect("host key")),
        ..Default::default()
    });
    nodes
        .start_node(spec("k-worker-3", "dev-7", ip, user_data))
        .await
        .expect("node starts");
    let client = SshClient::new(
        dir.path(),
        key,
        "core",
        SocketAddr::from((ip, port)),
        &host_public,
    );
    let local = dir.path().join("local.txt");
    std::fs::write(&local, "payload\n").expect("local file");
    let common = |program: &str| {
        let mut command = std::process::Command::new(program);
        command
            .args([
                "-F",
                "/dev/null",
                "-o",
                "BatchMode=yes",
                "-o",
                "IdentitiesOnly=yes",
            ])
            .args(["-o", "StrictHostKeyChecking=yes"])
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                client.known_hosts.display()
            ))
            .arg("-i")
            .arg(&client.key)
            .arg("-P")
            .arg(port.to_string());
        command
    };

    let batch = dir.path().join("batch");
    std::fs::write(&batch, format!("put {} via-sftp.txt\n", local.display())).expect("batch");
    let output = common("sftp")
        .arg("-b")
        .arg(&batch)
        .arg(format!("core@{ip}"))
        .output()
        .expect("run sftp");
    assert!(output.status.success(), "{}", text(&output));

    // Legacy scp runs `scp -t /home/core/...` over exec: the node path is rewritten.
    let output = common("scp")
        .arg("-O")
        .arg(&local)
        .arg(format!("core@{ip}:/home/core/via-scp.txt"))
        .output()
        .expect("run scp");
    assert!(output.status.success(), "{}", text(&output));

    let home = nodes.node_root("k-worker-3").join("home/core");
    for name in ["via-sftp.txt", "via-scp.txt"] {
        assert_eq!(
            std::fs::read_to_string(home.join(name)).expect("uploaded file"),
            "payload\n",
            "{name}"
        );
    }
}

/// A kubelet unit as loko rendered it before issue 14: the image's entrypoint named again, a flag
/// the kubelet does not have, self-labels a kubelet may not set, and the node IP read from a file
/// no unit ordered before it writes.
const UNSTARTABLE_KUBELET: &str = "[Unit]\nRequires=docker.service\nAfter=docker.service\n\
[Service]\nEnvironmentFile=-/run/metadata/flatcar\n\
ExecStart=/usr/bin/docker run --rm --name kubelet --privileged --pid host --network host \\\n\
  -v /etc/kubernetes:/etc/kubernetes:ro quay.io/poseidon/kubelet:v1.32.3 /kubelet \\\n\
  --node-labels=node-role.kubernetes.io/node \\\n\
  --kubeconfig=/etc/kubernetes/kubeconfig --node-ip=${COREOS_PACKET_IPV4_PRIVATE_0} \\\n\
  --static-pod-path=/etc/kubernetes/manifests\n\
[Install]\nWantedBy=multi-user.target\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubelet_that_would_not_start_on_flatcar_never_registers_and_says_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (key, public) = ssh_keygen(dir.path(), "admin");
    let (host_private, host_public) = ssh_keygen(dir.path(), "host");
    let controller_ip = Ipv4Addr::new(127, 77, 2, 7);
    let worker_ip = Ipv4Addr::new(127, 77, 2, 8);
    let port = free_port(controller_ip);
    let nodes = Nodes::new(NodesConfig {
        root_dir: dir.path().join("nodes"),
        ssh_port: port,
        backend: SshBackend::Embedded,
    })
    .expect("nodes");
    let pki = cluster(&dir.path().join("pki"), "io");
    let host_key = std::fs::read_to_string(&host_private).expect("host key");
    let controller = ignition(&IgnitionSpec {
        authorized_keys: vec![public.clone()],
        host_key: Some(host_key.clone()),
        kubelet_kubeconfig: Some(&pki.kubelet_kubeconfig),
        controller: true,
    });
    let mut worker: serde_json::Value = serde_json::from_str(&ignition(&IgnitionSpec {
        authorized_keys: vec![public],
        host_key: Some(host_key),
        kubelet_kubeconfig: Some(&pki.kubelet_kubeconfig),
        controller: false,
    }))
    .expect("JSON");
    worker["systemd"]["units"][0]["contents"] = UNSTARTABLE_KUBELET.into();
    nodes
        .start_node(spec("io-controller-0", "dev-c0", controller_ip, controller))
        .await
        .expect("controller");
    nodes
        .start_node(spec(
            "io-general-worker-0",
            "dev-w0",
            worker_ip,
            worker.to_string(),
        ))
        .await
        .expect("worker");

    let kubelets = nodes.kubelets();
    assert!(kubelets["io-controller-0"].running, "{kubelets:?}");
    let worker_status = &kubelets["io-general-worker-0"];
    assert!(!worker_status.running);
    let reasons = worker_status.problems.join("\n");
    for expected in [
        "positional argument \"/kubelet\"",
        "unknown flag: --static-pod-path",
        "[node-role.kubernetes.io/node]",
        "coreos-metadata.service",
        "${COREOS_PACKET_IPV4_PRIVATE_0}",
    ] {
        assert!(reasons.contains(expected), "{expected} in:\n{reasons}");
    }

    let worker_client = SshClient::new(
        dir.path(),
        key.clone(),
        "core",
        SocketAddr::from((worker_ip, port)),
        &host_public,
    );
    let output = worker_client
        .run(
            "systemctl is-active kubelet; journalctl -u kubelet --no-pager",
            b"",
        )
        .await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.starts_with("failed\n"), "{}", text(&output));
    assert!(
        stdout.contains("unknown flag: --static-pod-path"),
        "{}",
        text(&output)
    );

    let core = SshClient::new(
        dir.path(),
        key,
        "core",
        SocketAddr::from((controller_ip, port)),
        &host_public,
    );
    let mut control_plane = control_plane_pki(&pki);
    control_plane.push((
        "manifests/kube-apiserver.json",
        static_apiserver_pod(&pki).into_bytes(),
    ));
    let output = core
        .run(
            "sudo mkdir -p /etc/kubernetes && sudo tar -x -C /etc/kubernetes",
            &tar(dir.path(), &control_plane),
        )
        .await;
    assert!(output.status.success(), "{}", text(&output));
    let apiserver = SocketAddr::from((controller_ip, 6443));
    wait_for_nodes(dir.path(), &pki, apiserver).await;
    apply_manifests(&pki, apiserver);
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let output = kubectl(
            dir.path(),
            &pki.admin_kubeconfig(),
            apiserver,
            &pki.fqdn(),
            &["get", "nodes", "--show-labels"],
        )
        .await;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if output.status.success() {
            assert!(stdout.contains("io-controller-0"), "{}", text(&output));
            assert!(
                stdout.contains("node.kubernetes.io/master="),
                "labels come from the judged --node-labels: {}",
                text(&output)
            );
            assert!(!stdout.contains("io-general-worker-0"), "{}", text(&output));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "apiserver never answered: {}",
            text(&output)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
