//! The engine's behavior with toy steps against a real journal.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use engine::{
    Actions, CancellationToken, Dag, DagError, Engine, Outcome, ResourceClass, RetryPolicy,
    RunReport, RunRequest, StepContext, StepError,
};
use journal::{AttemptEnd, Digest, Event, Journal, Outputs, RunKind, RunOutcome, StepId};

use crate::toys::{Toy, dag, toy};

pub(crate) fn id(s: &str) -> StepId {
    StepId::new(s).unwrap()
}

pub(crate) fn request(spec: &str) -> RunRequest {
    RunRequest {
        kind: RunKind::Apply,
        spec_digest: Digest::of(spec.as_bytes()),
        spec: serde_json::json!({ "spec": spec }),
    }
}

fn fast_retry(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        initial: Duration::from_millis(5),
        max_interval: Duration::from_millis(20),
        ..RetryPolicy::default()
    }
}

/// A step that counts its invocations and outputs its id.
fn counting(name: &str, calls: &Arc<AtomicUsize>) -> Toy {
    let calls = Arc::clone(calls);
    let name_owned = name.to_owned();
    toy(
        id(name),
        Digest::of(name.as_bytes()),
        move |_ctx: StepContext| {
            calls.fetch_add(1, Ordering::SeqCst);
            let name = name_owned.clone();
            async move { Ok(Outputs::new().with("name", name)?) }
        },
    )
}

fn open(dir: &tempfile::TempDir) -> Arc<Journal> {
    Arc::new(Journal::open(dir.path()).unwrap())
}

/// A journal in a new temporary directory (which must outlive it).
pub(crate) fn temp_journal() -> (tempfile::TempDir, Arc<Journal>) {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(&dir);
    (dir, journal)
}

/// Runs `plan` with its actions as the run of spec `spec`, never cancelled.
pub(crate) async fn run_to_end(
    engine: &Engine,
    (plan, actions): &(Dag, Actions),
    spec: &str,
) -> RunReport {
    engine
        .run(plan, actions, request(spec), CancellationToken::new())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_flaky_step_is_retried_and_succeeds() {
    let (_dir, journal) = temp_journal();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&calls);
    let flaky = toy(id("flaky"), Digest::of(b"f"), move |_ctx: StepContext| {
        let n = c.fetch_add(1, Ordering::SeqCst);
        async move {
            if n < 2 {
                Err(StepError::retryable(format!("HTTP 503 on try {n}")))
            } else {
                Ok(Outputs::new())
            }
        }
    })
    .retry(fast_retry(5));
    let plan = dag(vec![flaky]).unwrap();
    let report = run_to_end(&Engine::new(Arc::clone(&journal)), &plan, "a").await;
    assert_eq!(report.outcome, Outcome::Succeeded);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let state = journal.state();
    let attempts = &state.last_run().unwrap().steps[&id("flaky")].attempts;
    assert_eq!(attempts.len(), 3);
    assert!(
        matches!(&attempts[0].end, AttemptEnd::Failed { retryable: true, error, .. } if error == "HTTP 503 on try 0")
    );
    assert!(matches!(attempts[2].end, AttemptEnd::Succeeded { .. }));
    assert_eq!(state.ledger[&id("flaky")].attempt, 3);
}

/// Six answers of "retry after 10 ms" do not exhaust a budget of two attempts; a seventh error
/// without Retry-After and an eighth do.
#[tokio::test]
async fn retry_after_answers_do_not_use_up_attempts() {
    let (_dir, journal) = temp_journal();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&calls);
    let step = toy(id("paced"), Digest::of(b"x"), move |_ctx: StepContext| {
        let n = c.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            match n {
                1..=6 => Err(StepError::retry_after("429", Duration::from_millis(10))),
                _ => Err(StepError::retryable("500")),
            }
        }
    })
    .retry(fast_retry(2));
    let plan = dag(vec![step]).unwrap();
    let report = run_to_end(&Engine::new(journal), &plan, "s").await;
    assert!(
        matches!(report.outcome, Outcome::Failed { .. }),
        "{:?}",
        report.outcome
    );
    assert_eq!(calls.load(Ordering::SeqCst), 8);
}

/// A server that answers "retry after" for ever (a BMC stuck busy) is waited for until the
/// step's `max_elapsed`, then the step fails saying so.
#[tokio::test]
async fn a_server_pacing_for_ever_is_given_up_at_max_elapsed() {
    let (_dir, journal) = temp_journal();
    let step = toy(id("busy"), Digest::of(b"x"), |_ctx: StepContext| async {
        Err(StepError::retry_after(
            "503 busy",
            Duration::from_millis(10),
        ))
    })
    .retry(RetryPolicy {
        max_elapsed: Some(Duration::from_millis(150)),
        ..fast_retry(2)
    });
    let plan = dag(vec![step]).unwrap();
    let report = run_to_end(&Engine::new(journal), &plan, "s").await;
    let Outcome::Failed { failed, .. } = &report.outcome else {
        panic!("{:?}", report.outcome);
    };
    let (_, message) = &failed[0];
    assert!(
        message.contains("503 busy (gave up after") && message.contains("(0 attempts failed, "),
        "{message}"
    );
    assert!(
        message.contains("more answered \"retry later\")"),
        "{message}"
    );
}

#[tokio::test]
async fn a_permanent_failure_skips_only_its_dependents() {
    // a -> b -> c, a -> d -> e; b fails for good.
    let (_dir, journal) = temp_journal();
    let calls = Arc::new(AtomicUsize::new(0));
    let b = toy(id("b"), Digest::of(b"b"), |_ctx: StepContext| async {
        Err::<Outputs, _>(StepError::permanent("422: plan not available in ams1"))
    })
    .after([id("a")])
    .retry(fast_retry(5));
    let plan = dag(vec![
        counting("a", &calls),
        b,
        counting("c", &calls).after([id("b")]),
        counting("d", &calls).after([id("a")]),
        counting("e", &calls).after([id("d")]),
    ])
    .unwrap();
    let report = run_to_end(&Engine::new(Arc::clone(&journal)), &plan, "a").await;
    let Outcome::Failed { failed, skipped } = &report.outcome else {
        panic!("expected failure, got {:?}", report.outcome)
    };
    assert_eq!(
        failed,
        &vec![(id("b"), "422: plan not available in ams1".to_owned())]
    );
    assert_eq!(skipped, &vec![(id("c"), id("b"))]);
    assert_eq!(calls.load(Ordering::SeqCst), 3, "a, d and e ran");
    let state = journal.state();
    let run = state.last_run().unwrap();
    assert_eq!(
        run.steps[&id("b")].attempts.len(),
        1,
        "permanent errors are not retried"
    );
    assert_eq!(run.steps[&id("c")].skipped_because, Some(id("b")));
    assert_eq!(
        run.ended.as_ref().map(|(_, o)| o.clone()),
        Some(RunOutcome::Failed {
            failed: vec![id("b")],
            skipped: vec![id("c")]
        })
    );
}

#[tokio::test]
async fn retries_stop_at_max_attempts_and_the_next_run_resumes_the_failed_run() {
    let (_dir, journal) = temp_journal();
    let healthy = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let calls = Arc::new(AtomicUsize::new(0));
    let (h, c) = (Arc::clone(&healthy), Arc::clone(&calls));
    let plan = dag(vec![
        counting("before", &calls),
        toy(id("api"), Digest::of(b"api"), move |_ctx: StepContext| {
            let ok = h.load(Ordering::SeqCst);
            c.fetch_add(1, Ordering::SeqCst);
            async move {
                if ok {
                    Ok(Outputs::new())
                } else {
                    Err(StepError::retryable("503 Service Unavailable"))
                }
            }
        })
        .after([id("before")])
        .retry(fast_retry(3)),
    ])
    .unwrap();
    let engine = Engine::new(Arc::clone(&journal));
    let report = run_to_end(&engine, &plan, "s").await;
    let Outcome::Failed { failed, .. } = &report.outcome else {
        panic!("{:?}", report.outcome)
    };
    assert!(
        failed[0].1.contains("gave up after 3 attempts"),
        "{}",
        failed[0].1
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        4,
        "before once, api three times"
    );

    healthy.store(true, Ordering::SeqCst);
    let report = run_to_end(&engine, &plan, "s").await;
    assert_eq!(report.outcome, Outcome::Succeeded);
    assert!(report.resumed);
    assert_eq!(report.run, Some(journal::RunId(1)));
    assert_eq!(report.executed, vec![id("api")], "the done step is reused");
    assert_eq!(calls.load(Ordering::SeqCst), 5);
    let state = journal.state();
    assert_eq!(state.runs.len(), 1);
    assert_eq!(state.last_run().unwrap().resumes.len(), 1);
    assert_eq!(
        state.ledger[&id("api")].attempt,
        4,
        "attempts count on across the resume"
    );
}

#[tokio::test]
async fn cancellation_lets_running_steps_record_their_outcome_and_starts_nothing_new() {
    let (_dir, journal) = temp_journal();
    let calls = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(tokio::sync::Notify::new());
    let s = Arc::clone(&started);
    let waiting = toy(
        id("wait-device"),
        Digest::of(b"w"),
        move |ctx: StepContext| {
            let s = Arc::clone(&s);
            async move {
                s.notify_one();
                ctx.cancelled().await;
                Err::<Outputs, _>(StepError::Interrupted)
            }
        },
    );
    let (plan, actions) = dag(vec![
        waiting,
        counting("after", &calls).after([id("wait-device")]),
    ])
    .unwrap();
    let cancel = CancellationToken::new();
    let engine = Engine::new(Arc::clone(&journal));
    let run = engine.run(&plan, &actions, request("s"), cancel.clone());
    let trigger = async {
        started.notified().await;
        cancel.cancel();
    };
    let (report, ()) = tokio::join!(run, trigger);
    let report = report.unwrap();
    assert_eq!(report.outcome, Outcome::Interrupted);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    let state = journal.state();
    let run = state.last_run().unwrap();
    assert!(
        matches!(&run.steps[&id("wait-device")].attempts[0].end, AttemptEnd::Failed { retryable: true, error, .. } if error == "interrupted")
    );
    assert_eq!(
        run.ended.as_ref().map(|(_, o)| o.clone()),
        Some(RunOutcome::Interrupted)
    );
}

#[test]
fn cycles_missing_dependencies_and_duplicates_are_rejected_before_anything_runs() {
    let calls = Arc::new(AtomicUsize::new(0));
    let cycle = dag(vec![
        counting("a", &calls).after([id("c")]),
        counting("b", &calls).after([id("a")]),
        counting("c", &calls).after([id("b")]),
    ]);
    assert!(matches!(cycle, Err(DagError::Cycle(_))));
    let missing = dag(vec![counting("a", &calls).after([id("nope")])]);
    assert_eq!(
        missing.err().unwrap().to_string(),
        "step a depends on nope, which is not in the DAG"
    );
    let dup = dag(vec![counting("a", &calls), counting("a", &calls)]);
    assert!(matches!(dup, Err(DagError::Duplicate(_))));
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_unchanged_spec_does_nothing_and_a_changed_input_reruns_the_step_and_what_it_feeds() {
    let (_dir, journal) = temp_journal();
    let calls = Arc::new(AtomicUsize::new(0));
    let make = |version: &str| {
        let c = Arc::clone(&calls);
        let v = version.to_owned();
        let source = toy(
            id("source"),
            Digest::of(version.as_bytes()),
            move |_ctx: StepContext| {
                c.fetch_add(1, Ordering::SeqCst);
                let v = v.clone();
                async move { Ok(Outputs::new().with("v", v)?) }
            },
        );
        dag(vec![
            source,
            counting("reads-source", &calls).after([id("source")]),
            counting("independent", &calls),
        ])
        .unwrap()
    };
    let v1 = make("v1");
    let engine = Engine::new(Arc::clone(&journal));
    let first = run_to_end(&engine, &v1, "s1").await;
    assert_eq!(first.outcome, Outcome::Succeeded);
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    let events_before = journal.state().runs.values().map(|r| r.events).sum::<u64>();
    let again = run_to_end(&engine, &v1, "s1").await;
    assert_eq!(again.outcome, Outcome::UpToDate);
    assert_eq!(again.run, None);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(
        journal.state().runs.values().map(|r| r.events).sum::<u64>(),
        events_before
    );

    let v2 = make("v2");
    let changed = run_to_end(&engine, &v2, "s2").await;
    assert_eq!(changed.outcome, Outcome::Succeeded);
    assert!(!changed.resumed);
    assert_eq!(changed.executed, vec![id("source"), id("reads-source")]);
    assert_eq!(changed.reused, 1);
    assert_eq!(calls.load(Ordering::SeqCst), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_resource_class_limits_concurrency() {
    let (_dir, journal) = temp_journal();
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let class = ResourceClass::new("ssh");
    let steps = (0..12)
        .map(|i| {
            let (r, p) = (Arc::clone(&running), Arc::clone(&peak));
            toy(
                id(&format!("ssh/{i}")),
                Digest::of(b"x"),
                move |_ctx: StepContext| {
                    let (r, p) = (Arc::clone(&r), Arc::clone(&p));
                    async move {
                        let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                        p.fetch_max(now, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        r.fetch_sub(1, Ordering::SeqCst);
                        Ok(Outputs::new())
                    }
                },
            )
            .class(class.clone())
        })
        .collect();
    let plan = dag(steps).unwrap();
    let report = run_to_end(&Engine::new(journal).limit(class, 3), &plan, "s").await;
    assert_eq!(report.outcome, Outcome::Succeeded);
    let peak = peak.load(Ordering::SeqCst);
    assert!((1..=3).contains(&peak), "peak concurrency {peak}");
}

/// Ten steps of a class limited to 2 all wait at one barrier of 10: only steps that hand back
/// their place while they wait (`StepContext::wait`) can all get there; the work around the
/// wait still respects the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idle_step_hands_back_its_place_in_its_class() {
    let (_dir, journal) = temp_journal();
    let barrier = Arc::new(tokio::sync::Barrier::new(10));
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let class = ResourceClass::new("packet-api");
    let steps = (0..10)
        .map(|i| {
            let (b, r, p) = (
                Arc::clone(&barrier),
                Arc::clone(&running),
                Arc::clone(&peak),
            );
            toy(
                id(&format!("device/{i}")),
                Digest::of(b"x"),
                move |ctx: StepContext| {
                    let (b, r, p) = (Arc::clone(&b), Arc::clone(&r), Arc::clone(&p));
                    async move {
                        let work = || async {
                            let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                            p.fetch_max(now, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(5)).await;
                            r.fetch_sub(1, Ordering::SeqCst);
                        };
                        work().await;
                        ctx.wait(b.wait()).await?;
                        work().await;
                        Ok(Outputs::new())
                    }
                },
            )
            .class(class.clone())
        })
        .collect();
    let (plan, actions) = dag(steps).unwrap();
    let engine = Engine::new(journal).limit(class, 2);
    let run = engine.run(&plan, &actions, request("s"), CancellationToken::new());
    let report = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the steps never all reached the barrier: idle kept their places")
        .unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded);
    let peak = peak.load(Ordering::SeqCst);
    assert!((1..=2).contains(&peak), "peak concurrency {peak}");
}

/// Steps that become ready together start in the order the plan declared them, so that a
/// plan can put its critical path first.
#[tokio::test]
async fn steps_ready_together_start_in_declaration_order() {
    let (_dir, journal) = temp_journal();
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let class = ResourceClass::new("one-at-a-time");
    let mut steps = vec![toy(
        id("root"),
        Digest::of(b"r"),
        |_ctx: StepContext| async { Ok(Outputs::new()) },
    )];
    for name in ["controller", "worker-0", "worker-1", "worker-2", "worker-3"] {
        let order = Arc::clone(&order);
        steps.push(
            toy(
                id(name),
                Digest::of(name.as_bytes()),
                move |_ctx: StepContext| {
                    order.lock().unwrap().push(name);
                    async { Ok(Outputs::new()) }
                },
            )
            .after([id("root")])
            .class(class.clone()),
        );
    }
    let plan = dag(steps).unwrap();
    let report = run_to_end(&Engine::new(journal).limit(class, 1), &plan, "s").await;
    assert_eq!(report.outcome, Outcome::Succeeded);
    assert_eq!(
        *order.lock().unwrap(),
        ["controller", "worker-0", "worker-1", "worker-2", "worker-3"]
    );
}

#[tokio::test]
async fn a_panicking_step_fails_itself_not_the_run() {
    let (_dir, journal) = temp_journal();
    let calls = Arc::new(AtomicUsize::new(0));
    let boom = toy(id("boom"), Digest::of(b"b"), |_ctx: StepContext| async {
        if true {
            panic!("index out of range");
        }
        Ok(Outputs::new())
    });
    let plan = dag(vec![boom, counting("other", &calls)]).unwrap();
    let report = run_to_end(&Engine::new(journal), &plan, "s").await;
    let Outcome::Failed { failed, .. } = report.outcome else {
        panic!()
    };
    assert_eq!(failed[0].0, id("boom"));
    assert!(
        failed[0].1.contains("panicked: index out of range"),
        "{}",
        failed[0].1
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn intents_of_an_unfinished_attempt_reach_the_next_attempt_and_outputs_feed_dependents() {
    let dir = tempfile::tempdir().unwrap();
    // Simulate a crash: an attempt that journaled an intent and never finished.
    {
        let journal = Journal::open(dir.path()).unwrap();
        let run = journal
            .begin_run(
                RunKind::Apply,
                Digest::of(b"s"),
                serde_json::json!({}),
                vec![id("create")],
            )
            .await
            .unwrap();
        journal
            .append(
                run,
                Event::StepStarted {
                    step: id("create"),
                    attempt: 1,
                    inputs_digest: Digest::of(b"x"),
                },
            )
            .await
            .unwrap();
        journal
            .append(
                run,
                Event::StepIntent {
                    step: id("create"),
                    attempt: 1,
                    effect: "POST /devices".into(),
                    detail: Outputs::new().with("hostname", "n-0").unwrap(),
                },
            )
            .await
            .unwrap();
    }
    let journal = open(&dir);
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    let create = toy(id("create"), Digest::of(b"c"), move |ctx: StepContext| {
        s.lock()
            .unwrap()
            .extend(ctx.previous_intents().iter().map(|i| i.effect.clone()));
        let attempt = ctx.attempt();
        async move { Ok(Outputs::new().with("device_id", format!("dev-{attempt}"))?) }
    });
    let got = Arc::new(std::sync::Mutex::new(String::new()));
    let g = Arc::clone(&got);
    let reader = toy(id("dns"), Digest::of(b"d"), move |ctx: StepContext| {
        let value: Result<String, StepError> = ctx
            .output_of(&id("create"))
            .and_then(|o| o.get::<String>("device_id").map_err(StepError::from));
        *g.lock().unwrap() = value.clone().unwrap_or_default();
        async move { value.map(|_| Outputs::new()) }
    })
    .after([id("create")]);
    let (plan, actions) = dag(vec![create, reader]).unwrap();
    let report = Engine::new(Arc::clone(&journal))
        .run(
            &plan,
            &actions,
            request_with_digest(Digest::of(b"s")),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded);
    assert!(report.resumed);
    assert_eq!(*seen.lock().unwrap(), vec!["POST /devices".to_owned()]);
    assert_eq!(
        *got.lock().unwrap(),
        "dev-2",
        "attempt 2 follows the unfinished attempt 1"
    );
}

fn request_with_digest(digest: Digest) -> RunRequest {
    RunRequest {
        kind: RunKind::Apply,
        spec_digest: digest,
        spec: serde_json::json!({}),
    }
}

#[tokio::test]
async fn a_step_rerun_for_changed_inputs_sees_what_it_recorded_last_time() {
    let (_dir, journal) = temp_journal();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let plan = |version: &str| {
        let s = Arc::clone(&seen);
        let v = version.to_owned();
        dag(vec![toy(
            id("dns"),
            Digest::of(version.as_bytes()),
            move |ctx: StepContext| {
                s.lock().unwrap().push(
                    ctx.recorded_outputs()
                        .and_then(|o| o.get::<String>("ip").ok()),
                );
                let v = v.clone();
                async move { Ok(Outputs::new().with("ip", v)?) }
            },
        )])
        .unwrap()
    };
    let (first, second) = (plan("10.0.0.1"), plan("10.0.0.2"));
    let engine = Engine::new(journal);
    run_to_end(&engine, &first, "a").await;
    run_to_end(&engine, &second, "b").await;
    assert_eq!(
        *seen.lock().unwrap(),
        vec![None, Some("10.0.0.1".to_owned())]
    );
}

#[tokio::test]
async fn a_step_that_only_feeds_skipped_steps_stops_retrying() {
    // a and b both feed c; b keeps failing with retryable errors (a wrong SSH port), a fails
    // for good (DNS). c is skipped, so nothing needs b any more: it stops retrying at once.
    let (_dir, journal) = temp_journal();
    let b_calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&b_calls);
    let a = toy(id("a"), Digest::of(b"a"), move |_ctx: StepContext| {
        let seen = Arc::clone(&seen);
        async move {
            // Fail only once b is retrying, so that b is surely between attempts.
            while seen.load(Ordering::SeqCst) == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err::<Outputs, _>(StepError::permanent("hosted zone not found"))
        }
    });
    let counted = Arc::clone(&b_calls);
    let b = toy(id("b"), Digest::of(b"b"), move |_ctx: StepContext| {
        counted.fetch_add(1, Ordering::SeqCst);
        async { Err::<Outputs, _>(StepError::retryable("connection refused")) }
    })
    .retry(RetryPolicy {
        max_attempts: 200,
        initial: Duration::from_millis(20),
        max_interval: Duration::from_millis(20),
        ..RetryPolicy::default()
    });
    let calls = Arc::new(AtomicUsize::new(0));
    let c = counting("c", &calls).after([id("a"), id("b")]);
    let plan = dag(vec![a, b, c]).unwrap();
    let report = run_to_end(&Engine::new(Arc::clone(&journal)), &plan, "a").await;
    let Outcome::Failed { failed, skipped } = &report.outcome else {
        panic!("expected failure, got {:?}", report.outcome)
    };
    assert_eq!(skipped, &vec![(id("c"), id("a"))]);
    let failed: Vec<&StepId> = failed.iter().map(|(s, _)| s).collect();
    assert_eq!(failed, vec![&id("a"), &id("b")]);
    let attempts = b_calls.load(Ordering::SeqCst);
    assert!(attempts < 10, "b kept retrying: {attempts} attempts");
    assert_eq!(calls.load(Ordering::SeqCst), 0, "c never ran");
    let state = journal.state();
    let b_attempts = &state.last_run().unwrap().steps[&id("b")].attempts;
    assert_eq!(b_attempts.len(), attempts, "every attempt is journaled");
}

/// A step a newer plan no longer has (loko's `bootkube`, replaced by `control-plane/*` and
/// `bootstrap`) stays in the ledger of an older run: the next plan without it runs its own new
/// steps, whether the older run succeeded or failed at that step, and the journal still opens.
#[tokio::test]
async fn a_ledger_entry_of_a_step_no_plan_names_is_ignored() {
    for old_step_fails in [false, true] {
        let (dir, journal) = temp_journal();
        let calls = Arc::new(AtomicUsize::new(0));
        let old = if old_step_fails {
            toy(
                id("bootkube"),
                Digest::of(b"b"),
                |_ctx: StepContext| async { Err(StepError::permanent("bootkube failed")) },
            )
            .after([id("assets")])
        } else {
            counting("bootkube", &calls).after([id("assets")])
        };
        let plan = dag(vec![counting("assets", &calls), old]).unwrap();
        let report = run_to_end(&Engine::new(Arc::clone(&journal)), &plan, "a").await;
        assert_eq!(report.outcome == Outcome::Succeeded, !old_step_fails);
        drop(journal);

        let journal = open(&dir);
        let new_steps = Arc::new(AtomicUsize::new(0));
        let plan = dag(vec![
            counting("assets", &calls),
            counting("control-plane/c0", &new_steps).after([id("assets")]),
            counting("bootstrap", &new_steps).after([id("control-plane/c0")]),
        ])
        .unwrap();
        let report = run_to_end(&Engine::new(Arc::clone(&journal)), &plan, "a").await;
        assert_eq!(
            report.outcome,
            Outcome::Succeeded,
            "old step fails: {old_step_fails}"
        );
        assert_eq!(new_steps.load(Ordering::SeqCst), 2);
        let state = journal.state();
        assert!(state.ledger.contains_key(&id("bootstrap")));
        drop(journal);
        // Reopening folds every run, the old step's included.
        let journal = open(&dir);
        assert!(journal.state().ledger.contains_key(&id("control-plane/c0")));
    }
}
