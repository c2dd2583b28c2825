//! A run that starts from the world: steps whose recorded results the world contradicts run
//! again (and what reads them), and steps that check the world now run in every run.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use engine::{
    Actions, CancellationToken, Dag, Drift, Engine, Outcome, Resealed, RunReport, RunRequest,
    StepContext,
};
use journal::{Digest, Event, Journal, Outputs, RunId, RunKind, StepId};

use crate::toys::{dag, toy};

fn id(s: &str) -> StepId {
    StepId::new(s).unwrap()
}

fn request() -> RunRequest {
    RunRequest {
        kind: RunKind::Apply,
        spec_digest: Digest::of(b"spec"),
        spec: serde_json::json!({}),
    }
}

/// `device` (a new id at every call), `dns` reading it, `other` independent, and `ready`
/// after both, checking now when `ready_checks_now`. Returns the DAG and the calls per step.
fn cluster(ready_checks_now: bool) -> ((engine::Dag, engine::Actions), Arc<[AtomicUsize; 4]>) {
    let calls: Arc<[AtomicUsize; 4]> = Arc::new(Default::default());
    let counted = |i: usize| {
        let calls = Arc::clone(&calls);
        move |_ctx: StepContext| {
            let n = calls[i].fetch_add(1, Ordering::SeqCst);
            async move { Ok(Outputs::new().with("id", format!("d-{n}"))?) }
        }
    };
    let ready = toy(id("ready"), Digest::of(b"ready"), counted(3)).after([id("dns"), id("other")]);
    let ready = if ready_checks_now {
        ready.checks_now()
    } else {
        ready
    };
    let plan = dag(vec![
        toy(id("device"), Digest::of(b"device"), counted(0)),
        toy(id("dns"), Digest::of(b"dns"), counted(1)).after([id("device")]),
        toy(id("other"), Digest::of(b"other"), counted(2)),
        ready,
    ])
    .unwrap();
    (plan, calls)
}

/// One run of `dag` by `engine`, which must end (in success or not) without an engine error.
async fn run(engine: Engine, (dag, actions): &(Dag, Actions)) -> RunReport {
    engine
        .run(dag, actions, request(), CancellationToken::new())
        .await
        .unwrap()
}

/// The events the journal holds for `run`, in order.
fn events(journal: &Journal, run: RunId) -> Vec<Event> {
    journal
        .records(run)
        .unwrap()
        .into_iter()
        .map(|(_, r)| r.event)
        .collect()
}

fn counts(calls: &[AtomicUsize; 4]) -> [usize; 4] {
    std::array::from_fn(|i| calls[i].load(Ordering::SeqCst))
}

#[tokio::test]
async fn a_contradicted_result_runs_again_with_what_reads_it_and_the_drift_is_journaled() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Arc::new(Journal::open(dir.path()).unwrap());
    let (dag, calls) = cluster(false);
    assert_eq!(
        run(Engine::new(Arc::clone(&journal)), &dag).await.outcome,
        Outcome::Succeeded
    );
    assert_eq!(
        run(Engine::new(Arc::clone(&journal)), &dag).await.outcome,
        Outcome::UpToDate
    );

    // The device is gone: it runs again, and so does what read its outputs; `other` is reused.
    let drift = Drift {
        steps: vec![id("device"), id("never-recorded")],
        found: vec!["the device is gone".into()],
    };
    let report = run(Engine::new(Arc::clone(&journal)).drift(drift), &dag).await;
    assert_eq!(report.outcome, Outcome::Succeeded);
    assert_eq!(report.executed, vec![id("device"), id("dns"), id("ready")]);
    assert_eq!(counts(&calls), [2, 2, 1, 2]);
    let run_id = report.run.unwrap();
    let drifted: Vec<Event> = events(&journal, run_id)
        .into_iter()
        .filter(|e| matches!(e, Event::DriftDetected { .. }))
        .collect();
    assert_eq!(
        drifted,
        vec![Event::DriftDetected {
            steps: vec![id("device")],
            found: vec!["the device is gone".into()],
        }],
        "only a recorded result is forgotten, once"
    );

    // Drift of nothing the ledger holds changes nothing.
    let drift = Drift {
        steps: vec![id("never-recorded")],
        found: vec!["x".into()],
    };
    assert_eq!(
        run(Engine::new(Arc::clone(&journal)).drift(drift), &dag)
            .await
            .outcome,
        Outcome::UpToDate
    );
}

#[tokio::test]
async fn a_step_that_checks_now_runs_in_every_run() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Arc::new(Journal::open(dir.path()).unwrap());
    let (dag, calls) = cluster(true);
    for expected in [Outcome::Succeeded, Outcome::UpToDate] {
        let report = run(Engine::new(Arc::clone(&journal)), &dag).await;
        assert_eq!(report.outcome, expected);
    }
    // The second run reused everything but the check.
    assert_eq!(counts(&calls), [1, 1, 1, 2]);
}

#[tokio::test]
async fn a_reseal_is_journaled_in_a_run_of_its_own_when_nothing_else_changed() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Arc::new(Journal::open(dir.path()).unwrap());
    let (dag, calls) = cluster(false);
    run(Engine::new(Arc::clone(&journal)), &dag).await;
    let resealed = Resealed {
        from: vec!["0".repeat(64)],
        to: "1".repeat(64),
        files: 2,
        added: vec!["age1example".into()],
        removed: Vec::new(),
    };
    // Every step is up to date, yet the run starts: the re-sealed files go with its records.
    let report = run(
        Engine::new(Arc::clone(&journal)).resealed(Some(resealed)),
        &dag,
    )
    .await;
    assert_eq!(report.outcome, Outcome::UpToDate);
    assert_eq!(counts(&calls), [1, 1, 1, 1], "no step ran again");
    let events = events(&journal, report.run.expect("a run was journaled"));
    assert!(matches!(events[0], Event::RunStarted { .. }));
    assert_eq!(
        events[1],
        Event::AssetsResealed {
            from: vec!["0".repeat(64)],
            to: "1".repeat(64),
            files: 2,
            added: vec!["age1example".into()],
            removed: Vec::new(),
        }
    );
    assert!(matches!(events.last(), Some(Event::RunEnded { .. })));
}
