//! Emulated nodes over the embedded SSH server, driven by the real OpenSSH client.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::node_world::{NodeWorld, eventually, openssh, spec};
use crate::nodes_support::{
    Cluster, SshClient, apply_manifests, cluster, control_plane_pki, kubectl, ssh_keygen, tar, text,
};
use crate::static_pods::{static_apiserver_pod, static_scheduler_pod};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_auth_admits_core_with_ignition_keys_and_presents_the_ignition_host_key() {
    let ip = Ipv4Addr::new(127, 77, 2, 1);
    let world = NodeWorld::new(ip);
    let dir = &world.dir;
    let (stranger_key, _) = ssh_keygen(dir.path(), "stranger");
    let (_, other_host_public) = ssh_keygen(dir.path(), "other-host");
    world
        .start(
            spec("k-worker-0", "dev-1", ip, world.ignition(None, false)),
            "node starts",
        )
        .await;
    let addr = world.addr(ip);

    let core = world.core(ip);
    let output = core.run("echo hi; echo oops >&2; exit 3", b"").await;
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "hi\n");
    assert_eq!(String::from_utf8_lossy(&output.stderr), "oops\n");

    // `ssh -tt` asks for a terminal; the command runs (on pipes).
    let output = tokio::process::Command::from(openssh(&core, "ssh", "-p"))
        .arg("-tt")
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

    let stranger = world.client_with(stranger_key, "core", ip);
    assert_refused(&stranger, "Permission denied").await;

    let root = world.client("root", ip);
    let output = root.run("echo hi", b"").await;
    assert_eq!(output.status.code(), Some(255), "{}", text(&output));

    // A client that expects another host key must refuse to talk to the node.
    let mitm = SshClient::new(
        &dir.path().join("nodes"),
        world.key.clone(),
        "core",
        addr,
        &other_host_public,
    );
    assert_refused(&mitm, "HOST IDENTIFICATION HAS CHANGED").await;

    // A session open when the node stops is cut, like a powered-off machine's.
    let mut long = tokio::process::Command::from(openssh(&core, "ssh", "-p"))
        .arg("-T")
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

    world.nodes.stop_node("dev-1").await;
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
    let ip = Ipv4Addr::new(127, 77, 2, 2);
    let world = NodeWorld::new(ip);
    let dir = &world.dir;
    // A kubelet is active only with the kubeconfig its --kubeconfig names.
    let user_data = world.ignition(Some("apiVersion: v1\nkind: Config\n"), true);
    world
        .start(
            spec("k-controller-0", "dev-2", ip, user_data),
            "node starts",
        )
        .await;
    let core = world.core(ip);

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

    let node_root = world.nodes.node_root("k-controller-0");
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
async fn wait_for_nodes(dir: &std::path::Path, pki: &Cluster, addr: SocketAddr) -> String {
    kubectl_until_served(dir, pki, addr, &["get", "nodes", "-o", "name"]).await
}

/// Runs kubectl with `args` against the apiserver at `addr` until it answers; its stdout.
async fn kubectl_until_served(
    dir: &std::path::Path,
    pki: &Cluster,
    addr: SocketAddr,
    args: &[&str],
) -> String {
    eventually(
        Duration::from_secs(90),
        Duration::from_millis(300),
        async || {
            let output = kubectl(dir, &pki.admin_kubeconfig(), addr, &pki.fqdn(), args).await;
            if output.status.success() {
                Ok(String::from_utf8_lossy(&output.stdout).into_owned())
            } else {
                Err(format!("apiserver never answered: {}", text(&output)))
            }
        },
    )
    .await
}

/// Asserts that `client` cannot log in, and that ssh says `why`.
async fn assert_refused(client: &SshClient, why: &str) {
    let output = client.run("echo hi", b"").await;
    assert_eq!(output.status.code(), Some(255), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains(why),
        "{}",
        text(&output)
    );
}

/// A controller and a worker of cluster `pki`, started on `controller_ip` and `worker_ip`, the
/// worker's Ignition as `worker_ignition` makes it of a good one; a client of the controller.
async fn controller_and_worker(
    world: &NodeWorld,
    pki: &Cluster,
    (controller_ip, worker_ip): (Ipv4Addr, Ipv4Addr),
    worker_ignition: impl FnOnce(String) -> String,
) -> (sim::nodes::NodeSpec, SshClient) {
    let name = &pki.name;
    let controller = world.ignition(Some(&pki.kubelet_kubeconfig), true);
    let worker = worker_ignition(world.ignition(Some(&pki.kubelet_kubeconfig), false));
    let controller_spec = spec(
        &format!("{name}-controller-0"),
        "dev-c0",
        controller_ip,
        controller,
    );
    world.start(controller_spec.clone(), "controller").await;
    let worker_spec = spec(
        &format!("{name}-general-worker-0"),
        "dev-w0",
        worker_ip,
        worker,
    );
    world.start(worker_spec, "worker").await;
    (controller_spec, world.core(controller_ip))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_apiserver_pod_serves_once_its_files_are_there_and_again_after_a_reboot() {
    let controller_ip = Ipv4Addr::new(127, 77, 2, 3);
    let worker_ip = Ipv4Addr::new(127, 77, 2, 4);
    let world = NodeWorld::new(controller_ip);
    let (dir, nodes) = (&world.dir, &world.nodes);
    let pki = cluster(&dir.path().join("pki"), "jupiter");
    let (controller_spec, core) =
        controller_and_worker(&world, &pki, (controller_ip, worker_ip), |good| good).await;
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
    let problems = world
        .static_pod("jupiter-controller-0", "kube-apiserver.json", |_| true)
        .await
        .problems
        .join("\n");
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
    let refused = world
        .static_pod("jupiter-controller-0", "kube-scheduler.json", |_| true)
        .await
        .problems
        .join("\n");
    assert!(
        refused.contains("User \"kubelet\" cannot") && refused.contains("forbidden"),
        "{refused}"
    );
    let admin = std::fs::read(pki.admin_kubeconfig()).expect("admin kubeconfig");
    let output = core.run(install, &scheduler(admin)).await;
    assert!(output.status.success(), "{}", text(&output));
    world
        .static_pod("jupiter-controller-0", "kube-scheduler", |s| s.running)
        .await;

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
    world.start(controller_spec, "rebooted").await;
    let listed = wait_for_nodes(dir.path(), &pki, apiserver).await;
    assert_eq!(
        listed,
        "node/jupiter-controller-0\nnode/jupiter-general-worker-0\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_is_refused_until_sshd_is_up() {
    let ip = Ipv4Addr::new(127, 77, 2, 5);
    let world = NodeWorld::new(ip);
    let mut node = spec("k-worker-1", "dev-5", ip, world.ignition(None, false));
    // Long enough that the first attempt below surely lands inside it, even on a busy machine.
    node.ssh_refused_for = Duration::from_secs(5);
    world.start(node, "node starts").await;
    let core = world.core(ip);
    assert_refused(&core, "Connection refused").await;
    core.wait_ready().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_keys_boots_and_refuses_everyone() {
    let ip = Ipv4Addr::new(127, 77, 2, 6);
    let world = NodeWorld::new(ip);
    let dir = &world.dir;
    world
        .start(
            spec("k-worker-2", "dev-6", ip, "not ignition".to_owned()),
            "node starts",
        )
        .await;
    let generated = std::fs::read_to_string(
        world
            .nodes
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
        world.key.clone(),
        "core",
        world.addr(ip),
        &host_public,
    );
    assert_refused(&core, "Permission denied").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sftp_and_legacy_scp_uploads_land_in_the_node() {
    let ip = Ipv4Addr::new(127, 77, 2, 7);
    let world = NodeWorld::new(ip);
    let dir = &world.dir;
    world
        .start(
            spec("k-worker-3", "dev-7", ip, world.ignition(None, false)),
            "node starts",
        )
        .await;
    let client = world.core(ip);
    let local = dir.path().join("local.txt");
    std::fs::write(&local, "payload\n").expect("local file");
    let common = |program: &str| openssh(&client, program, "-P");

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

    let home = world.nodes.node_root("k-worker-3").join("home/core");
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
    let controller_ip = Ipv4Addr::new(127, 77, 2, 7);
    let worker_ip = Ipv4Addr::new(127, 77, 2, 8);
    let world = NodeWorld::new(controller_ip);
    let dir = &world.dir;
    let pki = cluster(&dir.path().join("pki"), "io");
    let (_, core) = controller_and_worker(&world, &pki, (controller_ip, worker_ip), |good| {
        let mut worker: serde_json::Value = serde_json::from_str(&good).expect("JSON");
        worker["systemd"]["units"][0]["contents"] = UNSTARTABLE_KUBELET.into();
        worker.to_string()
    })
    .await;

    let kubelets = world.nodes.kubelets();
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

    let worker_client = world.core(worker_ip);
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
    let stdout = kubectl_until_served(
        dir.path(),
        &pki,
        apiserver,
        &["get", "nodes", "--show-labels"],
    )
    .await;
    assert!(stdout.contains("io-controller-0"), "{stdout}");
    assert!(
        stdout.contains("node.kubernetes.io/master="),
        "labels come from the judged --node-labels: {stdout}"
    );
    assert!(!stdout.contains("io-general-worker-0"), "{stdout}");
}
