//! One conformance suite for both journal stores: the embedded one (sled and an OS lock in a
//! directory) and etcd (a real etcd on loopback, started by each test). Each property is a
//! function over a [`Backend`], run once per store:
//! ordering, durability across reopen, two writers contending, a holder killed with SIGKILL,
//! a stale holder (stopped with SIGSTOP past its lease while another takes over), and a
//! sequence conflict.
//!
//! Processes that must die or stop are children: this test binary run again with
//! `--exact child_holder` and the journal's location in the environment.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use journal::store::{EtcdConfig, EtcdStore, SledStore, Store, StoreError};
use journal::{Digest, Event, Journal, JournalError, Location, RunId, RunKind, StepId};
use loko_tests::Etcd;

/// The lease of the etcd journals in these tests: short, so that a killed holder's journal is
/// free again quickly.
const TTL: Duration = Duration::from_secs(2);

const LOCATION_ENV: &str = "LOKO_TEST_JOURNAL";

enum Backend {
    Sled(tempfile::TempDir),
    Etcd(Etcd),
}

impl Backend {
    fn sled() -> Backend {
        Backend::Sled(tempfile::tempdir().unwrap())
    }

    fn etcd() -> Backend {
        Backend::Etcd(Etcd::start(1))
    }

    /// As written on a command line.
    fn spec(&self) -> String {
        match self {
            Backend::Sled(dir) => dir.path().join("journal").display().to_string(),
            Backend::Etcd(etcd) => etcd.url("conformance"),
        }
    }

    fn location(&self) -> Location {
        location(&self.spec())
    }

    fn open(&self) -> Result<Journal, JournalError> {
        Journal::open_at(&self.location())
    }

    /// Opens, retrying while another holds the journal, for at most `within`.
    fn open_within(&self, within: Duration) -> Journal {
        let start = Instant::now();
        loop {
            match self.open() {
                Ok(j) => return j,
                Err(JournalError::Locked { .. }) if start.elapsed() < within => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                Err(e) => panic!("open after {:?}: {e}", start.elapsed()),
            }
        }
    }
}

fn location(spec: &str) -> Location {
    if spec.starts_with("etcd://") {
        let mut config = EtcdConfig::parse(spec).unwrap();
        config.ttl = TTL;
        Location::Etcd(config)
    } else {
        Location::Dir(spec.into())
    }
}

fn step(name: &str) -> StepId {
    StepId::new(name).unwrap()
}

fn started(i: u32) -> Event {
    journal::testing::started(&step(&format!("s/{i}")), 1)
}

async fn begin(journal: &Journal) -> RunId {
    journal
        .begin_run(
            RunKind::Apply,
            Digest::of(b"spec"),
            serde_json::json!({}),
            vec![],
        )
        .await
        .unwrap()
}

/// The tests of `property` over a [`Backend`]: `$sled` on the directory store, `$etcd` on etcd.
macro_rules! on_both_stores {
    ($property:ident: $sled:ident, $etcd:ident) => {
        #[test]
        fn $sled() {
            $property(Backend::sled());
        }

        #[test]
        fn $etcd() {
            $property(Backend::etcd());
        }
    };
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

// ---- ordering and durability ----

/// Opens the journal, begins a run and appends `per_task` step events from each of `tasks`
/// tasks at once; returns the run and the fold.
async fn append_concurrently(
    backend: &Backend,
    tasks: u32,
    per_task: u32,
) -> (RunId, journal::ClusterState) {
    let journal = Arc::new(backend.open().unwrap());
    let run = begin(&journal).await;
    let mut set = tokio::task::JoinSet::new();
    for t in 0..tasks {
        let journal = Arc::clone(&journal);
        set.spawn(async move {
            for i in 0..per_task {
                journal.append(run, started(t * 10_000 + i)).await.unwrap();
            }
        });
    }
    while let Some(done) = set.join_next().await {
        done.unwrap();
    }
    (run, journal.state())
}

/// Concurrent appends get consecutive sequence numbers, and the store returns them in that
/// order, after a reopen too; more records than fit in one etcd transaction.
fn ordering_and_durability(backend: Backend) {
    let rt = runtime();
    let (run, state) = rt.block_on(append_concurrently(&backend, 4, 100));
    let journal = backend.open().unwrap();
    assert_eq!(journal.state(), state, "the reopened fold differs");
    let records = journal.records(run).unwrap();
    assert_eq!(records.len(), 401);
    for (i, (seq, _)) in records.iter().enumerate() {
        assert_eq!(seq.0, i as u64 + 1, "records out of order");
    }
}

on_both_stores!(ordering_and_durability: sled_orders_and_keeps_records, etcd_orders_and_keeps_records);

// ---- snapshots ----

/// A journal past `SNAPSHOT_EVERY` events stores a snapshot of its fold, and a reopen starts
/// from it (it does not read a record the snapshot covers) and folds to the same state.
fn snapshot_round_trip(backend: Backend) {
    let rt = runtime();
    let per_task = journal::SNAPSHOT_EVERY as u32 / 8 + 20;
    let (run, state) = rt.block_on(append_concurrently(&backend, 8, per_task));
    assert!(state.runs[&run].events > journal::SNAPSHOT_EVERY);
    if let Backend::Etcd(etcd) = &backend {
        let meta = etcd.ctl(&["get", "--keys-only", "/loko/v1/conformance/snap"]);
        assert!(meta.contains("snap"), "no snapshot stored: {meta:?}");
    }
    // A record the snapshot covers is damaged: a reopen that started from the snapshot does
    // not read it again, one that folded every record would refuse it.
    backend
        .open()
        .unwrap()
        .damage_record_for_tests(run, journal::Seq(2), b"\x00\x00\x00\x00{}")
        .unwrap();
    let journal = backend
        .open()
        .expect("the reopen starts from the snapshot, after the damaged record");
    assert_eq!(journal.state(), state, "the fold from the snapshot differs");
}

on_both_stores!(snapshot_round_trip: sled_snapshot_round_trip, etcd_snapshot_round_trip);

// ---- large records ----

/// The `run_started` record of a 5,000-worker cluster (its desired cluster, about 260 bytes a
/// node, and its plan of 10,008 step ids) is larger than etcd's default request limit of
/// 1.5 MiB: it is stored, read back and folded on both stores.
fn a_record_larger_than_an_etcd_request(backend: Backend) {
    let rt = runtime();
    let node = |i: usize| {
        serde_json::json!({
            "hostname": format!("big-pool{}-worker-{}", i / 1000, i % 1000),
            "role": "worker", "pool": format!("pool{}", i / 1000), "index": i % 1000,
            "plan": "c3.small.x86", "facility": "ams1",
            "os": {"channel": "stable", "version": "current", "arch": "amd64", "ipxe_script_url": null},
            "reservation": "none", "labels": {"node.kubernetes.io/pool": format!("pool{}", i / 1000)},
            "taints": [], "raid": "none",
        })
    };
    let spec = serde_json::json!({"nodes": (0..5_004).map(node).collect::<Vec<_>>()});
    let plan: Vec<StepId> = (0..5_004)
        .flat_map(|i| {
            [
                step(&format!("ignition/big-{i}")),
                step(&format!("device/big-{i}")),
            ]
        })
        .collect();
    let size = spec.to_string().len() + plan.iter().map(|s| s.as_str().len() + 3).sum::<usize>();
    assert!(
        size > 1536 * 1024,
        "the record must exceed etcd's limit: {size} bytes"
    );
    let (run, state) = rt.block_on(async {
        let journal = backend.open().unwrap();
        let run = journal
            .begin_run(
                RunKind::Apply,
                Digest::of(b"big"),
                spec.clone(),
                plan.clone(),
            )
            .await
            .unwrap();
        journal.append(run, started(1)).await.unwrap();
        (run, journal.state())
    });
    let journal = backend.open().unwrap();
    assert_eq!(journal.state(), state, "the reopened fold differs");
    assert_eq!(journal.state().runs[&run].spec.value().unwrap(), spec);
    assert_eq!(journal.records(run).unwrap().len(), 2);
}

on_both_stores!(a_record_larger_than_an_etcd_request: sled_keeps_a_large_record, etcd_keeps_a_large_record);

// ---- two writers ----

fn two_writers_contend(backend: Backend) {
    let first = backend.open().unwrap();
    let err = backend
        .open()
        .err()
        .expect("a second writer must be refused");
    let text = err.to_string();
    assert!(matches!(err, JournalError::Locked { .. }), "{text}");
    assert!(
        text.contains(&format!("pid {}", std::process::id())),
        "the error names the holder: {text}"
    );
    drop(first);
    // Released on close, not after a lease's TTL.
    backend
        .open()
        .expect("the lock is released when its holder closes");
}

on_both_stores!(two_writers_contend: sled_admits_one_writer, etcd_admits_one_writer);

// ---- children ----

/// A child holding the journal: it appends one run, says `HOLDING`, and then appends one
/// event for every line it reads, answering `APPENDED` or `REFUSED: <error>`.
#[test]
#[ignore = "entry point of the child processes of this suite"]
fn child_holder() {
    let Ok(spec) = std::env::var(LOCATION_ENV) else {
        return;
    };
    let rt = runtime();
    rt.block_on(async {
        let journal = Journal::open_at(&location(&spec)).unwrap();
        let run = begin(&journal).await;
        journal.append(run, started(0)).await.unwrap();
        println!("HOLDING");
        let stdin = std::io::stdin();
        for (i, line) in (1..).zip(stdin.lock().lines()) {
            if line.is_err() {
                break;
            }
            match journal.append(run, started(i)).await {
                Ok(_) => println!("APPENDED"),
                Err(e) => println!("REFUSED: {e}"),
            }
        }
    });
}

struct Holder {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Holder {
    fn start(backend: &Backend) -> Holder {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "journal_store::child_holder",
                "--nocapture",
            ])
            .args(["--test-threads", "1"])
            .env(LOCATION_ENV, backend.spec())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let mut holder = Holder { child, out };
        holder.expect("HOLDING");
        holder
    }

    /// Reads lines until one starts with `what`; returns it.
    fn expect(&mut self, what: &str) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            let n = self.out.read_line(&mut line).unwrap();
            assert!(n > 0, "the child ended before saying {what}");
            // libtest prints the test's name on the same line as its first output.
            if let Some(at) = line.find(what) {
                return line[at..].trim_end().to_owned();
            }
        }
    }

    fn append(&mut self) -> String {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(b"append\n").unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        loop {
            line.clear();
            assert!(
                self.out.read_line(&mut line).unwrap() > 0,
                "the child ended"
            );
            if let Some(at) = line.find("APPENDED").or_else(|| line.find("REFUSED")) {
                return line[at..].trim_end().to_owned();
            }
        }
    }

    fn signal(&self, signal: &str) {
        loko_tests::run(Command::new("kill").args([signal, &self.child.id().to_string()]));
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- a holder killed ----

/// A holder killed with SIGKILL frees the journal (at once for the OS lock, once its lease
/// expired for etcd); what it made durable is there and the next holder continues its run.
fn killed_holder_frees_the_journal(backend: Backend) {
    let mut holder = Holder::start(&backend);
    assert_eq!(holder.append(), "APPENDED");
    holder.signal("-KILL");
    let _ = holder.child.wait();
    let journal = backend.open_within(TTL * 5);
    let run = journal.state().last_run().unwrap().id;
    assert_eq!(
        journal.records(run).unwrap().len(),
        3,
        "run_started and two steps"
    );
    let rt = runtime();
    rt.block_on(journal.resume_run(run, vec![])).unwrap();
}

on_both_stores!(killed_holder_frees_the_journal: sled_killed_holder_frees_the_journal, etcd_killed_holder_frees_the_journal);

// ---- a stale holder ----

/// A holder stopped (SIGSTOP) for longer than its lease: on etcd another takes over, and when
/// the stale one continues its appends are refused as fenced and the journal is unchanged. The
/// OS lock never lapses, so on the embedded store nobody takes over while it is stopped.
fn stale_holder(backend: Backend) {
    let mut holder = Holder::start(&backend);
    holder.signal("-STOP");
    std::thread::sleep(TTL * 2);
    match &backend {
        Backend::Sled(_) => {
            let err = backend
                .open()
                .err()
                .expect("the stopped holder keeps the lock");
            assert!(matches!(err, JournalError::Locked { .. }), "{err}");
            holder.signal("-CONT");
            assert_eq!(holder.append(), "APPENDED");
        }
        Backend::Etcd(_) => {
            // The new holder has not written yet: only the fence tells the stale one's append
            // from its own.
            let journal = backend.open_within(TTL * 5);
            let run = journal.state().last_run().unwrap().id;
            let before = journal.records(run).unwrap();
            holder.signal("-CONT");
            let answer = holder.append();
            assert!(
                answer.starts_with("REFUSED") && answer.contains("fenced"),
                "the stale holder must be fenced: {answer}"
            );
            // Its next try too, whatever its lease task found meanwhile.
            assert!(holder.append().contains("fenced"));
            assert_eq!(journal.records(run).unwrap(), before);
            // The new holder goes on where the journal ended.
            let rt = runtime();
            rt.block_on(journal.resume_run(run, vec![])).unwrap();
            drop(journal);
            let reopened = backend.open().unwrap();
            assert_eq!(reopened.records(run).unwrap().len(), before.len() + 1);
        }
    }
}

on_both_stores!(stale_holder: sled_stale_holder_keeps_its_lock, etcd_stale_holder_is_fenced);

// ---- a sequence conflict ----

fn key(run: u64, seq: u64) -> [u8; 16] {
    let mut k = [0; 16];
    k[..8].copy_from_slice(&run.to_be_bytes());
    k[8..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// An append that expects another end of the journal than the store's is refused, and
/// nothing of it is stored.
fn sequence_conflict(store: &dyn Store) {
    store
        .append(None, vec![(key(1, 1), b"one".to_vec())], Vec::new())
        .unwrap();
    store.flush().unwrap();
    let err = store
        .append(None, vec![(key(1, 2), b"two".to_vec())], Vec::new())
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    assert!(err.to_string().contains("run 1 record 1"), "{err}");
    store.flush().unwrap();
    assert!(!store.contains(key(1, 2)).unwrap());
    store
        .append(
            Some(key(1, 1)),
            vec![(key(1, 2), b"two".to_vec())],
            Vec::new(),
        )
        .unwrap();
    store.flush().unwrap();
    let keys: Vec<Vec<u8>> = store
        .scan_after(None)
        .map(|r| r.unwrap().0.to_vec())
        .collect();
    assert_eq!(keys, [key(1, 1).to_vec(), key(1, 2).to_vec()]);
}

#[test]
fn sled_refuses_a_sequence_conflict() {
    let dir = tempfile::tempdir().unwrap();
    sequence_conflict(&SledStore::acquire(dir.path()).unwrap());
}

#[test]
fn etcd_refuses_a_sequence_conflict() {
    let etcd = Etcd::start(1);
    let Location::Etcd(config) = location(&etcd.url("conflict")) else {
        unreachable!()
    };
    let store = EtcdStore::acquire(&config).unwrap();
    sequence_conflict(&store);
    // A writer that bypasses the lease moves the head: the holder's next flush is refused.
    etcd.ctl(&["put", "/loko/v1/conflict/head", "elsewhere"]);
    store
        .append(
            Some(key(1, 2)),
            vec![(key(1, 3), b"three".to_vec())],
            Vec::new(),
        )
        .unwrap();
    let err = store.flush().unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    assert!(!store.contains(key(1, 3)).unwrap());
}

// ---- a whole run on a 3-member etcd ----

/// `loko run --sim` with its journal on a 3-member etcd: the member loko talks to (the first
/// of its endpoints) is killed with SIGKILL mid-run; loko moves to the others and the run
/// succeeds, every event in the journal.
/// `loko ARGS` with its journal at `url` (`LOKO_JOURNAL`), its output piped.
fn loko_on(url: &str) -> impl Fn(&[&str]) -> Command {
    move |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_loko"));
        cmd.args(args)
            .env("LOKO_JOURNAL", url)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }
}

/// How many records cluster `supernova`'s journal holds in `etcd`.
fn supernova_records(etcd: &Etcd) -> usize {
    etcd.ctl(&["get", "--prefix", "--keys-only", "/loko/v1/supernova/e/"])
        .lines()
        .filter(|l| !l.is_empty())
        .count()
}

/// Waits until a run journaled at least `records` records in `etcd`: mid-run.
fn wait_for_records(etcd: &Etcd, records: usize) {
    let start = Instant::now();
    while supernova_records(etcd) < records {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the run journaled nothing"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `command()` again while it is refused for a journal still held (exit 3), for at most
/// `within`: a killed holder's lease lapses only after its TTL. The last run's output.
fn once_the_lease_lapsed(within: Duration, mut command: impl FnMut() -> Command) -> Output {
    let start = Instant::now();
    loop {
        let out = command().output().unwrap();
        if out.status.code() != Some(3) || start.elapsed() > within {
            return out;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn a_run_goes_on_when_an_etcd_member_dies() {
    let mut etcd = Etcd::start(3);
    let url = etcd.url("supernova");
    let (_dir, spec) = loko_tests::example_copy("tutorial.yaml");
    let loko = loko_on(&url);
    let spec = spec.to_str().unwrap();
    let mut run = loko(&["run", spec, "--sim"]).spawn().unwrap();
    // Mid-run: the journal has its first step's events.
    wait_for_records(&etcd, 1);
    etcd.kill(0);
    assert!(
        run.try_wait().unwrap().is_none(),
        "the run ended before the member was killed; the test proves nothing"
    );
    let out = run.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listing = loko(&["journal", spec]).output().unwrap();
    let text = String::from_utf8_lossy(&listing.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("1 ") && l.ends_with("succeeded")),
        "{text}{}",
        String::from_utf8_lossy(&listing.stderr)
    );
}

// ---- TLS ----

/// An etcd that serves TLS and asks for a client certificate: the journal works with
/// `--journal-ca/--journal-cert/--journal-key` (here through `loko journal`), and without the
/// client certificate etcd refuses it.
#[test]
fn etcd_over_tls_with_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let tls = loko_tests::EtcdTlsFiles::make(dir.path());
    let etcd = Etcd::start_tls(&tls);
    let url = etcd.url("tls");
    let mut config = EtcdConfig::parse(&url).unwrap();
    config.tls = Some(journal::store::EtcdTls {
        ca: Some(tls.ca.clone()),
        cert: Some(tls.client_cert.clone()),
        key: Some(tls.client_key.clone()),
    });
    let rt = runtime();
    {
        let journal = Journal::open_at(&Location::Etcd(config.clone())).unwrap();
        rt.block_on(begin(&journal));
    }
    let out = Command::new(env!("CARGO_BIN_EXE_loko"))
        .args([
            "journal",
            "--state-dir",
            dir.path().to_str().unwrap(),
            "--json",
        ])
        .args(["--journal", &url])
        .arg("--journal-ca")
        .arg(&tls.ca)
        .arg("--journal-cert")
        .arg(&tls.client_cert)
        .arg("--journal-key")
        .arg(&tls.client_key)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(listing.contains("\"run\":1"), "{listing}");

    config.tls = Some(journal::store::EtcdTls {
        ca: Some(tls.ca.clone()),
        cert: None,
        key: None,
    });
    let err = Journal::open_at(&Location::Etcd(config))
        .err()
        .expect("etcd asks for a client certificate");
    assert!(matches!(err, JournalError::Store { .. }), "{err}");
}

// ---- the crash suite, sampled, on etcd ----

/// `loko run` of the tutorial with its journal in etcd, killed right after its k-th append
/// (`LOKO_CRASH_AT_APPEND`) for every k, then run again (once the killed holder's 2 s lease
/// expired) to the end: the same cluster as a clean run, no device created twice, the same
/// static control planes, and the resumed run continued run 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_journal_resumes_after_a_crash_at_every_append() {
    use loko_tests::world::{
        World, WorldConfig, assert_resumed_after_crash, crash_at_append, stdout,
    };
    const LOKO: &str = env!("CARGO_BIN_EXE_loko");
    let config = || WorldConfig {
        time_scale: 0.002,
        moto: false,
        openssh: false,
    };
    let etcd = Etcd::start(1);
    let mut clusters = 0;
    let mut url = || {
        clusters += 1;
        etcd.url(&format!("crash-{clusters}?ttl=2"))
    };

    let w = World::start(LOKO, config()).await;
    let spec = w.spec_from_example("tutorial");
    let spec = spec.to_str().unwrap();
    let clean_url = url();
    let out = w
        .command(&["run", spec])
        .env("LOKO_JOURNAL", &clean_url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the clean run failed: {}",
        stdout(&out)
    );
    let journal = w
        .command(&["journal", spec, "1", "--json"])
        .env("LOKO_JOURNAL", &clean_url)
        .output()
        .unwrap();
    let appends = stdout(&journal).lines().count();
    assert!(appends > 20, "{appends} appends");
    assert!(
        !w.state_dir().join("journal").exists(),
        "the run journaled into the state directory, not etcd"
    );
    let hosts: Vec<String> = w.devices().live.into_keys().collect();
    let control_planes = w.static_control_planes();
    drop(w);

    for k in 1..=appends {
        let what = format!("crash at append {k}/{appends}");
        let w = World::start(LOKO, config()).await;
        let spec = w.spec_from_example("tutorial");
        let spec = spec.to_str().unwrap();
        let url = url();
        crash_at_append(
            w.command(&["run", spec]).env("LOKO_JOURNAL", &url),
            k,
            &what,
        );
        // What the killed run left: every record's files in the store (issue 28).
        crate::team::assert_every_record_has_its_assets(&url, &what);
        // The killed holder's lease lapses after its TTL (20 s); until then the journal is
        // locked. A busy machine's etcd can take a while longer to expire it.
        let out = once_the_lease_lapsed(Duration::from_secs(90), || {
            let mut run = w.command(&["run", spec]);
            run.env("LOKO_JOURNAL", &url);
            run
        });
        assert!(
            out.status.success(),
            "{what}: the resumed run failed: {}{}",
            stdout(&out),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_resumed_after_crash(&stdout(&out), k, appends, &what);
        w.assert_cluster(&hosts, &[]);
        assert_eq!(
            w.static_control_planes(),
            control_planes,
            "{what}: static control planes"
        );
    }
}

// ---- the whole etcd restarted mid-run ----

/// The whole etcd (one member) killed mid-run, then started again on its data once the run
/// gave up: the run fails resumable, nothing it journaled is lost, and the next run (once the
/// dead run's lease lapsed) resumes it to the end.
#[test]
fn a_run_fails_resumable_when_the_whole_etcd_restarts_and_the_rerun_resumes() {
    let mut etcd = Etcd::start(1);
    let url = etcd.url("supernova?ttl=2");
    let (_dir, spec) = loko_tests::example_copy("tutorial.yaml");
    let spec = spec.to_str().unwrap();
    let loko = loko_on(&url);
    let run = loko(&["run", spec, "--sim"]).spawn().unwrap();
    wait_for_records(&etcd, 5);
    etcd.kill(0);
    let out = run.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // Failed (a request found no member for 10 s), or fenced (the lease could not be renewed
    // for its TTL, so this loko no longer counts on holding it): resumable either way.
    assert!(matches!(out.status.code(), Some(1) | Some(3)), "{err}");
    assert!(
        err.contains("no etcd member answered") || err.contains("could not be renewed"),
        "{err}"
    );
    etcd.restart(0);
    let kept = supernova_records(&etcd);
    assert!(kept >= 5, "records lost: {kept} left");

    let out = once_the_lease_lapsed(Duration::from_secs(60), || loko(&["run", spec, "--sim"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("resuming run 1"), "{text}");
    assert!(supernova_records(&etcd) > kept);
}
