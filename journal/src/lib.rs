//! loko's journal: an append-only, versioned, durable event log per cluster, and its fold.
//!
//! Every step transition of a run is an [`Event`] appended here *before* loko acts on it: a run
//! that crashes, is killed or fails resumes from what the journal holds, and the journal is the
//! audit log that `loko journal` prints. Progress is never stored anywhere else: state is
//! [`ClusterState`], the fold of the events.
//!
//! Guarantees:
//! - [`Journal::append`] returns only once the event is durable (written and fsynced).
//!   Concurrent appends share one flush (group commit), so a hundred steps finishing together
//!   cost one fsync, not a hundred.
//! - One writer: [`Journal::open`] takes an exclusive lock; a second opener gets
//!   [`JournalError::Locked`] naming the journal and the holder. The OS drops the lock when the
//!   holder dies, so a killed run never blocks the next.
//! - Nothing is skipped on read: a damaged record, one of an unknown format version or one that
//!   contradicts the events before it fails [`Journal::open`] with [`JournalError::Corrupt`],
//!   naming the run and sequence number.
//! - No secrets: step outputs are [`Outputs`], which refuse secret-looking values, and every
//!   event is passed through [`redact`] on the way in.
//!
//! ```no_run
//! # async fn demo() -> Result<(), journal::JournalError> {
//! use journal::{Digest, Event, Journal, Outputs, RunKind, StepId};
//! let journal = Journal::open(std::path::Path::new("/tmp/demo-journal"))?;
//! let step = StepId::new("pki").expect("valid id");
//! let run = journal
//!     .begin_run(RunKind::Apply, Digest::of(b"spec"), serde_json::json!({}), vec![step.clone()])
//!     .await?;
//! journal
//!     .append(run, Event::StepStarted { step, attempt: 1, inputs_digest: Digest::of(b"in") })
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! # Testing aid: `LOKO_CRASH_AT_APPEND`
//! When the environment variable `LOKO_CRASH_AT_APPEND=<k>` is set, the process kills itself
//! with SIGKILL (no destructors, no flush, exactly like `kill -9`) right after the k-th durable
//! append of this process, before that append returns to its caller. The crash suites use it to
//! stop a run at every point where the journal changes and prove that the next run resumes
//! correctly. Never set it outside tests.

mod event;
mod fold;
mod ids;
mod lock;
mod secrets;
mod store;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, mpsc};

use serde_json::Value;
use tokio::sync::oneshot;

pub use event::{DecodeError, Event, FORMAT_VERSION, Record, RunKind, RunOutcome};
pub use fold::{
    Attempt, AttemptEnd, ClusterState, FoldError, Intent, RunState, StepHistory, StepResult,
};
pub use ids::{Digest, InvalidStepId, RunId, Seq, StepId};
pub use secrets::{
    OutputError, Outputs, REDACTED, redact, redact_json, register_secret, secret_kind,
};

use lock::RunLock;
use store::{Store, StoreError};

/// The environment variable of the crash testing aid (see the crate docs).
pub const CRASH_AT_APPEND_ENV: &str = "LOKO_CRASH_AT_APPEND";

/// Errors of the journal. Each names the journal's path.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// Another process holds the journal.
    #[error(
        "journal {path} is locked by another loko ({holder}); wait for it to finish or stop it"
    )]
    Locked { path: PathBuf, holder: String },
    /// A stored record cannot be trusted; nothing after it is read.
    #[error("journal {path}: record {seq} of run {run} is unreadable: {reason}")]
    Corrupt {
        path: PathBuf,
        run: RunId,
        seq: Seq,
        reason: String,
    },
    /// The store failed to read or write.
    #[error("journal {path}: storage failed: {source}")]
    Store {
        path: PathBuf,
        #[source]
        source: StoreError,
    },
    /// The journal directory could not be prepared.
    #[error("journal {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The caller appended an event that contradicts the journal (a bug in the caller).
    #[error("journal {path}: refused event for run {run}: {source}")]
    Refused {
        path: PathBuf,
        run: RunId,
        #[source]
        source: FoldError,
    },
    /// An event could not be encoded.
    #[error("journal {path}: cannot encode event: {source}")]
    Encode {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// `LOKO_CRASH_AT_APPEND` holds something other than a positive number.
    #[error("{CRASH_AT_APPEND_ENV}={0:?} is not a positive number")]
    BadCrashPoint(String),
}

/// The journal of one cluster. Cheap to share: wrap it in an `Arc`.
pub struct Journal {
    path: PathBuf,
    store: Arc<Store>,
    state: Mutex<Folded>,
    committer: Committer,
    // Declared last so it is released after the store is closed.
    _lock: RunLock,
}

type Waiter = oneshot::Sender<Result<(), String>>;

struct Folded {
    cluster: ClusterState,
    next_seq: BTreeMap<RunId, u64>,
}

impl Journal {
    /// Opens (creating if needed) the journal in directory `dir`, locks it, and folds every record.
    pub fn open(dir: &Path) -> Result<Journal, JournalError> {
        crash_point()?;
        let io = |source| JournalError::Io {
            path: dir.to_owned(),
            source,
        };
        create_private_dir(dir).map_err(io)?;
        let lock = RunLock::acquire(&dir.join("LOCK"), dir).map_err(|e| match e {
            lock::LockError::Held { path, holder } => JournalError::Locked { path, holder },
            lock::LockError::Io { path, source } => JournalError::Io { path, source },
        })?;
        let store = Store::open(&dir.join("events")).map_err(|source| JournalError::Store {
            path: dir.to_owned(),
            source,
        })?;
        let folded = fold_store(dir, &store)?;
        let store = Arc::new(store);
        let committer = Committer::spawn(Arc::clone(&store)).map_err(io)?;
        Ok(Journal {
            path: dir.to_owned(),
            store,
            state: Mutex::new(folded),
            committer,
            _lock: lock,
        })
    }

    /// The journal's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Starts a new run with the next run id and returns that id once `RunStarted` is durable.
    pub async fn begin_run(
        &self,
        kind: RunKind,
        spec_digest: Digest,
        spec: Value,
        plan: Vec<StepId>,
    ) -> Result<RunId, JournalError> {
        let event = Event::RunStarted {
            kind,
            spec_digest,
            spec,
            plan,
            by: lock::whoami(),
        };
        let bytes = self.encode(&event)?;
        let run = {
            let mut folded = self.folded();
            let run = RunId(folded.cluster.last_run().map_or(1, |r| r.id.0 + 1));
            self.insert_and_apply(&mut folded, run, &event, bytes)?;
            run
        };
        self.commit().await?;
        Ok(run)
    }

    /// Marks `run` as resumed by this process, with the plan it continues.
    pub async fn resume_run(&self, run: RunId, plan: Vec<StepId>) -> Result<Seq, JournalError> {
        self.append(
            run,
            Event::RunResumed {
                plan,
                by: lock::whoami(),
            },
        )
        .await
    }

    /// Appends an event to `run` and returns its sequence number once it is durable.
    pub async fn append(&self, run: RunId, event: Event) -> Result<Seq, JournalError> {
        let bytes = self.encode(&event)?;
        let seq = {
            let mut folded = self.folded();
            self.insert_and_apply(&mut folded, run, &event, bytes)?
        };
        self.commit().await?;
        Ok(seq)
    }

    /// Runs `f` on the folded state. Keep `f` short: appends wait for it.
    pub fn with_state<R>(&self, f: impl FnOnce(&ClusterState) -> R) -> R {
        f(&self.folded().cluster)
    }

    /// A copy of the folded state.
    pub fn state(&self) -> ClusterState {
        self.with_state(Clone::clone)
    }

    /// The stored records of one run, in order, read back from disk.
    pub fn records(&self, run: RunId) -> Result<Vec<(Seq, Record)>, JournalError> {
        let mut out = Vec::new();
        for item in self.store.scan_prefix(&run.0.to_be_bytes()) {
            let (k, v) = item.map_err(|source| JournalError::Store {
                path: self.path.clone(),
                source,
            })?;
            let (run, seq) = event::parse_key(&k).ok_or_else(|| self.bad_key(&k))?;
            let v: &[u8] = &v;
            let record = event::decode(v).map_err(|e| JournalError::Corrupt {
                path: self.path.clone(),
                run,
                seq,
                reason: e.to_string(),
            })?;
            out.push((seq, record));
        }
        Ok(out)
    }

    /// Replaces the raw bytes of a stored record. Exists only so that tests (here and in the
    /// suites of other crates) can prove that damaged records are reported, never skipped.
    #[doc(hidden)]
    pub fn damage_record_for_tests(
        &self,
        run: RunId,
        seq: Seq,
        bytes: &[u8],
    ) -> Result<(), JournalError> {
        self.store
            .overwrite_raw(&event::key(run, seq), bytes)
            .map_err(|source| JournalError::Store {
                path: self.path.clone(),
                source,
            })
    }

    fn folded(&self) -> MutexGuard<'_, Folded> {
        // A panic while holding the lock cannot leave the fold half-applied: apply only runs
        // after the checks that can fail, so the data is still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn encode(&self, event: &Event) -> Result<Vec<u8>, JournalError> {
        event::encode(now_ms(), event).map_err(|source| JournalError::Encode {
            path: self.path.clone(),
            source,
        })
    }

    /// Inserts under the state lock, so that sequence numbers, store order and fold order agree.
    fn insert_and_apply(
        &self,
        folded: &mut Folded,
        run: RunId,
        event: &Event,
        bytes: Vec<u8>,
    ) -> Result<Seq, JournalError> {
        folded
            .cluster
            .admits(run, event)
            .map_err(|source| JournalError::Refused {
                path: self.path.clone(),
                run,
                source,
            })?;
        let next = folded.next_seq.entry(run).or_insert(1);
        let seq = Seq(*next);
        // Decode what we stored so the in-memory fold sees exactly what a later open will see
        // (redacted text included).
        let record = event::decode(&bytes).map_err(|e| JournalError::Corrupt {
            path: self.path.clone(),
            run,
            seq,
            reason: e.to_string(),
        })?;
        self.store
            .insert(event::key(run, seq), bytes)
            .map_err(|source| JournalError::Store {
                path: self.path.clone(),
                source,
            })?;
        *next += 1;
        folded.cluster.apply_admitted(run, seq, record);
        Ok(seq)
    }

    /// Waits until everything inserted so far is durable, sharing the flush with concurrent
    /// appenders.
    async fn commit(&self) -> Result<(), JournalError> {
        let (tx, rx) = oneshot::channel();
        let failed = |reason: String| JournalError::Store {
            path: self.path.clone(),
            source: StoreError::from_text(reason),
        };
        self.committer
            .send(tx)
            .map_err(|_| failed("the flush thread stopped".to_owned()))?;
        rx.await
            .map_err(|_| failed("the flush thread stopped".to_owned()))?
            .map_err(failed)?;
        crash_if_asked();
        Ok(())
    }

    fn bad_key(&self, key: &[u8]) -> JournalError {
        JournalError::Corrupt {
            path: self.path.clone(),
            run: RunId(0),
            seq: Seq(0),
            reason: format!("store key {} is not a journal key", hex::encode(key)),
        }
    }
}

/// The committer: one thread that flushes once for every batch of waiting appenders.
///
/// Dropping it closes the queue and joins the thread, so that when a `Journal` is dropped the
/// store is closed (and its file lock released) before `drop` returns.
struct Committer {
    queue: Option<mpsc::Sender<Waiter>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Committer {
    fn spawn(store: Arc<Store>) -> std::io::Result<Committer> {
        let (tx, rx) = mpsc::channel::<Waiter>();
        let thread = std::thread::Builder::new()
            .name("journal-commit".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut batch = vec![first];
                    batch.extend(rx.try_iter());
                    let result = store.flush().map_err(|e| e.to_string());
                    for waiter in batch {
                        // The appender may have gone (its task was cancelled); the flush stands.
                        let _ = waiter.send(result.clone());
                    }
                }
            })?;
        Ok(Committer {
            queue: Some(tx),
            thread: Some(thread),
        })
    }

    fn send(&self, waiter: Waiter) -> Result<(), mpsc::SendError<Waiter>> {
        match &self.queue {
            Some(queue) => queue.send(waiter),
            None => Err(mpsc::SendError(waiter)),
        }
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        self.queue.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn fold_store(dir: &Path, store: &Store) -> Result<Folded, JournalError> {
    let corrupt = |run, seq, reason: String| JournalError::Corrupt {
        path: dir.to_owned(),
        run,
        seq,
        reason,
    };
    let mut raw = Vec::new();
    for item in store.scan() {
        let (k, v) = item.map_err(|source| JournalError::Store {
            path: dir.to_owned(),
            source,
        })?;
        let (run, seq) = event::parse_key(&k).ok_or_else(|| {
            corrupt(
                RunId(0),
                Seq(0),
                format!("store key {} is not a journal key", hex::encode(&k)),
            )
        })?;
        raw.push((run, seq, v));
    }
    // Decoding is most of the cost of opening a large journal and each record decodes on its
    // own, so it is spread over the cores; folding stays sequential, in key order.
    let decoded = decode_parallel(&raw);
    let mut folded = Folded {
        cluster: ClusterState::default(),
        next_seq: BTreeMap::new(),
    };
    for ((run, seq, _), record) in raw.iter().zip(decoded) {
        let (run, seq) = (*run, *seq);
        let expected = folded.next_seq.get(&run).copied().unwrap_or(1);
        if seq.0 != expected {
            return Err(corrupt(
                run,
                seq,
                format!("expected record {expected} of the run here; records are missing"),
            ));
        }
        let record = record.map_err(|e| corrupt(run, seq, e.to_string()))?;
        folded
            .cluster
            .admits(run, &record.event)
            .map_err(|e| corrupt(run, seq, e.to_string()))?;
        folded.cluster.apply_admitted(run, seq, record);
        folded.next_seq.insert(run, seq.0 + 1);
    }
    Ok(folded)
}

fn decode_parallel<B: AsRef<[u8]> + Sync>(
    raw: &[(RunId, Seq, B)],
) -> Vec<Result<Record, DecodeError>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads < 2 || raw.len() < 4096 {
        return raw
            .iter()
            .map(|(_, _, v)| event::decode(v.as_ref()))
            .collect();
    }
    let chunk = raw.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = raw
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|(_, _, v)| event::decode(v.as_ref()))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| match h.join() {
                Ok(part) => part,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

static CRASH_AT: OnceLock<Option<u64>> = OnceLock::new();
static DURABLE_APPENDS: AtomicU64 = AtomicU64::new(0);

/// Reads `LOKO_CRASH_AT_APPEND` once per process.
fn crash_point() -> Result<Option<u64>, JournalError> {
    let raw = std::env::var(CRASH_AT_APPEND_ENV).ok();
    let parsed = match raw.as_deref() {
        None | Some("") => None,
        Some(text) => match text.trim().parse::<u64>() {
            Ok(k) if k > 0 => Some(k),
            _ => return Err(JournalError::BadCrashPoint(text.to_owned())),
        },
    };
    Ok(*CRASH_AT.get_or_init(|| parsed))
}

fn crash_if_asked() {
    let n = DURABLE_APPENDS.fetch_add(1, Ordering::SeqCst) + 1;
    if CRASH_AT.get().copied().flatten() == Some(n) {
        // SIGKILL rather than abort(): no core dump, no handler, no destructor, like `kill -9`.
        // SAFETY: kill(2) on our own pid has no memory-safety preconditions.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}
