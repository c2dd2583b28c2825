//! The journal's own tests: opening, folding and snapshots of `journal.rs`.

use super::*;
use crate::event::RunOutcome;
use crate::secrets::Outputs;

fn step(name: &str) -> StepId {
    StepId::new(name).unwrap()
}

/// A journal with several runs and every kind of event, crossing several snapshots.
async fn busy_journal(dir: &Path) -> ClusterState {
    let journal = Journal::open(dir).unwrap();
    let spec = serde_json::json!({
        "name": "supernova", "count": 3, "ratio": -0.5, "neg": -7, "on": true,
        "none": null, "list": [1, "two", {"three": [3]}],
    });
    for r in 0..3u32 {
        let plan = vec![step("pki"), step("device/a")];
        let run = journal
            .begin_run(
                RunKind::Apply,
                Digest::of(b"spec"),
                spec.clone(),
                plan.clone(),
            )
            .await
            .unwrap();
        if r == 1 {
            journal.resume_run(run, plan).await.unwrap();
        }
        for i in 0..12u32 {
            let s = step(&format!("device/node-{i}"));
            let attempt = r * 2 + 1;
            let started = Event::StepStarted {
                step: s.clone(),
                attempt,
                inputs_digest: Digest::of(&i.to_be_bytes()),
            };
            journal.append(run, started).await.unwrap();
            let detail = Outputs::new()
                .with("hostname", format!("node-{i}"))
                .unwrap();
            let intent = Event::StepIntent {
                step: s.clone(),
                attempt,
                effect: "create device".into(),
                detail,
            };
            journal.append(run, intent).await.unwrap();
            let end = if i % 5 == 4 {
                Event::StepFailed {
                    step: s.clone(),
                    attempt,
                    error: "503 from the API".into(),
                    retryable: true,
                    duration_ms: 9,
                }
            } else {
                let outputs = Outputs::new()
                    .with("device_id", format!("id-{i}"))
                    .and_then(|o| o.with("ports", vec![22, 6443]))
                    .and_then(|o| o.with("x", serde_json::json!({"f": 1.5, "n": -1})))
                    .unwrap();
                Event::StepSucceeded {
                    step: s.clone(),
                    attempt,
                    inputs_digest: Digest::of(&i.to_be_bytes()),
                    outputs,
                    duration_ms: 3,
                    invalidates: if i == 7 {
                        vec![step("device/node-1")]
                    } else {
                        vec![]
                    },
                }
            };
            journal.append(run, end).await.unwrap();
        }
        let skipped = Event::StepSkipped {
            step: step("bootkube"),
            because: step("device/node-4"),
        };
        journal.append(run, skipped).await.unwrap();
        let outcome = if r < 2 {
            RunOutcome::Failed {
                failed: vec![step("device/node-4")],
                skipped: vec![step("bootkube")],
            }
        } else {
            RunOutcome::Interrupted
        };
        journal
            .append(run, Event::RunEnded { outcome })
            .await
            .unwrap();
    }
    // A few records after the last snapshot, to be folded on top of it.
    let last = journal.state().last_run().unwrap().id;
    journal
        .append(
            last,
            Event::StepSkipped {
                step: step("ready"),
                because: step("pki"),
            },
        )
        .await
        .unwrap();
    journal.state()
}

/// Runs that repeat the spec of the run before share one copy of its text, in the fold of
/// the records as in the one a snapshot gives.
#[tokio::test]
async fn runs_of_an_unchanged_spec_share_its_text() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    let spec = |workers: u32| serde_json::json!({"name": "supernova", "workers": workers});
    for workers in [2, 2, 3] {
        let run = journal
            .begin_run(RunKind::Apply, Digest::of(b"spec"), spec(workers), vec![])
            .await
            .unwrap();
        journal
            .append(
                run,
                Event::RunEnded {
                    outcome: RunOutcome::Succeeded,
                },
            )
            .await
            .unwrap();
    }
    drop(journal);
    let state = Journal::open(dir.path()).unwrap().state();
    let runs: Vec<_> = state.runs.values().collect();
    assert!(runs[0].spec.is_shared_with(&runs[1].spec));
    assert!(!runs[1].spec.is_shared_with(&runs[2].spec));
    assert_eq!(runs[2].spec.value().unwrap(), spec(3));
}

#[tokio::test]
async fn a_snapshot_and_the_records_after_it_fold_to_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let before = busy_journal(dir.path()).await;
    let journal = Journal::open(dir.path()).unwrap();
    let (_, snap) = usable_snapshot(journal.store.as_ref())
        .unwrap()
        .expect("a snapshot was written");
    assert!(snap.cluster.runs.values().map(|r| r.events).sum::<u64>() > snapshot::SNAPSHOT_EVERY);
    let tail = journal
        .store
        .scan_after(Some(snapshot::last_key(&snap)))
        .count() as u64;
    assert!(
        tail > 0,
        "the test must fold records on top of the snapshot"
    );
    assert_eq!(journal.state(), before);
    assert_eq!(journal.folded().since_snapshot, tail);
    // The same state as folding every record without the snapshot.
    let folded = fold_records(dir.path(), Folded::empty(), journal.store.scan_after(None))
        .unwrap()
        .0;
    assert_eq!(folded.cluster, before);
    assert_eq!(folded.next_seq, journal.folded().next_seq);
}

/// A snapshot with its chunks written into place is byte for byte a `HeaderV3` holding
/// them: the format did not change, so each loko reads the other's snapshots.
#[tokio::test]
async fn snapshots_written_in_place_are_the_plain_format() {
    let dir = tempfile::tempdir().unwrap();
    busy_journal(dir.path()).await;
    let journal = Journal::open(dir.path()).unwrap();
    let stored = journal.store.snapshot().unwrap().unwrap().to_vec();
    let snap = snapshot::decode(&stored).unwrap();
    assert!(snap.cluster.runs.values().any(|r| !r.steps.is_empty()));
    assert!(!snap.cluster.ledger.is_empty() && !snap.cluster.attempts.is_empty());
    let in_place = snapshot::encode(snap.last, &snap.next_seq, &snap.cluster).unwrap();
    assert_eq!(in_place, stored);
    assert_eq!(
        in_place,
        snapshot::encode_as_header(snap.last, &snap.next_seq, &snap.cluster).unwrap()
    );
}

#[tokio::test]
async fn a_damaged_or_unusable_snapshot_is_ignored_and_every_record_folded() {
    let dir = tempfile::tempdir().unwrap();
    let before = busy_journal(dir.path()).await;
    let stored = {
        let journal = Journal::open(dir.path()).unwrap();
        journal.store.snapshot().unwrap().unwrap().to_vec()
    };
    let mut damaged = stored.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x40;
    // Names a record the store does not hold, as if its records had not been flushed.
    let ahead = {
        let snap = snapshot::decode(&stored).unwrap();
        let mut next_seq = snap.next_seq.clone();
        let run = snap.last.0;
        next_seq.insert(run, 1_000_000);
        snapshot::encode((run, Seq(999_999)), &next_seq, &snap.cluster).unwrap()
    };
    for bad in [damaged, ahead, b"\x01\x02".to_vec()] {
        {
            let journal = Journal::open(dir.path()).unwrap();
            journal.store.put_snapshot(bad).unwrap();
            journal.store.flush().unwrap();
        }
        let journal = Journal::open(dir.path()).unwrap();
        assert!(usable_snapshot(journal.store.as_ref()).unwrap().is_none());
        assert_eq!(journal.state(), before);
    }
}

#[tokio::test]
async fn only_the_newest_run_takes_events() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    let begin = || journal.begin_run(RunKind::Apply, Digest::of(b"s"), Value::Null, vec![]);
    let first = begin().await.unwrap();
    let second = begin().await.unwrap();
    let event = Event::StepSkipped {
        step: step("a"),
        because: step("b"),
    };
    let err = journal.append(first, event.clone()).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("run 2 is newer; only the newest run takes events"),
        "{err}"
    );
    journal.append(second, event).await.unwrap();
}
