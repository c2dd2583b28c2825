//! The examples run end to end against the embedded simulator, every command on the demo's
//! cluster, the README followed word for word, and runs after a first one that failed.

use std::process::Command;

use journal::testing::{failed, started, succeeded};
use journal::{Digest, Outputs, RunKind, StepId};

use crate::binary::{loko, loko_expect, text, tutorial};
use crate::journal_cmd::{ended_failed, write_journal};

/// The README's demo, and every command on its cluster: run (then nothing to do), status,
/// graph, plan, destroy with `--json` lines. All against the in-process simulator.
#[test]
fn the_demo_runs_end_to_end_and_every_command_works_on_it() {
    let (dir, spec, _) = tutorial();
    let spec = spec.as_str();

    let out = loko(&["run", spec, "--sim"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("Plan: 6 to add, 0 to change, 0 to destroy."),
        "{stdout}"
    );
    for node in [
        "supernova-controller-0",
        "supernova-helium-worker-0",
        "supernova-helium-worker-1",
    ] {
        assert!(stdout.contains(node), "{stdout}");
    }
    // The in-process simulator is gone once the demo ends: no KUBECONFIG to export, but the
    // commands that work on its saved cloud; and a transient "does not answer" of the
    // apiserver while it boots is progress, not an error.
    assert!(!stdout.contains("export KUBECONFIG="), "{stdout}");
    assert!(
        stdout.contains(&format!("loko status {spec} --sim")),
        "{stdout}"
    );
    assert!(!stdout.contains("does not answer"), "{stdout}");
    // The nodes' table fits 80 columns: devices by their short id.
    let table: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("NODE "))
        .take_while(|l| !l.is_empty())
        .collect();
    assert_eq!(table.len(), 4, "{stdout}");
    assert!(table.iter().all(|l| l.chars().count() <= 80), "{stdout}");
    let kubeconfig = dir.path().join("assets/supernova/auth/kubeconfig");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&kubeconfig).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let out = loko(&["run", spec, "--sim"]);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("Nothing to do"));
    // With --json, the stream ends with the run's end, also when there was nothing to do.
    let out = loko(&["run", spec, "--sim", "--json"]);
    assert!(out.status.success());
    let last: serde_json::Value =
        serde_json::from_str(text(&out.stdout).lines().last().unwrap_or_default()).unwrap();
    assert_eq!(last["event"], "run_ended", "{last}");
    assert_eq!(last["outcome"], "up_to_date", "{last}");

    let out = loko(&["status", spec, "--sim"]);
    assert!(out.status.success());
    assert!(
        text(&out.stdout).contains("The cluster matches the spec."),
        "{}",
        text(&out.stdout)
    );
    let (status, _) = loko_expect(&["status", spec, "--sim", "--json"], 0);
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["matches"], true, "{status}");
    assert_eq!(
        status["nodes"].as_array().map(Vec::len),
        Some(3),
        "{status}"
    );
    let controller = status["nodes"][0]["device"].as_str().unwrap().to_owned();

    let out = loko(&["graph", spec]);
    let dot = text(&out.stdout);
    assert!(dot.starts_with("digraph"), "{dot}");
    // The static control plane: copied after the controller's etcd secrets, again whenever a
    // certificate changes (the PKI's fingerprints), and applied to once every controller has
    // it; no bootkube.
    for edge in [
        "\"etcd-secrets/supernova-controller-0\" -> \"control-plane/supernova-controller-0\"",
        "\"assets/pki\" -> \"control-plane/supernova-controller-0\"",
        "\"assets/manifests\" -> \"control-plane/supernova-controller-0\"",
        "\"control-plane/supernova-controller-0\" -> \"bootstrap\"",
        "\"dns\" -> \"bootstrap\"",
        "\"bootstrap\" -> \"ready\"",
    ] {
        assert!(dot.contains(edge), "no {edge}: {dot}");
    }
    assert!(!dot.contains("bootkube"), "{dot}");

    let out = loko(&["plan", spec, "--json"]);
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["create"], serde_json::json!([]));

    // Not on a terminal: destroy needs --yes, and says what it would delete.
    let (_, err) = loko_expect(&["destroy", spec, "--sim"], 2);
    assert!(
        err.contains(&format!("device {controller} (supernova-controller-0)")),
        "{err}"
    );
    assert!(
        err.contains("DNS record supernova.packet.example.com"),
        "{err}"
    );
    let out = loko(&["destroy", spec, "--sim", "--yes", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines = text(&out.stdout);
    assert!(!lines.trim().is_empty());
    let mut deletes_sent = 0;
    for line in lines.lines() {
        let event: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert!(event["event"].is_string(), "{line}");
        deletes_sent += usize::from(event["milestone"] == "device delete sent");
    }
    // Each device's delete is a milestone a program reads without parsing the message.
    assert_eq!(deletes_sent, 3, "{lines}");
    assert!(
        lines
            .lines()
            .last()
            .unwrap_or_default()
            .contains(r#""outcome":"succeeded""#),
        "{lines}"
    );
    // The cluster differs from the spec: status says so, and exits 4.
    let (out, _) = loko_expect(&["status", spec, "--sim"], 4);
    assert!(out.contains("has no device"), "{out}");
    let (status, _) = loko_expect(&["status", spec, "--sim", "--json"], 4);
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["matches"], false, "{status}");

    // The journal holds no secret: no PEM block, no private key.
    let journal = loko(&[
        "journal",
        "--json",
        "--state-dir",
        dir.path().join("assets/supernova/.loko").to_str().unwrap(),
    ]);
    let audit = text(&journal.stdout);
    assert!(
        audit.contains("apply") && audit.contains("destroy"),
        "{audit}"
    );
    assert!(
        !audit.contains("PRIVATE KEY") && !audit.contains("BEGIN"),
        "{audit}"
    );
}

/// The flannel example names hardware reservations by id and asks for `next-available` ones:
/// the embedded simulator gives its project exactly those, so the example runs as written.
#[test]
fn the_flannel_example_runs_on_its_reservations_against_the_embedded_simulator() {
    let dir = tempfile::tempdir().unwrap();
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/flannel.yaml");
    let written = std::fs::read_to_string(example).unwrap();
    let assets = dir.path().join("assets");
    let spec = dir.path().join("flannel.yaml");
    std::fs::write(
        &spec,
        written.replace(
            "asset_dir: /var/lib/loko/lattice",
            &format!("asset_dir: {}", assets.display()),
        ),
    )
    .unwrap();
    let out = loko(&["run", spec.to_str().unwrap(), "--sim"]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(assets.join(".loko/sim/state.json")).unwrap())
            .unwrap();
    let reservation_of = |hostname: &str| {
        let devices = state["packet"]["devices"].as_object().unwrap();
        let device = devices
            .values()
            .find(|d| d["hostname"] == hostname)
            .unwrap_or_else(|| panic!("no device {hostname}"));
        device["hardware_reservation_id"].clone()
    };
    assert_eq!(
        reservation_of("lattice-controller-0"),
        "55555f20-a1fb-55bd-1e11-11af11d11111"
    );
    assert_eq!(
        reservation_of("lattice-storage-worker-1"),
        "77777f20-c3fb-77bd-3e33-33af33d33333"
    );
    assert!(reservation_of("lattice-general-worker-2").is_string());
}

/// The desired cluster of a spec text, as `loko run` records it, and its digest.
fn recorded_spec(dir: &std::path::Path, text: &str) -> (serde_json::Value, Digest) {
    let path = dir.join("recorded.yaml");
    std::fs::write(&path, text).unwrap();
    let desired = specs::load(&path).unwrap().desired();
    (
        desired.to_record().unwrap(),
        Digest::of_json(&desired).unwrap(),
    )
}

/// A first run with a typo in `project_id` failed with a 404 before creating anything: the
/// corrected spec is planned and runs (what exists is the cluster's identity, not a spec from
/// which nothing was built).
#[test]
fn a_typo_in_a_first_run_that_built_nothing_does_not_lock_the_cluster() {
    let (dir, spec, state) = tutorial();
    let written = std::fs::read_to_string(&spec).unwrap();
    let typo = written.replace(
        "project_id: 93fa1e81-0f3c-4b2e-9d8a-2c6e5f0a1b2c",
        "project_id: 93fa1e81-0f3c-4b2e-9d8a-2c6e5f0a1b2d",
    );
    assert_ne!(typo, written);
    let pki = StepId::new("assets/pki").unwrap();
    let device = StepId::new("device/supernova-controller-0").unwrap();
    let not_found =
        "HTTP 404 from GET /projects/93fa1e81-0f3c-4b2e-9d8a-2c6e5f0a1b2d/devices: Not found";
    write_journal(
        &state,
        RunKind::Apply,
        recorded_spec(dir.path(), &typo),
        vec![pki.clone(), device.clone()],
        vec![
            started(&pki, 1),
            succeeded(&pki, 1, Outputs::new(), 5),
            started(&device, 1),
            failed(&device, 1, not_found, false, 5),
            ended_failed(vec![device.clone()], vec![]),
        ],
    );
    let (plan, _) = loko_expect(&["plan", &spec], 0);
    assert!(
        plan.contains("Plan: 6 to add, 0 to change, 0 to destroy."),
        "{plan}"
    );
    let (run, _) = loko_expect(&["run", &spec, "--sim"], 0);
    assert!(run.contains("Cluster supernova is ready"), "{run}");
}

/// A failed `loko destroy` is not resumed by `loko run`: the run starts a run of its own kind.
#[test]
fn a_run_after_a_failed_destroy_does_not_resume_the_destroy() {
    let (dir, spec, state) = tutorial();
    let step = StepId::new("destroy/devices").unwrap();
    write_journal(
        &state,
        RunKind::Destroy,
        recorded_spec(dir.path(), &std::fs::read_to_string(&spec).unwrap()),
        vec![step.clone()],
        vec![
            started(&step, 1),
            failed(&step, 1, "HTTP 500", false, 5),
            ended_failed(vec![step], vec![]),
        ],
    );
    let (out, _) = loko_expect(&["run", &spec, "--sim"], 0);
    assert!(!out.contains("resuming run 1"), "{out}");
    let state_text = state.to_str().unwrap();
    let (runs, _) = loko_expect(&["journal", "--json", "--state-dir", state_text], 0);
    let runs: Vec<serde_json::Value> = runs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(runs[0]["kind"], "destroy");
    assert_eq!(
        runs[0]["plan_steps"], 1,
        "the destroy's run took no apply step"
    );
    assert_eq!(runs[1]["kind"], "apply");
    assert_eq!(runs[1]["ended"]["outcome"]["status"], "succeeded");
}

/// The README's "Using loko", followed word for word against a standalone `loko sim`: its
/// commands run as written, what `loko sim` prints is pasted where the README says, and the
/// printed `loko run` line builds the cluster.
#[test]
fn the_readme_works_against_a_standalone_simulator() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let after = readme
        .split("To try every command above without an")
        .nth(1)
        .expect("the README's simulator section");
    let block = after
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("its commands");
    let (setup, sim_line): (Vec<&str>, Vec<&str>) =
        block.lines().partition(|l| !l.starts_with("loko sim"));
    // The commands of "Using loko", with what the simulator's section puts in place of the
    // account: its exports and agent for the first three lines, its `loko run` line for
    // `loko run cluster.yaml`.
    let using: Vec<&str> = readme
        .split("## Using loko")
        .nth(1)
        .and_then(|s| s.split("```sh\n").nth(1))
        .and_then(|b| b.split("```").next())
        .expect("the commands of Using loko")
        .lines()
        .filter(|l| {
            !l.starts_with("export PACKET_AUTH_TOKEN") && !l.starts_with("export AWS_PROFILE")
        })
        .filter(|l| !l.starts_with("eval $(ssh-agent)"))
        .map(|l| match l.starts_with("loko run cluster.yaml") {
            true => "$RUN",
            false => l,
        })
        .collect();
    assert!(
        using.iter().any(|l| l.starts_with("kubectl get nodes")),
        "{using:?}"
    );
    let sim_line = sim_line[0].split('#').next().unwrap().trim();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("examples")).unwrap();
    // A checkout: the repository's .gitignore decides what `git add -A` would take.
    for file in ["examples/tutorial.yaml", ".gitignore"] {
        std::fs::copy(root.join(file), dir.path().join(file)).unwrap();
    }
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    git(&["init", "-q"]);
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_loko"))
        .parent()
        .unwrap();
    // One shell, as a user's terminal: the README's commands, the simulator in the background
    // (the second terminal), then the paste.
    let script = format!(
        r#"set -e
{setup}
{sim_line} > sim.out 2>&1 &
SIM=$!
trap 'kill $SIM $SSH_AGENT_PID 2>/dev/null' EXIT
for i in $(seq 600); do grep -q 'Serving until Ctrl-C' sim.out && break; sleep 0.1; done
sed -n '/^endpoints:/,/route53_endpoint_url/p' sim.out >> cluster.yaml
eval "$(grep '^export ' sim.out)"
RUN=$(grep '^loko run ' sim.out | sed 's/SPEC/cluster.yaml/')
{using}
"#,
        setup = setup.join("\n"),
        using = using.join("\n")
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .env(
            "PATH",
            format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
        )
        .env_remove("RUST_LOG")
        .env_remove("PACKET_AUTH_TOKEN")
        .env_remove("SSH_AUTH_SOCK")
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    let sim = std::fs::read_to_string(dir.path().join("sim.out")).unwrap_or_default();
    assert!(
        out.status.success(),
        "{stdout}\n{stderr}\n--- loko sim\n{sim}"
    );
    assert!(stdout.contains("Cluster supernova is ready"), "{stdout}");
    // What it says to paste is what the README runs.
    assert!(
        stdout.contains("export KUBECONFIG=$(loko kubeconfig cluster.yaml)"),
        "{stdout}"
    );
    assert!(sim.contains("export PACKET_AUTH_TOKEN="), "{sim}");
    // kubectl reached the simulated apiserver: its table lists every node, Ready (loko's own
    // table has the role in that column).
    for node in [
        "supernova-controller-0",
        "supernova-helium-worker-0",
        "supernova-helium-worker-1",
    ] {
        assert!(
            stdout.lines().any(|l| {
                let mut fields = l.split_whitespace();
                fields.next() == Some(node) && fields.next() == Some("Ready")
            }),
            "{node} is not Ready in kubectl's table: {stdout}"
        );
    }
    // Nothing secret is left for a `git add -A`: the CA keys, the journal, the key pair.
    let untracked = git(&["status", "--porcelain", "--untracked-files=all"]);
    let secrets: Vec<&str> = untracked
        .lines()
        .filter(|l| l.contains("assets/") || l.contains("id_loko") || l.contains(".key"))
        .collect();
    assert!(secrets.is_empty(), "not ignored: {secrets:?}");
    let spec = std::fs::read_to_string(dir.path().join("cluster.yaml")).unwrap();
    assert!(!spec.contains("examples/assets"), "{spec}");
}

/// A pool may hold more than 100 nodes (the Terraform modules had no cap); `loko plan` shows how
/// many devices a run creates, and `loko run` refuses to create more than its threshold without
/// a yes (no terminal here), before anything is started or called.
#[test]
fn a_large_pool_is_planned_and_its_run_needs_a_yes() {
    let dir = tempfile::tempdir().unwrap();
    let tutorial = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/tutorial.yaml"),
    )
    .unwrap();
    let write = |name: &str, count: usize| {
        let path = dir.path().join(name);
        let text = tutorial.replacen("    count: 2\n", &format!("    count: {count}\n"), 1);
        assert!(
            tutorial.contains("    count: 2\n"),
            "the tutorial's pool count moved"
        );
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let big = write("big.yaml", 150);

    let out = loko(&["plan", &big]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("Devices to create: 151."),
        "{}",
        text(&out.stdout)
    );
    let out = loko(&["plan", &big, "--json"]);
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["devices_to_create"], 151);

    let out = loko(&["run", &big, "--sim"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("this run would create 151 new devices, more than the 100"),
        "{err}"
    );
    assert!(
        err.contains("--yes") && err.contains("LOKO_MAX_NEW_DEVICES"),
        "{err}"
    );
    assert!(
        !dir.path().join("assets/supernova/.loko/sim").exists(),
        "the simulator started before the guard"
    );

    // The threshold from the environment applies to small runs too.
    let small = write("small.yaml", 2);
    let out = Command::new(env!("CARGO_BIN_EXE_loko"))
        .args(["run", &small, "--sim"])
        .env("LOKO_MAX_NEW_DEVICES", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("would create 3 new devices, more than the 1"),
        "{}",
        text(&out.stderr)
    );

    // A yes, or a threshold as high as the run, passes the guard: the run then stops at the
    // next check (no token), which comes after it.
    for extra in [&["--yes"][..], &["--max-new-devices", "151"][..]] {
        let out = Command::new(env!("CARGO_BIN_EXE_loko"))
            .args(["run", &big])
            .args(extra)
            .env_remove("PACKET_AUTH_TOKEN")
            .env_remove("METAL_AUTH_TOKEN")
            .env_remove("LOKO_MAX_NEW_DEVICES")
            .output()
            .unwrap();
        let err = text(&out.stderr);
        assert!(!out.status.success());
        assert!(!err.contains("new devices"), "{extra:?}: {err}");
        assert!(err.contains("error:"), "{extra:?}: {err}");
    }
}
