//! The `loko` binary's command line: usage mistakes and their advice, help, exit codes, `validate`
//! and `schema`, `loko sim`, and a reader or terminal that goes away.

use std::process::Command;

use crate::binary::{loko, loko_expect, text, tutorial};
use crate::journal_cmd::sample_journal;

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

/// A rack's spec is checked, and planned in a rack's words: its machines are booted, not
/// created.
#[test]
fn a_rack_spec_is_valid_and_planned_as_machines_to_boot() {
    let path = format!("{}/examples/rack.yaml", env!("CARGO_MANIFEST_DIR"));
    let out = loko(&["validate", &path]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout)
            .contains("valid: cluster rack, 3 controller(s), 2 worker(s) in 1 pool(s)"),
        "{}",
        text(&out.stdout)
    );
    let out = loko(&["plan", &path, "--no-refresh"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(stdout.contains("  + boot rack-a1\n"), "{stdout}");
    assert!(stdout.contains("Machines to boot: 5."), "{stdout}");
    assert!(!stdout.contains("create"), "{stdout}");
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
