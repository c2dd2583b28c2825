//! A world for running the built `loko` end to end: a standalone simulator (its Packet API, its
//! SSH-reachable nodes and, unless moto is asked for, its Route53), a real `ssh-agent` holding a
//! key of the spec, and helpers to write specs, run loko, kill it, and check what the cloud holds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::{Killed, Moto, SshAgent, free_port, ssh_keygen};

/// The project of every spec the world writes.
pub const PROJECT: &str = "93fa1e81-0f3c-4b2e-9d8a-2c6e5f0a1b2c";
/// The private network of the world's project: every device's private address lies in it, and
/// the specs the world writes name it as `node_private_cidr`.
pub const PRIVATE_CIDR: &str = "10.128.156.0/25";

/// How to build a [`World`].
#[derive(Clone, Debug)]
pub struct WorldConfig {
    /// Real seconds per simulated second, for the simulator and for loko's own waits.
    pub time_scale: f64,
    /// Route53 from moto's server instead of the simulator's.
    pub moto: bool,
    /// The nodes' SSH served by OpenSSH's sshd instead of the simulator's embedded server.
    pub openssh: bool,
}

/// The simulator, the peers, and a temporary directory for the spec, assets and journal.
pub struct World {
    _dir: tempfile::TempDir,
    /// The temporary directory: `cluster.yaml`, `assets/` (with the journal in `assets/.loko`).
    pub root: PathBuf,
    /// The simulator.
    pub sim: sim::SimHandle,
    moto: Option<Moto>,
    zone_id: String,
    /// The agent holding the spec's key.
    pub agent: SshAgent,
    /// The public half of that key, as in `ssh_keys`.
    pub public_key: String,
    ssh_port: u16,
    ssh_user: String,
    time_scale: f64,
    loko: PathBuf,
}

/// Live devices by hostname (their plan), and how many devices each hostname ever had.
pub struct Devices {
    /// Hostname → plan of its device that is not deleted.
    pub live: BTreeMap<String, String>,
    /// Hostname → devices ever created for it.
    pub ever: BTreeMap<String, usize>,
}

impl World {
    /// Starts the simulator and the peers; `loko` is the binary to run (`CARGO_BIN_EXE_loko`).
    pub async fn start(loko: &str, config: WorldConfig) -> World {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let root = dir.path().to_owned();
        let ssh_port = free_port();
        let backend = if config.openssh {
            sim::nodes::SshBackend::OpenSsh {
                sshd_path: "/usr/sbin/sshd".into(),
            }
        } else {
            sim::nodes::SshBackend::Embedded
        };
        let nodes = sim::nodes::Nodes::new(sim::nodes::NodesConfig {
            root_dir: root.join("nodes"),
            ssh_port,
            backend,
        })
        .expect("the nodes (the OpenSSH backend needs /usr/sbin/sshd: scripts/test installs it)");
        let ssh_user = nodes.ssh_login_user();
        let mut sim_config = sim::SimConfig::new(root.join("nodes"));
        sim_config.time_scale = config.time_scale;
        sim_config.project_id = Some(PROJECT.parse().expect("a UUID"));
        sim_config.ssh_port = ssh_port;
        sim_config.hosted_zone = "packet.example.com".into();
        sim_config.hosted_zone_id = Some("ZLOKOE2E".into());
        let (network, prefix) = PRIVATE_CIDR.split_once('/').expect("a CIDR");
        sim_config.private_block = Some(
            sim::PrivateBlock::new(
                network.parse().expect("an address"),
                prefix.parse().expect("a prefix length"),
            )
            .expect("a private block"),
        );
        sim_config.nodes = Arc::new(nodes);
        let sim = sim::start(sim_config).await.expect("the simulator starts");
        let (moto, zone_id) = if config.moto {
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
            time_scale: config.time_scale,
            loko: PathBuf::from(loko),
        }
    }

    /// The world most binary tests need: the simulator at time scale 0.002 with embedded SSH
    /// nodes and its own Route53.
    pub async fn quick(loko: &str) -> World {
        World::start(
            loko,
            WorldConfig {
                time_scale: 0.002,
                moto: false,
                openssh: false,
            },
        )
        .await
    }

    /// The active device of `hostname` in the simulator, if there is one.
    pub fn active_device(&self, hostname: &str) -> Option<sim::DeviceRecord> {
        self.sim
            .state()
            .devices
            .into_iter()
            .find(|d| d.hostname == hostname && d.state == "active")
    }

    /// Writes `cluster.yaml`: cluster `supernova`, one controller, the given worker pools
    /// (YAML list items, see [`pool`]).
    pub fn spec(&self, pools: &str) -> PathBuf {
        self.write_spec(&format!(
            r#"cluster_name: supernova
dns_zone: packet.example.com
dns_zone_id: ZONE
ssh_keys:
asset_dir: ./assets
project_id: {PROJECT}
facility: ams1
controller_count: 1
controller_type: t1.small.x86
management_cidrs: [0.0.0.0/0]
node_private_cidr: {PRIVATE_CIDR}
worker_pools:
{pools}"#
        ))
    }

    /// Writes `cluster.yaml` from `examples/<name>.yaml`, pointed at this world: its zone id,
    /// this world's key added to `ssh_keys`, `asset_dir: ./assets` and the endpoints.
    pub fn spec_from_example(&self, name: &str) -> PathBuf {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples")
            .join(format!("{name}.yaml"));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let text: String = text
            .lines()
            .map(|line| {
                if line.starts_with("dns_zone_id:") {
                    "dns_zone_id: ZONE".to_owned()
                } else if line.starts_with("asset_dir:") {
                    "asset_dir: ./assets".to_owned()
                } else if line.starts_with("node_private_cidr:") {
                    // The network this world's project has, as a spec written for it names.
                    format!("node_private_cidr: {PRIVATE_CIDR}")
                } else {
                    line.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        self.write_spec(&(text + "\n"))
    }

    fn write_spec(&self, template: &str) -> PathBuf {
        let route53 = self
            .moto
            .as_ref()
            .map_or(self.sim.route53_url(), |m| m.url.clone());
        let text = template
            .replace(
                "dns_zone_id: ZONE",
                &format!("dns_zone_id: {}", self.zone_id),
            )
            .replace(
                "ssh_keys:\n",
                &format!("ssh_keys:\n  - \"{}\"\n", self.public_key),
            )
            + &format!(
                "endpoints:\n  packet_api_url: {}\n  route53_endpoint_url: {route53}\n",
                self.sim.packet_url()
            );
        let path = self.root.join("cluster.yaml");
        std::fs::write(&path, text).expect("write the spec");
        path
    }

    /// The state directory of the specs this world writes.
    pub fn state_dir(&self) -> PathBuf {
        self.root.join("assets/.loko")
    }

    /// Tells `loko run` another SSH port than the nodes listen on (a user's mistake).
    pub fn set_ssh_port(&mut self, port: u16) {
        self.ssh_port = port;
    }

    /// Runs loko to completion, printing what it said (shown when a test fails).
    pub fn loko(&self, args: &[&str]) -> Output {
        let output = self.command(args).output().expect("run loko");
        eprintln!(
            "loko {args:?} exited {:?}\n--- stdout\n{}\n--- stderr\n{}",
            output.status.code(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// `loko ARGS` with this world's token, AWS credentials, agent, SSH port and user (for
    /// `run`) and time scale (for `run` and `destroy`).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.loko);
        command.args(args);
        let subcommand = args.iter().find(|a| !a.starts_with('-'));
        if subcommand == Some(&"run") {
            command
                .args(["--ssh-port", &self.ssh_port.to_string()])
                .args(["--ssh-user", &self.ssh_user]);
        }
        if matches!(subcommand, Some(&"run") | Some(&"destroy")) {
            command.args(["--time-scale", &self.time_scale.to_string()]);
        }
        command
            .env("PACKET_AUTH_TOKEN", self.sim.token())
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("SSH_AUTH_SOCK", &self.agent.socket)
            .env_remove("RUST_LOG")
            .env_remove(journal::CRASH_AT_APPEND_ENV);
        command
    }

    /// Starts `loko run SPEC` and SIGKILLs it as soon as `moment` holds of the simulator's
    /// state. Returns false if loko finished first.
    pub async fn kill_run_when(
        &self,
        spec: &str,
        what: &str,
        moment: impl Fn(&sim::SimState) -> bool,
    ) -> bool {
        let mut child = self.spawn_quiet(&["run", spec]);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if moment(&self.sim.state()) {
                child.0.kill().expect("kill loko");
                child.0.wait().expect("reap loko");
                eprintln!("killed loko {what}");
                return true;
            }
            if child.0.try_wait().expect("poll loko").is_some() {
                eprintln!("loko finished before {what}");
                return false;
            }
            assert!(Instant::now() < deadline, "never {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Starts loko with its output discarded.
    pub fn spawn_quiet(&self, args: &[&str]) -> Killed {
        Killed(
            self.command(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start loko"),
        )
    }

    /// The devices of the simulated cloud; panics on two live devices of one hostname.
    pub fn devices(&self) -> Devices {
        let mut live = BTreeMap::new();
        let mut ever: BTreeMap<String, usize> = BTreeMap::new();
        for device in &self.sim.state().devices {
            *ever.entry(device.hostname.clone()).or_default() += 1;
            if !gone(device) {
                assert!(
                    live.insert(device.hostname.clone(), device.plan.clone())
                        .is_none(),
                    "two live devices for {}",
                    device.hostname
                );
            }
        }
        Devices { live, ever }
    }

    /// Every device not deleted is active and desired (by hostname), every desired hostname
    /// has exactly one, and none was created twice unless `replaced` names it.
    pub fn assert_cluster(&self, desired: &[String], replaced: &[&str]) {
        let state = self.sim.state();
        for device in &state.devices {
            if gone(device) {
                continue;
            }
            assert_eq!(device.state, "active", "not active: {device:?}");
            assert!(
                desired.contains(&device.hostname),
                "orphan device: {device:?}"
            );
        }
        let devices = self.devices();
        let live: Vec<&String> = devices.live.keys().collect();
        let mut want: Vec<&String> = desired.iter().collect();
        want.sort();
        assert_eq!(live, want, "live devices");
        for (host, n) in &devices.ever {
            if !replaced.contains(&host.as_str()) {
                assert_eq!(*n, 1, "{host} had {n} devices");
            }
        }
    }

    /// The A records of the simulator's Route53 (not moto's): name → sorted values.
    pub fn records(&self) -> BTreeMap<String, Vec<String>> {
        assert!(
            self.moto.is_none(),
            "records() reads the simulator's Route53"
        );
        let mut records = BTreeMap::new();
        for zone in &self.sim.state().hosted_zones {
            for set in &zone.record_sets {
                if set.rtype == "A" {
                    let mut values = set.values.clone();
                    values.sort();
                    records.insert(set.name.clone(), values);
                }
            }
        }
        records
    }

    /// The journal as `loko journal --json` prints it: the list of runs, then every run in
    /// full (`loko journal <run> --json`).
    pub fn journal_json(&self) -> String {
        let state_dir = self.state_dir();
        let state_dir = state_dir.to_str().unwrap_or_default();
        let runs = self.loko(&["journal", "--json", "--state-dir", state_dir]);
        let mut text = String::from_utf8_lossy(&runs.stdout).into_owned();
        // Then every run in full: its steps, attempts, intents, outputs and errors.
        let ids: Vec<String> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|run| run["run"].as_u64())
            .map(|id| id.to_string())
            .collect();
        for id in ids {
            let run = self.loko(&["journal", &id, "--json", "--state-dir", state_dir]);
            text += &String::from_utf8_lossy(&run.stdout);
        }
        text
    }

    /// How many nodes run the static control plane (kube-apiserver, kube-scheduler and
    /// kube-controller-manager, each judged to start by the simulated kubelet). Panics naming
    /// a node whose static pods do not all run.
    pub fn static_control_planes(&self) -> usize {
        let pods = self.sim.state().static_pods;
        let mut planes = 0;
        for (node, pods) in &pods {
            if pods.is_empty() {
                continue;
            }
            let running: std::collections::BTreeSet<&str> = pods
                .values()
                .filter(|pod| pod.running)
                .map(|pod| pod.component.as_str())
                .collect();
            assert!(
                pods.values().all(|pod| pod.running)
                    && [
                        "kube-apiserver",
                        "kube-scheduler",
                        "kube-controller-manager"
                    ]
                    .iter()
                    .all(|c| running.contains(c)),
                "{node}: its static control plane does not run: {pods:?}"
            );
            planes += 1;
        }
        planes
    }
}

/// Deleted, or moved out of the project after a failed provisioning (Packet's doing: the owner
/// can neither see nor delete it, nor is it billed to them).
fn gone(device: &sim::DeviceRecord) -> bool {
    matches!(
        device.state.as_str(),
        "deleted" | "failed_moved_out_of_project"
    )
}

/// Runs `run` (a `loko run` of [`World::command`]) with the journal's crash hook killing it
/// right after its `k`-th append; panics, saying `what`, unless it died of that SIGKILL.
pub fn crash_at_append(run: &mut Command, k: usize, what: &str) {
    use std::os::unix::process::ExitStatusExt as _;
    let out = run
        .env(journal::CRASH_AT_APPEND_ENV, k.to_string())
        .output()
        .expect("run loko");
    assert_eq!(
        out.status.signal(),
        Some(9),
        "{what}: the run was not killed at its append: {:?}\n{}",
        out.status,
        stdout(&out)
    );
}

/// Asserts what the run after a crash at append `k` of a clean run's `appends` printed: it
/// resumed run 1, or, when the crash came after the run's last append (the cluster was
/// complete), found nothing to do.
pub fn assert_resumed_after_crash(text: &str, k: usize, appends: usize, what: &str) {
    if k < appends {
        assert!(text.contains("resuming run 1"), "{what}: no resume\n{text}");
    } else {
        assert!(text.contains("Nothing to do"), "{what}\n{text}");
    }
}

/// One worker pool, as a YAML list item.
pub fn pool(name: &str, count: u32, plan: &str) -> String {
    format!("  - pool_name: {name}\n    count: {count}\n    type: {plan}\n")
}

/// stdout as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// SHA-256 of every file under `dir` (relative path → hex), for "unchanged since written".
pub fn file_digests(dir: &Path) -> BTreeMap<String, String> {
    use sha2::Digest as _;
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                let rel = path.strip_prefix(dir).unwrap_or(&path);
                let hex: String = sha2::Sha256::digest(&bytes)
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                out.insert(rel.display().to_string(), hex);
            }
        }
    }
    out
}

/// Every place a secret could leak: a PEM block, an OpenSSH private key, the token.
pub fn assert_no_secret(what: &str, text: &str, token: &str) {
    for needle in ["-----BEGIN", "PRIVATE KEY", "OPENSSH PRIVATE"] {
        assert!(!text.contains(needle), "{what} contains {needle:?}");
    }
    assert!(!text.contains(token), "{what} contains the API token");
}
