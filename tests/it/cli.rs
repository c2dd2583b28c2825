//! The `loko` binary, run as a user runs it.

use std::process::{Command, Output};

use journal::testing::{failed, started, succeeded};
use journal::{Digest, Event, Journal, Outputs, RunKind, RunOutcome, StepId};

fn loko(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loko"))
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("LOKO_JOURNAL")
        .output()
        .expect("run loko")
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

/// Writes the journal of the state directory `state`: one run of `kind` for the desired
/// cluster `spec` (its record and digest), planning `steps`, then `events` in order.
pub(crate) fn write_journal(
    state: &std::path::Path,
    kind: RunKind,
    (recorded, digest): (serde_json::Value, Digest),
    steps: Vec<StepId>,
    events: Vec<Event>,
) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let j = Journal::open(&state.join("journal")).unwrap();
        let run = j.begin_run(kind, digest, recorded, steps).await.unwrap();
        for event in events {
            j.append(run, event).await.unwrap();
        }
    });
}

fn ended_failed(failed: Vec<StepId>, skipped: Vec<StepId>) -> Event {
    Event::RunEnded {
        outcome: RunOutcome::Failed { failed, skipped },
    }
}

/// A state directory (and its path) whose journal has one run: `pki` succeeded, `device/n-0`
/// failed twice then succeeded, `dns` failed permanently, `ssh` skipped.
pub(crate) fn sample_journal() -> (tempfile::TempDir, String) {
    let state_dir = tempfile::tempdir().unwrap();
    let ids = ["pki", "device/n-0", "dns", "ssh"].map(|s| StepId::new(s).unwrap());
    let mut events = vec![
        started(&ids[0], 1),
        succeeded(
            &ids[0],
            1,
            Outputs::new().with("ca_fingerprint", "ab12").unwrap(),
            1500,
        ),
    ];
    for attempt in 1..=2 {
        events.push(started(&ids[1], attempt));
        let error = "HTTP 503 from POST /projects/p/devices";
        events.push(failed(&ids[1], attempt, error, true, 20));
    }
    events.extend([
        started(&ids[1], 3),
        Event::StepIntent {
            step: ids[1].clone(),
            attempt: 3,
            effect: "create device".into(),
            detail: Outputs::new().with("hostname", "n-0").unwrap(),
        },
        succeeded(
            &ids[1],
            3,
            Outputs::new().with("device_id", "d-42").unwrap(),
            1500,
        ),
        started(&ids[2], 1),
        failed(&ids[2], 1, "zone Z123 not found", false, 20),
        Event::StepSkipped {
            step: ids[3].clone(),
            because: ids[2].clone(),
        },
        ended_failed(vec![ids[2].clone()], vec![ids[3].clone()]),
    ]);
    write_journal(
        state_dir.path(),
        RunKind::Apply,
        (serde_json::json!({}), Digest::of(b"spec")),
        ids.to_vec(),
        events,
    );
    let path = state_dir.path().to_str().unwrap().to_owned();
    (state_dir, path)
}

#[test]
fn journal_lists_runs_steps_and_attempts() {
    let (_dir, state) = sample_journal();

    let out = loko(&["journal", "--state-dir", &state]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let runs = text(&out.stdout);
    assert!(
        runs.contains("failed: 1 failed, 1 skipped (resumable)"),
        "{runs}"
    );
    assert!(runs.contains("2/4"), "{runs}");

    let out = loko(&["journal", "--state-dir", &state, "1"]);
    let steps = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let device = steps
        .lines()
        .find(|l| l.starts_with("device/n-0"))
        .expect(&steps);
    assert!(
        device.contains(" 1-3 ")
            && device.contains("succeeded")
            && device.contains("device_id=d-42"),
        "{device}"
    );
    let dns = steps.lines().find(|l| l.starts_with("dns")).expect(&steps);
    assert!(
        dns.contains("failed!") && dns.contains("zone Z123 not found"),
        "{dns}"
    );
    let ssh = steps.lines().find(|l| l.starts_with("ssh")).expect(&steps);
    assert!(
        ssh.contains("skipped") && ssh.contains("because dns failed"),
        "{ssh}"
    );

    let out = loko(&["journal", "--state-dir", &state, "--step", "device/n-0"]);
    let attempts = text(&out.stdout);
    assert!(attempts.contains("attempt 1 started"), "{attempts}");
    assert!(
        attempts.contains("failed after 20ms (retryable): HTTP 503"),
        "{attempts}"
    );
    assert!(
        attempts.contains("intent") && attempts.contains("create device hostname=n-0"),
        "{attempts}"
    );
    assert!(attempts.contains("device_id = \"d-42\""), "{attempts}");
}

#[test]
fn journal_json_prints_one_parseable_object_per_line() {
    let (_dir, state) = sample_journal();
    let out = loko(&["journal", "--state-dir", &state, "1", "--json"]);
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect(l))
        .collect();
    assert_eq!(lines.len(), 14);
    assert_eq!(lines[0]["seq"], 1);
    assert!(lines[0]["event"]["run_started"].is_object());
    assert!(lines[13]["event"]["run_ended"].is_object());
    let out = loko(&["journal", "--state-dir", &state, "--json"]);
    let run: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(run["run"], 1);
    assert_eq!(run["events"], 14);
}

#[test]
fn usage_errors_exit_2_with_a_hint() {
    let out = loko(&["journal"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("error: loko journal needs to know which cluster"),
        "{err}"
    );
    assert!(err.contains("hint: pass the spec"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let out = loko(&["journal", "--state-dir", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no journal at"),
        "{}",
        text(&out.stderr)
    );

    let out = loko(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_locked_journal_exits_3_naming_the_holder() {
    let (dir, state) = sample_journal();
    let _held = Journal::open(&dir.path().join("journal")).unwrap();
    let out = loko(&["journal", "--state-dir", &state]);
    assert_eq!(out.status.code(), Some(3));
    let err = text(&out.stderr);
    assert!(err.contains("is locked by another loko"), "{err}");
    assert!(
        err.contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
    assert!(err.contains("hint: another loko is running"), "{err}");
    // The holder's start, in time for people.
    assert!(err.contains(" UTC") && !err.contains("unix time"), "{err}");
}

#[test]
fn help_shows_examples_and_exit_codes() {
    let out = loko(&["--help"]);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("Exit codes: 0 done, 1 run failed"));
    let out = loko(&["journal", "--help"]);
    assert!(text(&out.stdout).contains("Examples:"));
}

#[test]
fn validate_accepts_every_example_and_points_at_errors() {
    for example in [
        "examples/tutorial.yaml",
        "examples/hybrid.yaml",
        "examples/flannel.yaml",
    ] {
        let path = format!("{}/{example}", env!("CARGO_MANIFEST_DIR"));
        let out = loko(&["validate", &path]);
        assert!(out.status.success(), "{example}: {}", text(&out.stderr));
        assert!(
            text(&out.stdout).contains(": valid: cluster "),
            "{}",
            text(&out.stdout)
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("spec.yaml");
    std::fs::write(&bad, "cluster_name: supernova\ncontroler_count: 2\n").unwrap();
    let out = loko(&["validate", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("spec.yaml:2:1: controler_count:"), "{err}");
    assert!(err.contains("did you mean `controller_count`?"), "{err}");
    assert!(err.contains("hint: see docs/spec.md"), "{err}");
}

#[test]
fn schema_is_json_schema_of_the_spec() {
    let out = loko(&["schema"]);
    assert!(out.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(schema["properties"]["cluster_name"].is_object(), "{schema}");
    assert!(schema["properties"]["worker_pools"].is_object(), "{schema}");
}

#[test]
fn sim_prints_its_endpoints_and_serves_until_stopped() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("sim.json");
    let mut child = loko_tests::Killed(
        std::process::Command::new(env!("CARGO_BIN_EXE_loko"))
            .args([
                "sim",
                "--time-scale",
                "0.01",
                "--state",
                state.to_str().unwrap(),
            ])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let (mut addr, mut token) = (String::new(), String::new());
    while addr.is_empty()
        || token.is_empty()
        || !seen.iter().any(|l: &String| l.contains("project:"))
    {
        let line = lines.next().expect("loko sim exited early").unwrap();
        if let Some(rest) = line.strip_prefix("loko sim listening on ") {
            addr = rest.trim().to_owned();
        }
        if let Some(rest) = line.trim().strip_prefix("token:") {
            token = rest.split_whitespace().next().unwrap().to_owned();
        }
        seen.push(line);
    }
    let project = seen
        .iter()
        .find_map(|l| {
            l.trim()
                .strip_prefix("project:")
                .map(|p| p.trim().to_owned())
        })
        .unwrap();
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "-m",
            "20",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
        ])
        .arg(format!("X-Auth-Token: {token}"))
        .arg(format!("http://{addr}/metal/v1/projects/{project}"))
        .output()
        .unwrap();
    assert_eq!(text(&out.stdout), "200");
    drop(child);
    let saved = std::fs::read_to_string(&state).expect("state file written");
    assert!(!saved.is_empty());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&state).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Started again on the same state, it keeps the project.
    let mut again = loko_tests::Killed(
        std::process::Command::new(env!("CARGO_BIN_EXE_loko"))
            .args(["sim", "--state", state.to_str().unwrap()])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // The endpoints block ends with the faults line; read no further (it then serves).
    let mut found = false;
    for line in BufReader::new(again.0.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        found |= line.contains(&project);
        if line.trim().starts_with("faults:") {
            break;
        }
    }
    drop(again);
    assert!(found, "the restarted simulator kept project {project}");
}

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

/// The tutorial in a temporary directory: (the directory, the spec's path, the state dir).
fn tutorial() -> (tempfile::TempDir, String, std::path::PathBuf) {
    let (dir, spec) = loko_tests::example_copy("tutorial.yaml");
    let state = dir.path().join("assets/supernova/.loko");
    (dir, spec.to_str().unwrap().to_owned(), state)
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

/// Runs `loko ARGS` and panics with its output unless it exits `code`.
fn loko_expect(args: &[&str], code: i32) -> (String, String) {
    let out = loko(args);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(code),
        "loko {args:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    (stdout, stderr)
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

/// A `loko run SPEC --sim` in the background, killed when dropped.
fn spawn_demo(spec: &str, extra: &[&str]) -> loko_tests::Killed {
    loko_tests::Killed(
        Command::new(env!("CARGO_BIN_EXE_loko"))
            .args(["run", spec, "--sim"])
            .args(extra)
            .env_remove("RUST_LOG")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    )
}

/// The hostnames of the devices the demo's simulator saved in its state file.
fn demo_devices(state: &std::path::Path) -> Vec<String> {
    let Ok(bytes) = std::fs::read(state.join("sim/state.json")) else {
        return Vec::new();
    };
    let Ok(saved) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return Vec::new();
    };
    let mut hosts: Vec<String> = saved["packet"]["devices"]
        .as_object()
        .map(|d| {
            d.values()
                .filter_map(|d| d["hostname"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    hosts.sort();
    hosts
}

/// Waits (up to two minutes) until `ready` holds.
fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !ready() {
        assert!(std::time::Instant::now() < deadline, "never {what}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A demo run of `spec` (15 s of provisioning at this pace), once it created its first device
/// (saved in the state directory `state`).
fn demo_with_a_device(spec: &str, state: &std::path::Path) -> loko_tests::Killed {
    let run = spawn_demo(spec, &["--time-scale", "0.05"]);
    wait_until("a device was created", || !demo_devices(state).is_empty());
    run
}

/// Sends `signal` (`-INT`, `-TERM`) to a spawned loko, which must end interrupted (exit 130);
/// its stdout and stderr.
fn interrupt(run: loko_tests::Killed, signal: &str) -> (String, String) {
    let pid = run.0.id().to_string();
    assert!(
        Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap()
            .success()
    );
    let (code, out, err) = finish(run);
    assert_eq!(code, Some(130), "{out}{err}");
    (out, err)
}

/// Waits for a spawned loko and returns its exit code, stdout and stderr.
fn finish(mut child: loko_tests::Killed) -> (Option<i32>, String, String) {
    use std::io::Read as _;
    let mut stderr = child.0.stderr.take().unwrap();
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let mut out = String::new();
    let _ = child.0.stdout.take().unwrap().read_to_string(&mut out);
    let status = child.0.wait().unwrap();
    (status.code(), out, errors.join().unwrap())
}

/// `loko plan`, `loko graph` and `loko status --sim` are pure reads. Before any run they
/// create nothing (no asset directory, no journal). While `loko run --sim` of the same spec
/// provisions, each succeeds and none takes the journal: the feed still names the run as its
/// holder (an opener would have rewritten it), the run is not disturbed (its agent, nodes and
/// simulator state are its own) and succeeds, and the journal holds its one run.
#[test]
fn plan_graph_and_status_read_without_a_lock_during_a_run_and_change_nothing() {
    let (dir, spec, state) = tutorial();
    let (dot, _) = loko_expect(&["graph", &spec], 0);
    assert!(
        dot.contains("\"assets/pki\" -> \"assets/kubeconfigs\""),
        "{dot}"
    );
    let (plan, _) = loko_expect(&["plan", &spec], 0);
    assert!(plan.contains("Plan: 6 to add"), "{plan}");
    assert!(
        !dir.path().join("assets").exists(),
        "plan or graph created the asset directory"
    );

    // Provisioning takes 15 s at this pace: the reads land in the middle of it.
    let run = demo_with_a_device(&spec, &state);
    let feed = state.join("journal").join(journal::FEED_FILE);
    let header = || {
        let text = std::fs::read_to_string(&feed).unwrap();
        text.lines().next().unwrap().to_owned()
    };
    let holder = header();
    assert!(
        holder.contains(&format!("\"pid\":{}", run.0.id())),
        "{holder}"
    );
    for _ in 0..2 {
        let (plan, err) = loko_expect(&["plan", &spec], 0);
        assert!(plan.contains("Plan: "), "{plan}");
        assert!(err.contains("a run is in progress"), "{err}");
        let (dot, _) = loko_expect(&["graph", &spec], 0);
        assert!(
            dot.contains(
                "\"ignition/supernova-controller-0\" -> \"device/supernova-controller-0\""
            ),
            "{dot}"
        );
        let out = loko(&["status", &spec, "--sim"]);
        assert!(
            text(&out.stdout).contains("supernova-controller-0"),
            "{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }
    assert_eq!(header(), holder, "a reader opened the journal");
    assert!(
        state.join("sim/agent.sock").exists(),
        "the demo's agent is gone"
    );
    let (code, out, err) = finish(run);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("Cluster supernova is ready"), "{out}");
    let (runs, _) = loko_expect(&["journal", &spec, "--json"], 0);
    assert_eq!(runs.lines().count(), 1, "{runs}");
    // After the run, a plan reads the closed feed: nothing left to do.
    let (plan, err) = loko_expect(&["plan", &spec], 0);
    assert!(
        plan.contains("Plan: 0 to add, 0 to change, 0 to destroy."),
        "{plan}"
    );
    assert!(!err.contains("in progress"), "{err}");
}

/// Interrupted after its devices' creates were sent, a first run's journal says what happened
/// (interrupted steps, steps never started), and the plan and the resumed run adopt the
/// devices instead of announcing to create them.
#[test]
fn after_an_interrupt_the_journal_and_the_plan_tell_the_truth() {
    let (_dir, spec, state) = tutorial();
    interrupt(demo_with_a_device(&spec, &state), "-INT");
    let created = demo_devices(&state);
    assert!(!created.is_empty());

    let state_text = state.to_str().unwrap();
    let (steps, _) = loko_expect(&["journal", "--state-dir", state_text, "1"], 0);
    assert!(!steps.contains("reused"), "{steps}");
    assert!(steps.contains("never started"), "{steps}");
    let device = steps
        .lines()
        .find(|l| l.starts_with("device/supernova-controller-0"))
        .expect(&steps);
    assert!(device.contains("interrupted"), "{device}");

    let (plan, _) = loko_expect(&["plan", &spec], 0);
    for host in &created {
        assert!(plan.contains(&format!("~ adopt {host}")), "{plan}");
        assert!(!plan.contains(&format!("+ create {host}")), "{plan}");
    }
    let (resumed, _) = loko_expect(&["run", &spec, "--sim"], 0);
    assert!(
        resumed.contains(&format!("~ adopt {}", created[0])),
        "{resumed}"
    );
    assert!(resumed.contains("resuming run 1"), "{resumed}");
}

/// A reader that goes away ends the command quietly (like any Unix tool cut off by `head`),
/// never with a panic.
#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    let (_dir, state) = sample_journal();
    for args in [
        vec!["schema"],
        vec!["journal", "--state-dir", &state, "--json"],
        vec!["journal", "--state-dir", &state, "1"],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        // Closed before loko writes anything: its first write finds no reader.
        drop(reader);
        let out = Command::new(env!("CARGO_BIN_EXE_loko"))
            .args(&args)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        let err = text(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(out.status.code(), Some(141), "{args:?}: {err}");
    }
}

/// A stderr whose reader went away (`loko run bad.yaml 2>&1 | head`) costs loko what it said
/// there, never its exit status: no panic (exit 101), the status the failure has.
#[test]
fn a_closed_stderr_keeps_the_exit_status() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "cluster_name: [\n").unwrap();
    let missing = dir.path().join("missing.yaml");
    for args in [
        vec!["validate", bad.to_str().unwrap()],
        vec!["run", bad.to_str().unwrap(), "--sim"],
        vec!["plan", missing.to_str().unwrap()],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = Command::new(env!("CARGO_BIN_EXE_loko"))
            .args(&args)
            .stdout(std::process::Stdio::null())
            .stderr(writer)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}

/// An etcd journal that is not there is a setup problem, said at once with its cause: not a
/// resumable failure after seconds of retries.
#[test]
fn an_unreachable_etcd_journal_is_a_setup_problem() {
    let (_dir, spec, _) = tutorial();
    for command in [vec!["plan"], vec!["run", "--sim"], vec!["journal"]] {
        let started = std::time::Instant::now();
        let mut args = command.clone();
        args.extend([spec.as_str(), "--journal", "etcd://127.0.0.1:1/x"]);
        let (_, err) = loko_expect(&args, 2);
        assert!(err.contains("Connection refused"), "{command:?}: {err}");
        assert!(err.contains("hint: start etcd"), "{command:?}: {err}");
        // Generous for a busy machine; the retries it replaced took 9.5 s.
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{command:?}"
        );
    }
}

/// `--sim` to a command that calls no API is refused with what to do, not clap's advice to
/// pass it as a value; `--state-dir` is an option only of the commands that have a state.
#[test]
fn flag_mistakes_get_the_right_advice() {
    let (_dir, spec, _) = tutorial();
    for command in ["plan", "graph", "validate"] {
        let (_, err) = loko_expect(&[command, &spec, "--sim"], 2);
        assert!(err.contains("takes no --sim"), "{err}");
        assert!(err.contains("hint: drop --sim"), "{err}");
        assert!(!err.contains("-- --sim"), "{err}");
    }
    for args in [
        vec!["validate", spec.as_str(), "--state-dir", "/tmp"],
        vec!["schema", "--state-dir", "/tmp"],
        vec!["sim", "--state-dir", "/tmp"],
    ] {
        let (_, err) = loko_expect(&args, 2);
        assert!(err.contains("--state-dir"), "{err}");
    }
}

/// SIGTERM (what a service manager or `timeout` sends) ends a run as Ctrl-C does: interrupted,
/// resumable, with a message that says what it waits for; the run then resumes.
#[test]
fn sigterm_interrupts_a_run_like_ctrl_c() {
    let (_dir, spec, state) = tutorial();
    let (_, err) = interrupt(demo_with_a_device(&spec, &state), "-TERM");
    assert!(
        err.contains("terminated (SIGTERM): no new step starts; waiting for the"),
        "{err}"
    );
    assert!(err.contains("device/supernova-controller-0"), "{err}");
    let (runs, _) = loko_expect(&["journal", &spec, "--json"], 0);
    let run: serde_json::Value = serde_json::from_str(runs.lines().next().unwrap()).unwrap();
    assert_eq!(run["ended"]["outcome"]["status"], "interrupted", "{run}");
    let (resumed, _) = loko_expect(&["run", &spec, "--sim"], 0);
    assert!(resumed.contains("resuming run 1"), "{resumed}");
}

/// `loko journal SPEC --follow` watches a run that holds the journal's lock, to its end; then
/// `loko journal SPEC` reads the journal.
#[test]
fn journal_follows_a_run_in_progress() {
    let (_dir, spec, _state) = tutorial();
    let follower = loko_tests::Killed(
        Command::new(env!("CARGO_BIN_EXE_loko"))
            .args(["journal", &spec, "--follow", "--json"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // A command that only reads the journal neither holds it nor publishes: the follower
    // waits on for a run.
    std::thread::sleep(std::time::Duration::from_millis(300));
    loko_expect(&["plan", &spec], 0);
    let run = spawn_demo(&spec, &["--time-scale", "0.02"]);
    let (code, out, err) = finish(run);
    assert_eq!(code, Some(0), "{out}{err}");
    let (code, events, err) = finish(follower);
    assert_eq!(code, Some(0), "{err}");
    let events: Vec<serde_json::Value> = events
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert!(events[0]["event"]["run_started"].is_object(), "{events:?}");
    assert!(
        events.last().unwrap()["event"]["run_ended"].is_object(),
        "{events:?}"
    );
    assert!(
        events.iter().any(|e| e["event"]["step_intent"].is_object()),
        "{events:?}"
    );
    let (runs, _) = loko_expect(&["journal", &spec], 0);
    assert!(runs.contains("succeeded"), "{runs}");
}

/// On a terminal, the progress line shows the counts of the phases under way and the steps in
/// flight, and a warning (here: failed device listings) is printed above it, not onto it.
#[test]
fn the_terminal_shows_every_step_in_flight_and_warnings_leave_no_stale_line() {
    let (dir, spec, _state) = tutorial();
    let faults = dir.path().join("faults.yaml");
    std::fs::write(
        &faults,
        "seed: 3\noperations:\n  packet.devices.list:\n    server_error_rate: 0.5\n",
    )
    .unwrap();
    // `script` gives loko a terminal and records what it drew.
    let command = format!(
        "{} run {spec} --sim --time-scale 0.05 --sim-faults {}",
        env!("CARGO_BIN_EXE_loko"),
        faults.display()
    );
    let out = Command::new("script")
        .args(["-qefc", &command, "/dev/null"])
        .env("COLUMNS", "200")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let drawn = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{drawn}");
    assert!(drawn.contains("devices 0/3 (3 running)"), "{drawn}");
    // Every step in flight is named: the controller's device beside at least one other step
    // (the workers' devices provision at the same time; which others share a line depends on
    // how fast the assets finish, so only the count is asserted).
    let named_together = drawn.split(" · running: ").skip(1).any(|rest| {
        let names: Vec<&str> = rest
            .split(['\r', '\n', '\x1b'])
            .next()
            .unwrap_or_default()
            .split(", ")
            .collect();
        names.len() >= 2 && names.contains(&"device/supernova-controller-0")
    });
    assert!(named_together, "{drawn}");
    let warnings: Vec<usize> = drawn.match_indices(" WARN").map(|(at, _)| at).collect();
    assert!(!warnings.is_empty(), "no warning was printed: {drawn}");
    for at in warnings {
        // What was drawn since the terminal's line was last cleared: nothing of the progress
        // line may be left in front of the warning.
        let before = &drawn[..at];
        let since_clear = &before[before.rfind("\x1b[2K").unwrap_or(0)..];
        assert!(
            !since_clear.contains("steps "),
            "a stale progress line before a warning: {since_clear:?}"
        );
    }
}

/// An apiserver that does not answer yet while the cluster boots is progress ("waiting for"),
/// not an error line.
#[test]
fn a_booting_apiserver_is_awaited_not_reported_as_an_error() {
    let (dir, spec, _state) = tutorial();
    let faults = dir.path().join("faults.yaml");
    std::fs::write(&faults, "nodes:\n  apiserver_start_delay_secs: 200\n").unwrap();
    let (out, err) = loko_expect(
        &[
            "run",
            &spec,
            "--sim",
            "--sim-faults",
            faults.to_str().unwrap(),
        ],
        0,
    );
    assert!(
        out.contains("bootstrap: waiting for the static control plane's apiserver at https://supernova.packet.example.com:6443"),
        "{out}"
    );
    assert!(!out.contains("does not answer"), "{out}");
    assert!(!err.contains("does not answer"), "{err}");
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

/// The journal this version wrote, kept as a fixture (see `steps/tests/it/journal_fixture.rs`,
/// which opens and resumes it): every later loko shows it and plans from it.
#[test]
fn the_journal_fixture_of_an_earlier_version_is_shown_and_planned_from() {
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/journal-v1");
    let state = tempfile::tempdir().unwrap();
    loko_tests::copy_dir(&fixture.join("state"), state.path());
    let state_dir = state.path().to_str().unwrap();
    let (runs, _) = loko_expect(&["journal", "--state-dir", state_dir], 0);
    assert!(runs.contains("interrupted (resumable)"), "{runs}");
    let (steps, _) = loko_expect(&["journal", "--state-dir", state_dir, "1"], 0);
    let device = steps
        .lines()
        .find(|l| l.starts_with("device/supernova-controller-0"))
        .expect(&steps);
    assert!(
        device.contains("succeeded") && device.contains("127.0.0.10"),
        "{device}"
    );
    let spec = fixture.join("cluster.yaml");
    let (plan, _) = loko_expect(
        &["plan", spec.to_str().unwrap(), "--state-dir", state_dir],
        0,
    );
    assert!(plan.contains("Devices to create: 0."), "{plan}");
}

// ---- the journal in etcd ----

fn tutorial_spec() -> String {
    format!("{}/examples/tutorial.yaml", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn a_journal_url_that_is_not_etcd_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().to_str().unwrap();
    let out = loko(&[
        "plan",
        &tutorial_spec(),
        "--state-dir",
        state,
        "--journal",
        "etcd://h/x",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("--journal: \"etcd://h/x\": endpoint \"h\" is not HOST:PORT"),
        "{err}"
    );
    assert!(err.contains("hint: write it as etcd://HOST:PORT"), "{err}");
}

/// A journal `prefix` in an etcd, held by this test with one run begun, and the runtime that
/// appends to it.
struct HeldEtcdJournal {
    held: Journal,
    run: journal::RunId,
    rt: tokio::runtime::Runtime,
    url: String,
}

impl HeldEtcdJournal {
    fn begin(etcd: &loko_tests::Etcd, prefix: &str) -> HeldEtcdJournal {
        let url = etcd.url(prefix);
        let rt = tokio::runtime::Runtime::new().unwrap();
        let config = journal::store::EtcdConfig::parse(&url).unwrap();
        let held = Journal::open_at(&journal::Location::Etcd(config)).unwrap();
        let run = rt
            .block_on(held.begin_run(
                RunKind::Apply,
                Digest::of(b"spec"),
                serde_json::json!({}),
                vec![],
            ))
            .unwrap();
        HeldEtcdJournal { held, run, rt, url }
    }

    fn append(&self, event: Event) -> Result<journal::Seq, journal::JournalError> {
        self.rt.block_on(self.held.append(self.run, event))
    }
}

/// While a loko holds an etcd journal: others read it (no lock needed), `unlock` names the
/// holder and, with --force, revokes its lease, after which the holder's appends are refused.
#[test]
fn an_etcd_journal_is_read_while_held_and_unlocked_by_force() {
    let etcd = loko_tests::Etcd::start(1);
    let journal = HeldEtcdJournal::begin(&etcd, "supernova");
    let url = journal.url.clone();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().to_str().unwrap();

    let (listed, _) = loko_expect(&["journal", "--state-dir", state, "--journal", &url], 0);
    assert!(listed.contains("1     apply"), "{listed}");

    let spec = tutorial_spec();
    let unlock = |force: bool| {
        let mut args = vec![
            "journal",
            "unlock",
            &spec,
            "--state-dir",
            state,
            "--journal",
            &url,
        ];
        if force {
            args.push("--force");
        }
        loko(&args)
    };
    let out = unlock(false);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(
        shown.contains(&format!("is locked by pid {}", std::process::id())),
        "{shown}"
    );
    let err = text(&out.stderr);
    assert!(err.contains("pass --force"), "{err}");
    let event = Event::StepSkipped {
        step: StepId::new("a").unwrap(),
        because: StepId::new("b").unwrap(),
    };
    journal.append(event.clone()).expect("still the holder");

    let out = unlock(true);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let revoked = text(&out.stdout);
    assert!(revoked.contains("revoked lease"), "{revoked}");
    let err = journal.append(event).unwrap_err();
    assert!(matches!(err, journal::JournalError::Fenced { .. }), "{err}");
    drop(journal);
    let unlocked = text(&unlock(false).stdout);
    assert!(unlocked.contains("is not locked"), "{unlocked}");
}

#[test]
fn push_copies_a_local_journal_into_etcd() {
    let etcd = loko_tests::Etcd::start(1);
    let url = etcd.url("pushed");
    let (_dir, state) = sample_journal();
    let (local, _) = loko_expect(&["journal", "--state-dir", &state, "1", "--json"], 0);
    let spec = tutorial_spec();
    let push = [
        "journal",
        "push",
        &spec,
        "--state-dir",
        &state,
        "--to",
        &url,
    ];
    let (pushed, _) = loko_expect(&push, 0);
    assert!(pushed.contains("copied 14 records"), "{pushed}");
    let shared = ["journal", "--state-dir", &state, "1", "--json"];
    let (shared, _) = loko_expect(&[&shared[..], &["--journal", &url]].concat(), 0);
    assert_eq!(shared, local);
    // Only into an empty journal.
    let (_, refused) = loko_expect(&push, 1);
    assert!(refused.contains("already holds records"), "{refused}");
}

/// `--follow` on an etcd journal shows what exists, then each event as another process
/// journals it (an etcd watch), without taking the lock.
#[test]
fn follow_watches_an_etcd_journal_written_elsewhere() {
    use std::io::BufRead as _;
    let etcd = loko_tests::Etcd::start(1);
    let journal = HeldEtcdJournal::begin(&etcd, "followed");
    let url = &journal.url.clone();
    let dir = tempfile::tempdir().unwrap();
    let mut follower = Command::new(env!("CARGO_BIN_EXE_loko"))
        .args(["journal", "--state-dir", dir.path().to_str().unwrap()])
        .args(["--journal", url, "--follow", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = follower.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let next = || {
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("the follower printed nothing");
        serde_json::from_str::<serde_json::Value>(&line).unwrap()
    };
    assert!(next()["event"]["run_started"].is_object());
    for name in ["a", "b"] {
        let event = Event::StepSkipped {
            step: StepId::new(name).unwrap(),
            because: StepId::new("pki").unwrap(),
        };
        journal.append(event).unwrap();
        let shown = next();
        assert_eq!(shown["event"]["step_skipped"]["step"], name, "{shown}");
        assert_eq!(shown["run"], 1);
    }
    let _ = follower.kill();
    let _ = follower.wait();
    // Once no run is in progress, a follower waits for the next run, saying so; with
    // `--since 1` it shows run 1 first.
    drop(journal);
    for (since, shows_run_1) in [(None, false), (Some("1"), true)] {
        let mut follow = Command::new(env!("CARGO_BIN_EXE_loko"));
        follow
            .args(["journal", "--state-dir", dir.path().to_str().unwrap()])
            .args(["--journal", url, "--follow", "--json"]);
        if let Some(since) = since {
            follow.args(["--since", since]);
        }
        let mut child = follow
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_secs(2));
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        let (shown, said) = (text(&out.stdout), text(&out.stderr));
        assert_eq!(!shown.is_empty(), shows_run_1, "{since:?}: {shown}{said}");
        if since.is_none() {
            assert!(said.contains("no run in progress"), "{said}");
        }
    }
}
