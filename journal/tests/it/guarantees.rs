//! The journal's guarantees, tested on real sled files.

use std::sync::Arc;

use journal::testing::{started, succeeded};
use journal::{
    AttemptEnd, Digest, Event, Journal, JournalError, Outputs, RunId, RunKind, RunOutcome, Seq,
    StepId,
};

fn id(s: &str) -> StepId {
    StepId::new(s).unwrap()
}

async fn begin(j: &Journal) -> RunId {
    j.begin_run(
        RunKind::Apply,
        Digest::of(b"spec"),
        serde_json::json!({"cluster_name": "supernova"}),
        vec![id("a"), id("b")],
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn appends_survive_reopen_and_fold_to_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let before = {
        let j = Journal::open(dir.path()).unwrap();
        let run = begin(&j).await;
        assert_eq!(run, RunId(1));
        j.append(run, started(&id("a"), 1)).await.unwrap();
        j.append(
            run,
            Event::StepIntent {
                step: id("a"),
                attempt: 1,
                effect: "create device".into(),
                detail: Outputs::new(),
            },
        )
        .await
        .unwrap();
        let out = Outputs::new().with("device_id", "d-1").unwrap();
        j.append(run, succeeded(&id("a"), 1, out, 3)).await.unwrap();
        j.append(run, started(&id("b"), 1)).await.unwrap();
        let seq = j
            .append(
                run,
                Event::StepFailed {
                    step: id("b"),
                    attempt: 1,
                    error: "HTTP 503".into(),
                    retryable: true,
                    duration_ms: 1,
                },
            )
            .await
            .unwrap();
        assert_eq!(seq, Seq(6));
        j.state()
    };
    let j = Journal::open(dir.path()).unwrap();
    assert_eq!(j.state(), before);
    let state = j.state();
    let run = state.last_run().unwrap();
    assert!(run.ended.is_none());
    assert!(!run.succeeded());
    assert_eq!(
        state.ledger[&id("a")]
            .outputs
            .get::<String>("device_id")
            .unwrap(),
        "d-1"
    );
    assert!(!state.ledger.contains_key(&id("b")));
    let b = &run.steps[&id("b")].attempts[0];
    assert!(
        matches!(&b.end, AttemptEnd::Failed { retryable: true, error, .. } if error == "HTTP 503")
    );
    assert_eq!(run.steps[&id("a")].attempts[0].intents.len(), 1);
    assert_eq!(j.records(RunId(1)).unwrap().len(), 6);

    // The next run gets the next id, and the ledger carries over.
    let run2 = begin(&j).await;
    assert_eq!(run2, RunId(2));
    j.append(
        run2,
        Event::RunEnded {
            outcome: RunOutcome::Succeeded,
        },
    )
    .await
    .unwrap();
    assert!(j.state().last_run().unwrap().succeeded());
    assert!(j.state().ledger.contains_key(&id("a")));
}

#[tokio::test]
async fn a_second_opener_is_refused_with_the_path_and_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let first = Journal::open(dir.path()).unwrap();
    let err = Journal::open(dir.path())
        .err()
        .expect("second open must fail");
    let text = err.to_string();
    assert!(matches!(err, JournalError::Locked { .. }), "{text}");
    assert!(text.contains(&dir.path().display().to_string()), "{text}");
    assert!(
        text.contains(&format!("pid {}", std::process::id())),
        "{text}"
    );
    drop(first);
    Journal::open(dir.path()).expect("lock released on drop");
}

#[tokio::test]
async fn a_damaged_record_fails_open_naming_run_and_seq() {
    let dir = tempfile::tempdir().unwrap();
    {
        let j = Journal::open(dir.path()).unwrap();
        let run = begin(&j).await;
        j.append(run, started(&id("a"), 1)).await.unwrap();
        j.append(run, started(&id("b"), 1)).await.unwrap();
        j.damage_record_for_tests(run, Seq(2), b"\x00\x01\x02\x03{\"v\":1}")
            .unwrap();
    }
    let err = Journal::open(dir.path()).err().expect("open must fail");
    let text = err.to_string();
    assert!(
        matches!(
            err,
            JournalError::Corrupt {
                run: RunId(1),
                seq: Seq(2),
                ..
            }
        ),
        "{text}"
    );
    assert!(text.contains("record 2 of run 1"), "{text}");
    assert!(text.contains("checksum"), "{text}");
}

#[tokio::test]
async fn an_unknown_format_version_is_refused_not_skipped() {
    let dir = tempfile::tempdir().unwrap();
    {
        let j = Journal::open(dir.path()).unwrap();
        let run = begin(&j).await;
        j.append(run, started(&id("a"), 1)).await.unwrap();
        let json = br#"{"v":9,"at_ms":1,"event":{"step_started":{}}}"#;
        let mut bytes = crc32fast_hash(json).to_le_bytes().to_vec();
        bytes.extend_from_slice(json);
        j.damage_record_for_tests(run, Seq(2), &bytes).unwrap();
    }
    let text = Journal::open(dir.path()).err().unwrap().to_string();
    assert!(text.contains("record 2 of run 1"), "{text}");
    assert!(text.contains("format version 9"), "{text}");
}

// The journal's checksum is CRC-32 (IEEE); computed here independently of the crate.
fn crc32fast_hash(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[tokio::test]
async fn events_that_contradict_the_journal_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(dir.path()).unwrap();
    let err = j.append(RunId(7), started(&id("a"), 1)).await.unwrap_err();
    assert!(
        err.to_string().contains("run 7, which never started"),
        "{err}"
    );
    let run = begin(&j).await;
    let err = j
        .append(run, succeeded(&id("never-started"), 1, Outputs::new(), 3))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("never-started"), "{err}");
    // Nothing of the refused events reached the store.
    drop(j);
    let j = Journal::open(dir.path()).unwrap();
    assert_eq!(j.records(run).unwrap().len(), 1);
}

#[tokio::test]
async fn invalidated_results_leave_the_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(dir.path()).unwrap();
    let run = begin(&j).await;
    j.append(run, started(&id("device/w-2"), 1)).await.unwrap();
    j.append(run, succeeded(&id("device/w-2"), 1, Outputs::new(), 3))
        .await
        .unwrap();
    j.append(run, started(&id("delete/w-2"), 1)).await.unwrap();
    j.append(
        run,
        Event::StepSucceeded {
            step: id("delete/w-2"),
            attempt: 1,
            inputs_digest: Digest::of(b"x"),
            outputs: Outputs::new(),
            duration_ms: 1,
            invalidates: vec![id("device/w-2")],
        },
    )
    .await
    .unwrap();
    let state = j.state();
    assert!(!state.ledger.contains_key(&id("device/w-2")));
    assert!(state.ledger.contains_key(&id("delete/w-2")));
    drop(j);
    assert_eq!(Journal::open(dir.path()).unwrap().state(), state);
}

#[tokio::test]
async fn drift_forgets_the_results_the_cloud_contradicts() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(dir.path()).unwrap();
    let run = begin(&j).await;
    for step in ["device/w-1", "device/w-2"] {
        j.append(run, started(&id(step), 1)).await.unwrap();
        j.append(run, succeeded(&id(step), 1, Outputs::new(), 3))
            .await
            .unwrap();
    }
    j.append(
        run,
        Event::DriftDetected {
            steps: vec![id("device/w-2")],
            found: vec!["w-2 has no device".into()],
        },
    )
    .await
    .unwrap();
    let state = j.state();
    assert!(!state.ledger.contains_key(&id("device/w-2")));
    assert!(state.ledger.contains_key(&id("device/w-1")));
    drop(j);
    assert_eq!(Journal::open(dir.path()).unwrap().state(), state);
}

#[tokio::test]
async fn secrets_never_reach_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let redactor = journal::Redactor::new();
    {
        let location = journal::Location::Dir(dir.path().to_owned());
        let j = Journal::open_redacting(&location, redactor.clone()).unwrap();
        // Learned after the journal opened (the AWS keys resolve later): redacted all the same.
        redactor.add("pkt-token-abcdefghijklmnop");
        let run = begin(&j).await;
        j.append(run, started(&id("a"), 1)).await.unwrap();
        j.append(
            run,
            Event::StepFailed {
                step: id("a"),
                attempt: 1,
                error: "401 for token pkt-token-abcdefghijklmnop; key -----BEGIN EC PRIVATE KEY-----\nMHc\n-----END EC PRIVATE KEY-----".into(),
                retryable: false,
                duration_ms: 1,
            },
        )
        .await
        .unwrap();
    }
    // Scan the raw files: neither the token nor any PEM marker may be anywhere on disk.
    for entry in walk(dir.path()) {
        let bytes = std::fs::read(&entry).unwrap();
        let hay = String::from_utf8_lossy(&bytes);
        assert!(
            !hay.contains("pkt-token-abcdefghijklmnop"),
            "token in {}",
            entry.display()
        );
        assert!(!hay.contains("PRIVATE KEY"), "key in {}", entry.display());
    }
    let j = Journal::open(dir.path()).unwrap();
    let state = j.state();
    let attempt = &state.last_run().unwrap().steps[&id("a")].attempts[0];
    let AttemptEnd::Failed { error, .. } = &attempt.end else {
        panic!("not failed")
    };
    assert_eq!(error, "401 for token [redacted]; key [redacted]");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_are_all_durable_and_ordered() {
    let dir = tempfile::tempdir().unwrap();
    let j = Arc::new(Journal::open(dir.path()).unwrap());
    let run = begin(&j).await;
    let mut tasks = Vec::new();
    for w in 0..32 {
        let j = Arc::clone(&j);
        tasks.push(tokio::spawn(async move {
            for a in 1..=10 {
                j.append(run, started(&id(&format!("w{w}")), a))
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    drop(j);
    let j = Journal::open(dir.path()).unwrap();
    let records = j.records(run).unwrap();
    assert_eq!(records.len(), 1 + 32 * 10);
    for (i, (seq, _)) in records.iter().enumerate() {
        assert_eq!(seq.0, i as u64 + 1);
    }
    assert_eq!(j.state().attempts[&id("w31")], 10);
}

/// A re-seal is journaled for the audit and read back as written, in its run, and it changes
/// nothing the engine resumes from.
#[tokio::test]
async fn a_reseal_is_read_back_and_leaves_the_ledger_alone() {
    let dir = tempfile::tempdir().unwrap();
    let resealed = Event::AssetsResealed {
        from: vec!["0".repeat(64)],
        to: "1".repeat(64),
        files: 3,
        added: vec!["ssh-ed25519 SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU".into()],
        removed: Vec::new(),
    };
    let before = {
        let j = Journal::open(dir.path()).unwrap();
        let run = begin(&j).await;
        j.append(run, started(&id("a"), 1)).await.unwrap();
        j.append(run, succeeded(&id("a"), 1, Outputs::new(), 1))
            .await
            .unwrap();
        let plain = j.state();
        j.append(run, resealed.clone()).await.unwrap();
        let after = j.state();
        assert_eq!(after.ledger, plain.ledger);
        assert_eq!(after.runs[&run].steps, plain.runs[&run].steps);
        after
    };
    let j = Journal::open(dir.path()).unwrap();
    assert_eq!(j.state(), before);
    let events: Vec<Event> = j
        .records(RunId(1))
        .unwrap()
        .into_iter()
        .map(|(_, r)| r.event)
        .collect();
    assert_eq!(events.last(), Some(&resealed));
}
