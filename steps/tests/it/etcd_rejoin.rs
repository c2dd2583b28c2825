//! `/opt/etcd-rejoin` as a controller runs it, against a real 3-member etcd: each controller is
//! a [`NodeRoot`] (its `/etc`, `/var/lib`, `/usr/bin`, `/opt` over the host's) in one network
//! namespace, each member started from the controller's own `etcd-member.service` on the
//! certificates loko copies to `/etc/ssl/etcd`, and the script, unchanged, under real bash.
//! `docker` is a stand-in that runs the etcd image's program with this machine's namesake
//! (`etcd`, `etcdctl`: Debian's), so every word of etcdctl the script parses is real.
//!
//! One difference from a node, said where it is made: the three members share a loopback, so
//! each listens on its own 127.0.0.x instead of the unit's 0.0.0.0.

use std::collections::BTreeMap;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use loko_tests::Killed;
use loko_tests::node_root::{NetNamespace, NodeRoot};
use loko_tests::rendered::{Rendered, render};
use sim::judge::systemd::{Unit, expand};
use specs::Role;
use steps::control_plane::ETCD_FILES;
use steps::ignition::ETCD_IMAGE;

use crate::node_artifacts::{Artifact, node_artifacts, systemd_verify};
use crate::pki_support::{full_cluster, text};

const DOCKER_CALLS: &str = "/var/lib/docker-calls";
const SYSTEMCTL_CALLS: &str = "/var/lib/systemctl-calls";
const DROPIN: &str = "/etc/systemd/system/etcd-member.service.d/50-rejoin.conf";

/// docker on a test node: `docker run [options] IMAGE PROGRAM ARGS…` of the etcd image runs
/// this machine's PROGRAM (by its base name) with ARGS, its environment passed as `-e` would;
/// a volume must map a path to itself (else the program's paths would differ from the
/// container's). Every call is logged; calls other than `run` do nothing.
fn docker_stand_in() -> String {
    format!(
        r#"#!/bin/bash
set -euo pipefail
echo "$*" >> {DOCKER_CALLS}
[ "${{1:-}}" = run ] || exit 0
shift
while [ $# -gt 0 ]; do
  case "$1" in
    {ETCD_IMAGE}) shift; break ;;
    -v) [ "${{2%%:*}}" = "$(cut -d: -f2 <<< "$2")" ] || {{ echo "docker stand-in: -v $2" >&2; exit 125; }}; shift 2 ;;
    -e|--name|--network) shift 2 ;;
    -*) shift ;;
    *) echo "docker stand-in: not the etcd image: $1" >&2; exit 125 ;;
  esac
done
program=$(basename "$1")
shift
command -v "$program" > /dev/null || {{ echo "docker stand-in: no $program here (Debian packages etcd-server, etcd-client)" >&2; exit 127; }}
exec "$program" "$@"
"#
    )
}

const SYSTEMCTL_STAND_IN: &str = "#!/bin/bash\necho \"$*\" >> /var/lib/systemctl-calls\n";

/// One controller: its root, its loopback address, and its etcd while it runs.
struct Controller {
    index: u32,
    host: String,
    address: String,
    /// Dropped (killed) before its root goes.
    etcd: Option<Killed>,
    root: NodeRoot,
    unit: String,
}

fn controllers(rendered: &Rendered, net: &NetNamespace, hosts: &str) -> Vec<Controller> {
    let cluster = &rendered.cluster;
    let mut out = Vec::new();
    for node in cluster.nodes.iter().filter(|n| n.role == Role::Controller) {
        let mut root = NodeRoot::new(&["/etc", "/var/lib", "/usr/bin", "/opt"]);
        root.write("/etc/hosts", hosts, 0o644);
        for (from, to) in ETCD_FILES {
            let contents = std::fs::read(rendered.root.join(from)).expect("an etcd certificate");
            root.write(&format!("/etc/ssl/etcd/{to}"), contents, 0o600);
        }
        let script = rendered
            .file(&node.hostname, "/opt/etcd-rejoin")
            .expect("a controller has /opt/etcd-rejoin");
        root.write("/opt/etcd-rejoin", script, 0o755);
        root.write("/usr/bin/docker", docker_stand_in(), 0o755);
        root.write("/usr/bin/systemctl", SYSTEMCTL_STAND_IN, 0o755);
        root.start(Some(net));
        let unit = rendered
            .units(&node.hostname)
            .into_iter()
            .find(|u| u.0 == "etcd-member.service")
            .and_then(|u| u.3)
            .expect("a controller has etcd-member.service");
        out.push(Controller {
            index: node.index,
            host: node.hostname.clone(),
            address: format!("127.0.0.{}", node.index + 1),
            root,
            unit,
            etcd: None,
        });
    }
    out
}

/// `etcd<i>=https://<name>:2380,…` of the unit's `--initial-cluster`: the members' names.
fn member_names(unit: &str) -> Vec<String> {
    let flag = unit
        .split_whitespace()
        .find_map(|w| w.strip_prefix("--initial-cluster="))
        .expect("etcd-member.service has --initial-cluster");
    flag.split(',')
        .map(|m| {
            m.split_once("=https://")
                .and_then(|(_, rest)| rest.strip_suffix(":2380"))
                .unwrap_or_else(|| panic!("{m}: not etcdN=https://NAME:2380"))
                .to_owned()
        })
        .collect()
}

impl Controller {
    /// Starts etcd as `etcd-member.service` does: its `ExecStartPre=` lines, then `ExecStart=`
    /// with the unit's drop-ins' environment (the rejoin's), through the node's docker.
    fn start_etcd(&mut self, log: &std::path::Path) {
        let mut unit_text = self.unit.clone();
        if let Some(dropin) = self.root.read(DROPIN) {
            unit_text.push_str(&dropin);
        }
        let unit = Unit::parse("etcd-member.service", &unit_text);
        let mut env = BTreeMap::new();
        env.insert(
            "COREOS_PACKET_IPV4_PRIVATE_0".to_owned(),
            self.address.clone(),
        );
        for line in unit.exec("ExecStartPre") {
            let (argv, _) = expand(&line.words, &env);
            let out = self.run(&argv);
            assert!(
                line.ignore_failure || out.status.success(),
                "{}: {argv:?}: {}",
                self.host,
                text(&out)
            );
        }
        let line = unit.exec("ExecStart").remove(0);
        let (argv, _) = expand(&line.words, &env);
        // The one change: three members share this loopback, so each listens on its address.
        let argv: Vec<String> = argv
            .iter()
            .map(|a| a.replace("0.0.0.0", &self.address))
            .collect();
        let log = std::fs::File::create(log).expect("a log file");
        let child = self
            .root
            .command(&argv[0])
            .args(&argv[1..])
            .envs(unit.environment())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("etcd through the node's docker");
        self.etcd = Some(Killed(child));
    }

    fn run(&self, argv: &[String]) -> Output {
        self.root
            .command(&argv[0])
            .args(&argv[1..])
            .output()
            .unwrap_or_else(|e| panic!("{argv:?} on {}: {e}", self.host))
    }

    /// etcdctl on this node, with the client certificate the script uses.
    fn etcdctl(&self, endpoints: &str, args: &[&str]) -> Output {
        self.root
            .command("etcdctl")
            .args([
                "--cacert=/etc/ssl/etcd/etcd-client-ca.crt",
                "--cert=/etc/ssl/etcd/etcd-client.crt",
                "--key=/etc/ssl/etcd/etcd-client.key",
                "--dial-timeout=2s",
                "--command-timeout=5s",
            ])
            .arg(format!("--endpoints={endpoints}"))
            .args(args)
            .output()
            .expect("etcdctl must be installed (Debian package etcd-client)")
    }

    /// `/opt/etcd-rejoin` as `ExecStopPost=` runs it after etcd exited with `status`: the
    /// variables systemd sets (systemd.exec(5), `$SERVICE_RESULT`, `$EXIT_CODE`, `$EXIT_STATUS`).
    fn rejoin(&self, status: u8) -> Output {
        let result = if status == 0 { "success" } else { "exit-code" };
        self.root
            .command("/opt/etcd-rejoin")
            .env("EXIT_CODE", "exited")
            .env("EXIT_STATUS", status.to_string())
            .env("SERVICE_RESULT", result)
            .output()
            .expect("/opt/etcd-rejoin runs")
    }

    fn docker_calls(&self) -> String {
        self.root.read(DOCKER_CALLS).unwrap_or_default()
    }
}

/// `member list` as (id, name, peer URL).
fn members(node: &Controller, endpoints: &str) -> Vec<(String, String, String)> {
    let out = node.etcdctl(endpoints, &["member", "list", "-w", "simple"]);
    assert!(out.status.success(), "member list: {}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(", ").collect();
            (f[0].to_owned(), f[2].to_owned(), f[3].to_owned())
        })
        .collect()
}

fn wait_healthy(node: &Controller, endpoints: &str, logs: &std::path::Path) {
    let start = Instant::now();
    loop {
        let out = node.etcdctl(endpoints, &["endpoint", "health"]);
        if out.status.success() {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "etcd is not healthy: {}\n{}",
            text(&out),
            (0..3)
                .map(
                    |i| std::fs::read_to_string(logs.join(format!("etcd{i}.log")))
                        .unwrap_or_default()
                        .lines()
                        .rev()
                        .take(8)
                        .collect::<Vec<_>>()
                        .join("\n")
                )
                .collect::<Vec<_>>()
                .join("\n---\n")
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Runs the script twice, as two exits of etcd with `status` within 120 s do (after a failure,
/// the first only records the time), and returns the second run.
fn exit_twice(node: &Controller, status: u8) -> Output {
    for run in 0..2 {
        let out = node.rejoin(status);
        assert!(
            out.status.success(),
            "{} run {run}: {}",
            node.host,
            text(&out)
        );
        if run == 1 {
            return out;
        }
    }
    unreachable!()
}

#[test]
fn etcd_rejoin_readds_a_lost_member_and_leaves_healthy_stopped_or_quorumless_ones_alone() {
    let rendered = render(full_cluster());
    let net = NetNamespace::new();
    let logs = tempfile::tempdir().expect("tempdir");

    // Names from the unit itself; each resolves to its controller's loopback address.
    let first_unit = rendered
        .units(&rendered.cluster.nodes[0].hostname)
        .into_iter()
        .find_map(|u| (u.0 == "etcd-member.service").then_some(u.3).flatten())
        .expect("controller 0 runs etcd");
    let names = member_names(&first_unit);
    assert_eq!(names.len(), 3, "{names:?}");
    let hosts: String = std::iter::once("127.0.0.1 localhost\n".to_owned())
        .chain(
            names
                .iter()
                .enumerate()
                .map(|(i, n)| format!("127.0.0.{} {n}\n", i + 1)),
        )
        .collect();
    let endpoints = names
        .iter()
        .map(|n| format!("https://{n}:2379"))
        .collect::<Vec<_>>()
        .join(",");
    let mut nodes = controllers(&rendered, &net, &hosts);
    for node in nodes.iter_mut() {
        let log = logs.path().join(format!("etcd{}.log", node.index));
        node.start_etcd(&log);
    }
    wait_healthy(&nodes[0], &endpoints, logs.path());
    let before = members(&nodes[0], &endpoints);
    assert_eq!(before.len(), 3, "{before:?}");

    // Healthy: the script changes nothing.
    exit_twice(&nodes[0], 1);
    let calls = nodes[0].docker_calls();
    assert!(calls.contains("endpoint health"), "{calls}");
    assert!(
        !calls.contains("member"),
        "a healthy member was touched: {calls}"
    );
    assert_eq!(members(&nodes[0], &endpoints), before);
    assert!(nodes[0].root.read(DROPIN).is_none());

    // Lost: etcd1's controller is reprovisioned (its etcd gone with its data). etcd started on
    // the empty directory as a new member fails, the cluster knowing it already.
    let lost = 1;
    nodes[lost].etcd = None;
    let out = nodes[lost].run(&["rm".into(), "-rf".into(), "/var/lib/etcd".into()]);
    assert!(out.status.success(), "{}", text(&out));
    let log = logs.path().join(format!("etcd{lost}.log"));
    nodes[lost].start_etcd(&log);
    let start = Instant::now();
    let status = loop {
        let etcd = nodes[lost].etcd.as_mut().expect("started");
        if let Some(status) = etcd.0.try_wait().expect("etcd's status") {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "etcd on an empty data directory did not fail"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(!status.success(), "etcd on an empty data directory started");
    let old_id = before
        .iter()
        .find(|m| m.1 == format!("etcd{lost}"))
        .map(|m| m.0.clone())
        .expect("etcd1 was a member");

    let out = exit_twice(&nodes[lost], 1);
    let calls = nodes[lost].docker_calls();
    assert!(
        calls.contains(&format!("member remove {old_id}")),
        "the lost member was not removed: {calls}\n{}",
        text(&out)
    );
    let peer = format!("https://{}:2380", names[lost]);
    assert!(
        calls.contains(&format!("member add etcd{lost} --peer-urls={peer}")),
        "{calls}"
    );
    let after = members(&nodes[0], &endpoints);
    assert!(!after.iter().any(|m| m.0 == old_id), "{after:?}");
    assert!(
        after.iter().any(|m| m.2 == peer && m.1.is_empty()),
        "the member is added, not yet started: {after:?}"
    );
    let dropin = nodes[lost].root.read(DROPIN).expect("the state drop-in");
    assert!(
        dropin.contains("Environment=ETCD_INITIAL_CLUSTER_STATE=existing"),
        "{dropin}"
    );
    // The drop-in is a unit file loko's script puts on the node: systemd must read it too.
    let host = &nodes[lost].host;
    let mut node_files = node_artifacts("full", host, &rendered.ignitions[host]);
    node_files.units.push(Artifact {
        origin: format!("{host} {DROPIN}"),
        path: DROPIN.to_owned(),
        mode: 0o644,
        contents: dropin.clone(),
    });
    let (verified, report) = systemd_verify(&node_files);
    assert!(verified.iter().any(|u| u == "etcd-member.service"));
    assert!(report.is_none(), "{}", report.unwrap_or_default());
    let systemctl = nodes[lost].root.read(SYSTEMCTL_CALLS).unwrap_or_default();
    assert_eq!(systemctl.trim(), "daemon-reload");

    // Restarted with the drop-in, as Restart=always does: the member is back, a new one.
    nodes[lost].start_etcd(&log);
    wait_healthy(&nodes[0], &endpoints, logs.path());
    let rejoined = members(&nodes[0], &endpoints);
    assert_eq!(rejoined.len(), 3, "{rejoined:?}");
    let new_id = rejoined
        .iter()
        .find(|m| m.1 == format!("etcd{lost}") && m.2 == peer)
        .map(|m| m.0.clone())
        .unwrap_or_else(|| panic!("etcd{lost} did not rejoin: {rejoined:?}"));
    assert_ne!(new_id, old_id);

    // Stopped on purpose (`systemctl stop`: `docker stop`, and etcd exits 0), within 120 s of
    // the rejoin: the member is not lost, whatever etcdctl says of it while it is down.
    nodes[lost].etcd = None;
    let calls_before = nodes[lost].docker_calls();
    exit_twice(&nodes[lost], 0);
    let calls = nodes[lost].docker_calls();
    assert!(
        !calls[calls_before.len()..].contains("member"),
        "a stopped member was touched: {}",
        &calls[calls_before.len()..]
    );

    // Unreachable: two members down, no quorum. The script must change nothing: no member
    // removed or added, the data kept, no drop-in.
    nodes[1].etcd = None;
    nodes[2].etcd = None;
    let calls_before = nodes[2].docker_calls();
    exit_twice(&nodes[2], 1);
    let calls = nodes[2].docker_calls();
    let new_calls = &calls[calls_before.len()..];
    assert!(new_calls.contains("endpoint health"), "{new_calls}");
    assert!(!new_calls.contains("member"), "{new_calls}");
    assert!(nodes[2].root.read(DROPIN).is_none());
    let kept = nodes[2].run(&["test".into(), "-d".into(), "/var/lib/etcd/member".into()]);
    assert!(kept.status.success(), "etcd2's data was moved");
    // etcd0 alone still lists its members (member list is served locally).
    let listed = members(&nodes[0], &format!("https://{}:2379", names[0]));
    assert_eq!(listed, rejoined);
}
