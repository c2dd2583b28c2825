//! `loko run` end to end, as a user runs it: the built binary against the simulator's Packet
//! API, moto's Route53, OpenSSH nodes (the simulator's OpenSSH backend) and a real ssh-agent;
//! then kubectl with the generated kubeconfig. A sequence of spec changes follows, each checked
//! against the simulator's state: the devices are exactly the desired ones, none duplicated,
//! none left behind.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use loko_tests::{Moto, SshAgent, free_port, ssh_keygen};

struct World {
    _dir: tempfile::TempDir,
    root: PathBuf,
    sim: sim::SimHandle,
    /// moto's Route53, or `None` for the simulator's (whose changes stay PENDING a while).
    moto: Option<Moto>,
    zone_id: String,
    agent: SshAgent,
    public_key: String,
    ssh_port: u16,
    ssh_user: String,
}

const PROJECT: &str = "93fa1e81-0f3c-4b2e-9d8a-2c6e5f0a1b2c";

/// The simulator (at `time_scale`) with OpenSSH nodes, an agent holding the spec's key, and
/// moto's Route53 or the simulator's.
async fn world(time_scale: f64, with_moto: bool) -> World {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let ssh_port = free_port();
    let nodes = sim::nodes::Nodes::new(sim::nodes::NodesConfig {
        root_dir: root.join("nodes"),
        ssh_port,
        backend: sim::nodes::SshBackend::OpenSsh {
            sshd_path: "/usr/sbin/sshd".into(),
        },
    })
    .expect("the OpenSSH backend needs /usr/sbin/sshd (scripts/test installs openssh-server)");
    let ssh_user = nodes.ssh_login_user();
    let mut config = sim::SimConfig::new(root.join("nodes"));
    config.time_scale = time_scale;
    config.project_id = Some(PROJECT.parse().unwrap());
    config.ssh_port = ssh_port;
    config.hosted_zone = "packet.example.com".into();
    config.hosted_zone_id = Some("ZLOKOE2E".into());
    config.nodes = Arc::new(nodes);
    let sim = sim::start(config).await.unwrap();
    let (moto, zone_id) = if with_moto {
        let moto = Moto::start();
        let zone = moto.create_zone("packet.example.com");
        (Some(moto), zone)
    } else {
        (None, "ZLOKOE2E".to_owned())
    };
    let public_key = ssh_keygen(&root.join("id_ed25519"));
    let agent = SshAgent::start(&root);
    agent.add(&root.join("id_ed25519"));
    World {
        _dir: dir,
        root,
        sim,
        moto,
        zone_id,
        agent,
        public_key,
        ssh_port,
        ssh_user,
    }
}

impl World {
    /// Writes a spec of cluster `supernova` with the given worker pools (YAML list items).
    fn spec(&self, pools: &str) -> PathBuf {
        let path = self.root.join("cluster.yaml");
        std::fs::write(
            &path,
            format!(
                r#"cluster_name: supernova
dns_zone: packet.example.com
dns_zone_id: {zone}
ssh_keys: ["{key}"]
asset_dir: ./assets
project_id: {PROJECT}
facility: ams1
controller_count: 1
controller_type: t1.small.x86
management_cidrs: [0.0.0.0/0]
node_private_cidr: 10.128.156.0/25
endpoints:
  packet_api_url: {packet}
  route53_endpoint_url: {route53}
worker_pools:
{pools}"#,
                zone = self.zone_id,
                key = self.public_key,
                packet = self.sim.packet_url(),
                route53 = self
                    .moto
                    .as_ref()
                    .map_or(self.sim.route53_url(), |m| m.url.clone()),
            ),
        )
        .unwrap();
        path
    }

    fn loko(&self, args: &[&str]) -> Output {
        let output = self.command(args).output().unwrap();
        eprintln!(
            "loko {args:?} exited {:?}\n--- stdout\n{}\n--- stderr\n{}",
            output.status.code(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_loko"));
        command.args(args);
        if args[0] == "run" {
            command
                .args(["--ssh-port", &self.ssh_port.to_string()])
                .args(["--ssh-user", &self.ssh_user]);
        }
        command
            .env("PACKET_AUTH_TOKEN", self.sim.token())
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("SSH_AUTH_SOCK", &self.agent.socket)
            .env_remove("RUST_LOG");
        command
    }

    /// Starts `loko run` and SIGKILLs it as soon as `moment` holds of the simulator's state.
    async fn kill_run_when(&self, spec: &str, what: &str, moment: impl Fn(&sim::SimState) -> bool) {
        let mut child = loko_tests::Killed(
            self.command(&["run", spec])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            if moment(&self.sim.state()) {
                child.0.kill().unwrap();
                child.0.wait().unwrap();
                eprintln!("killed loko {what}");
                return;
            }
            if let Some(status) = child.0.try_wait().unwrap() {
                panic!("loko exited {status} before {what}");
            }
            assert!(std::time::Instant::now() < deadline, "never {what}");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    /// Live devices by hostname, with how many devices each hostname ever had.
    fn devices(&self) -> (BTreeMap<String, String>, BTreeMap<String, usize>) {
        let state = self.sim.state();
        let mut live = BTreeMap::new();
        let mut ever: BTreeMap<String, usize> = BTreeMap::new();
        for device in &state.devices {
            *ever.entry(device.hostname.clone()).or_default() += 1;
            if device.state != "deleted" {
                assert!(
                    live.insert(device.hostname.clone(), device.plan.clone())
                        .is_none(),
                    "two live devices for {}",
                    device.hostname
                );
                assert_eq!(device.state, "active", "{device:?}");
            }
        }
        (live, ever)
    }
}

fn pool(name: &str, count: u32, plan: &str) -> String {
    format!("  - pool_name: {name}\n    count: {count}\n    type: {plan}\n")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn plans(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
    entries
        .iter()
        .map(|(h, p)| (h.to_string(), p.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_change_and_destroy_a_cluster_over_the_wire() {
    let w = world(0.002, true).await;
    let spec = w.spec(&pool("helium", 2, "t1.small.x86"));
    let spec_arg = spec.to_str().unwrap();

    // Plan first: nothing exists, so everything is added, and nothing is called.
    let out = w.loko(&["plan", spec_arg]);
    assert!(out.status.success());
    assert!(
        stdout(&out).contains("Plan: 6 to add, 0 to change, 0 to destroy."),
        "{}",
        stdout(&out)
    );
    assert!(w.sim.state().devices.is_empty());

    // Create.
    let out = w.loko(&["run", spec_arg]);
    assert!(out.status.success());
    assert!(
        stdout(&out).contains("export KUBECONFIG="),
        "{}",
        stdout(&out)
    );
    let (live, ever) = w.devices();
    assert_eq!(
        live,
        plans(&[
            ("supernova-controller-0", "t1.small.x86"),
            ("supernova-helium-worker-0", "t1.small.x86"),
            ("supernova-helium-worker-1", "t1.small.x86"),
        ])
    );
    assert!(ever.values().all(|n| *n == 1), "{ever:?}");
    assert_bootkube_started_once(&w);
    let assets = w.root.join("assets");
    kubectl_lists_nodes(&w, &assets, 3);

    // The same spec again: nothing to do, no API call that changes anything.
    let before = w.sim.state().requests;
    let out = w.loko(&["run", spec_arg]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("Nothing to do"), "{}", stdout(&out));
    let after = w.sim.state().requests;
    for op in ["create device", "delete device"] {
        assert_eq!(before.get(op), after.get(op), "{op}");
    }

    // Add a pool.
    let spec = w.spec(&(pool("helium", 2, "t1.small.x86") + &pool("neon", 1, "t1.small.x86")));
    let out = w.loko(&["plan", spec_arg]);
    assert!(stdout(&out).contains("Plan: 1 to add, 0 to change, 0 to destroy."));
    assert!(w.loko(&["run", spec.to_str().unwrap()]).status.success());
    assert_eq!(w.devices().0.len(), 4);

    // Scale it to 0.
    w.spec(&(pool("helium", 2, "t1.small.x86") + &pool("neon", 0, "t1.small.x86")));
    let out = w.loko(&["plan", spec_arg]);
    assert!(
        stdout(&out).contains("Plan: 0 to add, 0 to change, 1 to destroy."),
        "{}",
        stdout(&out)
    );
    assert!(w.loko(&["run", spec_arg]).status.success());
    assert!(!w.devices().0.contains_key("supernova-neon-worker-0"));

    // Change the other pool's type: each device deleted, then created.
    w.spec(&(pool("helium", 2, "c3.small.x86") + &pool("neon", 0, "t1.small.x86")));
    assert!(w.loko(&["run", spec_arg]).status.success());
    let (live, ever) = w.devices();
    assert_eq!(
        live,
        plans(&[
            ("supernova-controller-0", "t1.small.x86"),
            ("supernova-helium-worker-0", "c3.small.x86"),
            ("supernova-helium-worker-1", "c3.small.x86"),
        ])
    );
    assert_eq!(ever["supernova-helium-worker-0"], 2);
    assert_eq!(ever["supernova-controller-0"], 1);
    assert_bootkube_started_once(&w);

    // A refused change names the field and calls nothing.
    let text = std::fs::read_to_string(&spec).unwrap();
    std::fs::write(
        &spec,
        text.replace("controller_count: 1", "controller_count: 3"),
    )
    .unwrap();
    let before = w.sim.state().requests;
    let out = w.loko(&["run", spec_arg]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("controller_count"));
    assert_eq!(before, w.sim.state().requests);
    std::fs::write(&spec, text).unwrap();

    // Destroy: nothing of the cluster is left.
    let out = w.loko(&["destroy", spec_arg, "--yes"]);
    assert!(out.status.success());
    assert!(w.devices().0.is_empty());
    let ca = std::fs::read(assets.join("tls/ca.crt")).unwrap();
    assert!(!ca.is_empty(), "destroy keeps the CA");
}

fn assert_bootkube_started_once(w: &World) {
    let starts = w.sim.state().bootkube_starts;
    assert_eq!(starts.get("supernova-controller-0"), Some(&1), "{starts:?}");
    assert_eq!(starts.values().sum::<u32>(), 1, "{starts:?}");
}

/// kubectl, with the admin kubeconfig loko wrote, lists the nodes of the emulated apiserver.
fn kubectl_lists_nodes(w: &World, assets: &Path, expected: usize) {
    let controller = w
        .sim
        .state()
        .devices
        .iter()
        .find(|d| d.hostname == "supernova-controller-0" && d.state == "active")
        .map(|d| d.public_ipv4)
        .unwrap();
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(assets.join("auth/kubeconfig"))
        // The cluster's name does not resolve here; connect to the controller, verify the name.
        .args(["--server", &format!("https://{controller}:6443")])
        .args(["--tls-server-name", "supernova.packet.example.com"])
        .args(["get", "nodes", "-o", "name"])
        .output()
        .expect("kubectl must be installed (scripts/test installs kubernetes-client)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(text.lines().count(), expected, "{text}");
}

/// SIGKILL in the middle of device creation, while the DNS change is PENDING, and right after
/// bootkube was started: each resumed run goes on, and the end is one device per node and one
/// bootkube start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_runs_resume_without_duplicates() {
    let w = world(0.01, false).await;
    let spec = w.spec(&pool("helium", 2, "t1.small.x86"));
    let spec = spec.to_str().unwrap();

    w.kill_run_when(spec, "while devices are being created", |s| {
        !s.devices.is_empty() && s.devices.iter().any(|d| d.state != "active")
    })
    .await;
    w.kill_run_when(spec, "while the DNS change is pending", |s| {
        s.hosted_zones.iter().any(|z| {
            z.record_sets
                .iter()
                .any(|r| r.name.starts_with("supernova-etcd0"))
        })
    })
    .await;
    w.kill_run_when(spec, "after bootkube was started", |s| {
        s.bootkube_starts.values().sum::<u32>() > 0
    })
    .await;
    let out = w.loko(&["run", spec]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("resuming run"), "{}", stdout(&out));

    let (live, ever) = w.devices();
    assert_eq!(live.len(), 3, "{live:?}");
    assert!(
        ever.values().all(|n| *n == 1),
        "a device was created twice: {ever:?}"
    );
    assert_bootkube_started_once(&w);
    let journal = w.loko(&[
        "journal",
        "--state-dir",
        w.root.join("assets/.loko").to_str().unwrap(),
    ]);
    assert!(
        stdout(&journal).contains("succeeded"),
        "{}",
        stdout(&journal)
    );
}
