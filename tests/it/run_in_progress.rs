//! A run in progress, as a user meets it: reads beside it (`plan`, `graph`, `status`, `journal
//! --follow`), an interrupt (Ctrl-C, SIGTERM) and what the journal and the plan say after it,
//! and what a terminal shows while it goes.

use std::process::Command;

use crate::binary::{finish, loko, loko_expect, spawn, text, tutorial};

/// A `loko run SPEC --sim` in the background, killed when dropped.
fn spawn_demo(spec: &str, extra: &[&str]) -> loko_tests::Killed {
    spawn(&[&["run", spec, "--sim"], extra].concat())
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
    let follower = spawn(&["journal", &spec, "--follow", "--json"]);
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
