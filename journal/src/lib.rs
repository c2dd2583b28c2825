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
//!   holder dies, so a killed run never blocks the next. In etcd ([`Journal::open_at`] with
//!   [`Location::Etcd`]) the lock is a lease with a fence: a holder whose lease lapsed and was
//!   taken over gets [`JournalError::Fenced`] at its next append, never a write (see
//!   [`store`]).
//! - Nothing is skipped on read: a damaged record, one of an unknown format version or one that
//!   contradicts the events before it fails [`Journal::open`] with [`JournalError::Corrupt`],
//!   naming the run and sequence number.
//! - No secrets: step outputs are [`Outputs`], which refuse secret-looking values, and every
//!   event is passed through the journal's [`Redactor`] on the way in (the one it was opened
//!   with: [`Journal::open_redacting`]).
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
//! # Testing aid: `LOKO_CRASH_AT_APPEND` (feature `testing`)
//! Only in a build with this crate's `testing` feature (the test suites enable it), when the
//! environment variable `LOKO_CRASH_AT_APPEND=<k>` is set, the process kills itself
//! with SIGKILL (no destructors, no flush, exactly like `kill -9`) right after the k-th durable
//! append of this process, before that append returns to its caller. The crash suites use it to
//! stop a run at every point where the journal changes and prove that the next run resumes
//! correctly. Never set it outside tests.

mod assets;
mod committer;
mod crash;
mod event;
mod feed;
mod fold;
mod identity;
mod ids;
mod journal;
mod lock;
mod push;
mod secrets;
mod snapshot;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
mod view;

use std::path::{Path, PathBuf};

pub use assets::{AssetOutbox, AssetPut, StoredAssets, stored_assets};
pub use crash::CRASH_AT_APPEND_ENV;
pub use event::{DecodeError, Event, FORMAT_VERSION, Record, RecordedSpec, RunKind, RunOutcome};
pub use feed::{FEED_FILE, FeedLine, follow_etcd, parse_feed_line};
pub use fold::{
    Attempt, AttemptEnd, ClusterState, FoldError, Intent, RunState, StepHistory, StepResult,
};
pub use identity::{ClusterIdentity, recorded_identity};
pub use ids::{Digest, InvalidStepId, RunId, Seq, StepId};
pub use journal::Journal;
pub use lock::human_time;
pub use secrets::{OutputError, Outputs, REDACTED, Redactor, redact_shapes, secret_shape};
pub use snapshot::SNAPSHOT_EVERY;
use store::{EtcdConfig, StoreError};
pub use view::{JournalView, read_state};

/// Where a cluster's journal lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// The embedded store in a directory (by default `<asset_dir>/.loko/journal`).
    Dir(PathBuf),
    /// etcd v3, shared by every machine that reaches it.
    Etcd(EtcdConfig),
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Dir(dir) => write!(f, "{}", dir.display()),
            Location::Etcd(config) => write!(f, "{}", config.url()),
        }
    }
}

/// Errors of the journal. Each names the journal's path.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// Another process holds the journal.
    #[error(
        "journal {path} is locked by another loko ({holder}); wait for it to finish or stop it"
    )]
    Locked { path: PathBuf, holder: String },
    /// This process lost its lease on the journal (it was paused or cut off for longer than
    /// the lease lasts, or its lock was broken by hand) and another may hold it now: the
    /// append was refused and nothing more will be written by this process.
    #[error(
        "journal {path}: fenced: {reason}; this loko no longer holds the journal and stops (the next run resumes)"
    )]
    Fenced { path: PathBuf, reason: String },
    /// The journal does not end where this process expected: someone wrote to it without
    /// holding its lease. The append was refused.
    #[error("journal {path}: {source}")]
    Conflict {
        path: PathBuf,
        #[source]
        source: StoreError,
    },
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
    /// The journal's store could not be reached when it was opened (an etcd that is not
    /// running, or a wrong address).
    #[error("journal {path}: {source}")]
    Unreachable {
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
    /// The journal records another cluster than the one a command was given: nothing was
    /// read or written for it.
    #[error("journal {path} belongs to cluster {recorded}; the spec names {wanted}")]
    OtherCluster {
        path: PathBuf,
        recorded: Box<ClusterIdentity>,
        wanted: Box<ClusterIdentity>,
    },
    /// The recorded identity cannot be read.
    #[error("journal {path}: the cluster's identity record is unreadable: {reason}")]
    BadIdentity { path: PathBuf, reason: String },
    /// `LOKO_CRASH_AT_APPEND` holds something other than a positive number.
    #[error("{CRASH_AT_APPEND_ENV}={0:?} is not a positive number")]
    BadCrashPoint(String),
}

/// The journal's error for a store's.
pub(crate) fn store_error(path: &Path, e: StoreError) -> JournalError {
    let path = path.to_owned();
    match e {
        StoreError::Held { holder } => JournalError::Locked { path, holder },
        StoreError::Fenced(reason) => JournalError::Fenced { path, reason },
        source @ StoreError::Conflict { .. } => JournalError::Conflict { path, source },
        source @ StoreError::Failed(_) => JournalError::Store { path, source },
        source @ StoreError::Unreachable(_) => JournalError::Unreachable { path, source },
    }
}

/// `f` over `items` on every core, results in the order of `items`. For work that is a pure
/// function of each item (decoding records, snapshot chunks) and worth a thread per core.
pub(crate) fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads < 2 || items.len() < 2 {
        return items.iter().map(&f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(f).collect::<Vec<_>>()))
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
