//! `loko journal SPEC --follow`: the run in progress (or the next one), not the history; said
//! when no run is in progress; `--since RUN` for the runs before.

use std::time::Duration;

use crate::binary::{finish_within, loko, spawn};

/// The runs of the followed JSON events, in order of appearance, without repeats.
fn runs_of(events: &str) -> Vec<u64> {
    let mut runs = Vec::new();
    for line in events.lines() {
        let event: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        let run = event["run"].as_u64().unwrap();
        if runs.last() != Some(&run) {
            runs.push(run);
        }
    }
    runs
}

#[test]
fn follow_shows_the_run_in_progress_and_since_the_runs_before() {
    let (_dir, spec) = loko_tests::example_copy("tutorial.yaml");
    let spec = spec.to_str().unwrap();
    let run = loko(&["run", spec, "--sim", "--time-scale", "0.02"]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );

    // No run in progress: said, then the next run (the destroy, run 2) and nothing of run 1.
    let follower = spawn(&["journal", spec, "--follow", "--json"]);
    std::thread::sleep(Duration::from_millis(500));
    let destroy = loko(&["destroy", spec, "--sim", "--yes", "--time-scale", "0.02"]);
    assert!(
        destroy.status.success(),
        "{}",
        String::from_utf8_lossy(&destroy.stderr)
    );
    let (code, events, said) = finish_within(follower, Duration::from_secs(60));
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("no run in progress"), "{said}");
    assert_eq!(runs_of(&events), [2], "{events}");

    // --since 1 while nothing runs: both runs from the journal, then it waits for the next.
    let follower = spawn(&["journal", spec, "--follow", "--json", "--since", "1"]);
    let (_, events, said) = finish_within(follower, Duration::from_secs(3));
    assert_eq!(runs_of(&events), [1, 2], "{said}");
    assert!(said.contains("no run in progress"), "{said}");
}
