//! `loko journal`: the runs, steps and attempts of a journal in a directory or in etcd, as
//! tables and as JSON lines; a held journal, an earlier version's fixture, `push` and `--follow`
//! on etcd.

use std::process::Command;

use journal::testing::{failed, started, succeeded};
use journal::{Digest, Event, Journal, Outputs, RunKind, RunOutcome, StepId};

use crate::binary::{loko, loko_expect, text};

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

pub(crate) fn ended_failed(failed: Vec<StepId>, skipped: Vec<StepId>) -> Event {
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
