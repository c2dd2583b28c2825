//! Reading a journal without holding it (`journal::read_state`): while another opener holds
//! it, after it closed it, and where there is none.

use journal::testing::{started, succeeded};
use journal::{Digest, Journal, Outputs, RunKind, StepId};

fn id(s: &str) -> StepId {
    StepId::new(s).unwrap()
}

async fn run_with_one_step(j: &Journal, step: &str) {
    let run = j
        .begin_run(
            RunKind::Apply,
            Digest::of(b"spec"),
            serde_json::json!({"cluster_name": "supernova"}),
            vec![id(step)],
        )
        .await
        .unwrap();
    j.append(run, started(&id(step), 1)).await.unwrap();
    let outputs = Outputs::new().with("ip", "10.0.0.1").unwrap();
    j.append(run, succeeded(&id(step), 1, outputs, 1))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_reader_sees_the_holders_durable_state_without_the_lock_and_the_whole_state_after() {
    let dir = tempfile::tempdir().unwrap();
    // A journal with history, closed, then opened again by a holder that appends more: the
    // reader needs both what the holder opened with and what it did since.
    {
        let j = Journal::open(dir.path()).unwrap();
        run_with_one_step(&j, "first").await;
    }
    let holder = Journal::open(dir.path()).unwrap();
    run_with_one_step(&holder, "second").await;

    // The lock is held (by this process, and flock refuses a second lock even here), so only
    // a reader that needs no lock gets through.
    assert!(matches!(
        Journal::open(dir.path()),
        Err(journal::JournalError::Locked { .. })
    ));
    let view = journal::read_state(dir.path()).unwrap();
    assert_eq!(view.state, holder.state());
    assert!(view.live_holder.is_some());
    assert_eq!(view.state.ledger.len(), 2);

    let state = holder.state();
    drop(holder);
    let view = journal::read_state(dir.path()).unwrap();
    assert_eq!(view.state, state);
    assert_eq!(view.live_holder, None);
}

#[tokio::test]
async fn a_feed_without_a_base_falls_back_to_opening_the_free_journal() {
    let dir = tempfile::tempdir().unwrap();
    let state = {
        let j = Journal::open(dir.path()).unwrap();
        run_with_one_step(&j, "only").await;
        j.state()
    };
    // As an older loko leaves it: a feed whose header names no base.
    std::fs::write(
        dir.path().join(journal::FEED_FILE),
        "{\"feed\":1,\"pid\":1,\"by\":\"pid 1 on old\"}\n{\"closed\":true}\n",
    )
    .unwrap();
    let view = journal::read_state(dir.path()).unwrap();
    assert_eq!(view.state, state);
}

#[test]
fn no_journal_reads_as_empty_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("state").join("journal");
    let view = journal::read_state(&missing).unwrap();
    assert!(view.state.runs.is_empty());
    assert!(!dir.path().join("state").exists());
}
