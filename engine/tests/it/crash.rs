//! Crash at every journal append of a run, then resume: every side effect happens exactly once
//! and the folded state equals a clean run's.
//!
//! The runs happen in child processes (this test binary re-executed with `--ignored --exact
//! child_run`), so that `LOKO_CRASH_AT_APPEND` really kills a process with SIGKILL, as a crash
//! or `kill -9` would, and the next process must recover from the files alone.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use engine::{
    Actions, CancellationToken, Dag, Engine, Outcome, RetryPolicy, RunRequest, StepContext,
    StepError,
};
use journal::{Digest, Event, Journal, Outputs, RunKind, StepId};

const DIR_ENV: &str = "LOKO_TOY_DIR";
const WIDTH: usize = 9;

use crate::toys::{Toy, dag, toy};

fn id(s: &str) -> StepId {
    StepId::new(s).unwrap()
}

/// `src` → `m0..m8` → `n0..n8` (n_i reads m_i and m_(i+1)) → `sink`: 20 steps, a diamond of
/// diamonds. `m4` fails its first two invocations ever (its counter lives in a file, so crashes
/// do not reset it).
fn toy_plan(dir: &Path) -> (Dag, Actions) {
    let mut steps = vec![toy_step(dir, "src", &[])];
    for i in 0..WIDTH {
        let name = format!("m{i}");
        let mut step = toy_step(dir, &name, &["src".to_owned()]);
        if i == 4 {
            step = flaky(dir, &name, &["src".to_owned()]);
        }
        steps.push(step);
    }
    for i in 0..WIDTH {
        let deps = [format!("m{i}"), format!("m{}", (i + 1) % WIDTH)];
        steps.push(toy_step(dir, &format!("n{i}"), &deps));
    }
    let ns: Vec<String> = (0..WIDTH).map(|i| format!("n{i}")).collect();
    steps.push(toy_step(dir, "sink", &ns));
    dag(steps).unwrap()
}

fn toy_step(dir: &Path, name: &str, deps: &[String]) -> Toy {
    let dir = dir.to_owned();
    let me = name.to_owned();
    toy(
        id(name),
        Digest::of(name.as_bytes()),
        move |ctx: StepContext| {
            let (dir, me) = (dir.clone(), me.clone());
            async move { effect(&dir, &me, &ctx).await }
        },
    )
    .after(deps.iter().map(|d| id(d)))
    .retry(RetryPolicy {
        initial: Duration::from_millis(2),
        max_interval: Duration::from_millis(10),
        ..RetryPolicy::default()
    })
}

fn flaky(dir: &Path, name: &str, deps: &[String]) -> Toy {
    let dir2 = dir.to_owned();
    let me = name.to_owned();
    toy(
        id(name),
        Digest::of(name.as_bytes()),
        move |ctx: StepContext| {
            let (dir, me) = (dir2.clone(), me.clone());
            async move {
                let counter = dir.join("flaky-invocations");
                let n = std::fs::read_to_string(&counter)
                    .map(|s| s.lines().count())
                    .unwrap_or(0);
                append_line(&counter, "x");
                if n < 2 {
                    return Err(StepError::retryable(format!("flaky failure {n}")));
                }
                effect(&dir, &me, &ctx).await
            }
        },
    )
    .after(deps.iter().map(|d| id(d)))
    .retry(RetryPolicy {
        initial: Duration::from_millis(2),
        max_interval: Duration::from_millis(10),
        ..RetryPolicy::default()
    })
}

/// The side effect: a line in `effects.log`, like a device in a cloud. The step reconciles
/// first (looks for its line, as the device step looks for its tag), then journals its intent,
/// then acts.
async fn effect(dir: &Path, me: &str, ctx: &StepContext) -> Result<Outputs, StepError> {
    let log = dir.join("effects.log");
    let existing = std::fs::read_to_string(&log).unwrap_or_default();
    if !existing.lines().any(|l| l == me) {
        ctx.intent("append effect", Outputs::new().with("line", me)?)
            .await?;
        append_line(&log, me);
    }
    // Outputs depend on the dependencies' outputs, so the fold of a resumed run equals a clean
    // one only if every step saw the same inputs.
    let mut parts = vec![me.as_bytes().to_vec()];
    for (dep, out) in ctx.dependency_outputs() {
        parts.push(dep.as_str().as_bytes().to_vec());
        parts.push(out.get::<String>("value")?.into_bytes());
    }
    let value = Digest::of_parts(parts.iter().map(|p| p.as_slice()));
    Ok(Outputs::new().with("value", value.short())?)
}

fn append_line(path: &Path, line: &str) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    // One write per line: O_APPEND makes a single write atomic, two could interleave with
    // another step's.
    f.write_all(format!("{line}\n").as_bytes()).unwrap();
    f.sync_all().unwrap();
}

/// The child: runs the toy plan against the journal in `$LOKO_TOY_DIR/journal`.
#[test]
#[ignore = "entry point of the child processes of the crash tests"]
fn child_run() {
    let Ok(dir) = std::env::var(DIR_ENV) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let journal = match Journal::open(&dir.join("journal")) {
            Ok(j) => Arc::new(j),
            Err(e) => {
                eprintln!("CHILD-ERROR: {e}");
                std::process::exit(3);
            }
        };
        if std::env::var("LOKO_TOY_HOLD").is_ok() {
            // Hold the lock until the parent kills us.
            println!("HOLDING");
            tokio::time::sleep(Duration::from_secs(600)).await;
        }
        let request = RunRequest {
            kind: RunKind::Apply,
            spec_digest: Digest::of(b"toy"),
            spec: serde_json::json!({"toy": true}),
        };
        let plan = toy_plan(&dir);
        let report = Engine::new(journal)
            .run(&plan.0, &plan.1, request, CancellationToken::new())
            .await
            .unwrap();
        println!("OUTCOME: {:?}", report.outcome);
        assert!(matches!(
            report.outcome,
            Outcome::Succeeded | Outcome::UpToDate
        ));
    });
}

fn child(dir: &Path, crash_at: Option<usize>) -> std::process::Output {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--ignored",
        "--exact",
        "crash::child_run",
        "--nocapture",
        "--test-threads",
        "1",
    ])
    .env(DIR_ENV, dir)
    .env_remove("LOKO_CRASH_AT_APPEND");
    if let Some(k) = crash_at {
        cmd.env("LOKO_CRASH_AT_APPEND", k.to_string());
    }
    cmd.output().unwrap()
}

/// Per step: its outputs and inputs digest in the ledger (attempt numbers may differ after a
/// crash, since an interrupted attempt counts).
fn folded(dir: &Path) -> (BTreeMap<StepId, (Outputs, Digest)>, Vec<Event>) {
    let journal = Journal::open(&dir.join("journal")).unwrap();
    let ledger = journal.with_state(|s| {
        s.ledger
            .iter()
            .map(|(k, v)| (k.clone(), (v.outputs.clone(), v.inputs_digest)))
            .collect()
    });
    let runs: Vec<_> = journal.with_state(|s| s.runs.keys().copied().collect());
    let events = runs
        .into_iter()
        .flat_map(|r| journal.records(r).unwrap())
        .map(|(_, rec)| rec.event)
        .collect();
    (ledger, events)
}

fn effects(dir: &Path) -> Vec<String> {
    let mut lines: Vec<String> = std::fs::read_to_string(dir.join("effects.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

#[test]
fn crash_at_every_append_then_resume_does_everything_exactly_once() {
    let clean_dir = tempfile::tempdir().unwrap();
    let out = child(clean_dir.path(), None);
    assert!(
        out.status.success(),
        "clean run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (clean_ledger, clean_events) = folded(clean_dir.path());
    let appends = clean_events.len();
    assert_eq!(clean_ledger.len(), 20);
    let expected_effects = effects(clean_dir.path());
    assert_eq!(expected_effects.len(), 20);
    // 1 start + 20 steps x (started, intent, succeeded) + 2 flaky failures x (started, failed) + 1 end.
    assert_eq!(appends, 1 + 20 * 3 + 2 * 2 + 1);

    for k in 1..=appends {
        let dir = tempfile::tempdir().unwrap();
        let crashed = child(dir.path(), Some(k));
        assert_eq!(
            crashed.status.signal(),
            Some(libc_sigkill()),
            "k={k}: the child should have killed itself; stderr: {}",
            String::from_utf8_lossy(&crashed.stderr)
        );
        let resumed = child(dir.path(), None);
        assert!(
            resumed.status.success(),
            "k={k}: resume failed: {}{}",
            String::from_utf8_lossy(&resumed.stdout),
            String::from_utf8_lossy(&resumed.stderr)
        );
        assert_eq!(
            effects(dir.path()),
            expected_effects,
            "k={k}: side effects not exactly once"
        );
        let (ledger, events) = folded(dir.path());
        assert_eq!(
            ledger, clean_ledger,
            "k={k}: folded state differs from the clean run's"
        );
        for step in clean_ledger.keys() {
            let successes = events
                .iter()
                .filter(|e| matches!(e, Event::StepSucceeded { step: s, .. } if s == step))
                .count();
            assert_eq!(successes, 1, "k={k}: {step} succeeded {successes} times");
        }
        let resumes = events
            .iter()
            .filter(|e| matches!(e, Event::RunResumed { .. }))
            .count();
        let starts = events
            .iter()
            .filter(|e| matches!(e, Event::RunStarted { .. }))
            .count();
        assert_eq!(starts, 1, "k={k}: one run, resumed rather than restarted");
        if k < appends {
            assert_eq!(resumes, 1, "k={k}: the journal shows the resume");
        } else {
            assert_eq!(resumes, 0, "k={k}: a finished run is not resumed");
            assert!(String::from_utf8_lossy(&resumed.stdout).contains("UpToDate"));
        }
    }
}

#[test]
fn a_second_process_is_refused_while_the_first_holds_the_journal_and_admitted_after_it_dies() {
    let dir = tempfile::tempdir().unwrap();
    let mut holder = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "crash::child_run", "--nocapture"])
        .env(DIR_ENV, dir.path())
        .env("LOKO_TOY_HOLD", "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the holder has the lock.
    let mut stdout = std::io::BufReader::new(holder.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        let n = std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
        assert!(n > 0, "holder exited before holding the lock");
        if line.contains("HOLDING") {
            break;
        }
    }
    let second = child(dir.path(), None);
    assert_eq!(second.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("is locked by another loko"), "{stderr}");
    assert!(stderr.contains(&format!("pid {}", holder.id())), "{stderr}");
    assert!(
        stderr.contains(&dir.path().join("journal").display().to_string()),
        "{stderr}"
    );

    holder.kill().unwrap();
    holder.wait().unwrap();
    let after = child(dir.path(), None);
    assert!(
        after.status.success(),
        "{}",
        String::from_utf8_lossy(&after.stderr)
    );
}

fn libc_sigkill() -> i32 {
    9
}
