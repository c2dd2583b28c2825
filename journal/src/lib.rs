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
mod clock;
mod cluster_identity;
mod committer;
mod crash;
mod error;
mod event;
mod feed;
mod fold;
mod identity;
mod ids;
mod journal;
mod location;
mod lock;
mod outbox;
mod par;
mod push;
mod secrets;
mod snapshot;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
mod view;

pub use assets::{StoredAssets, stored_assets};
pub use cluster_identity::ClusterIdentity;
pub use crash::CRASH_AT_APPEND_ENV;
pub use error::JournalError;
pub use event::{DecodeError, Event, FORMAT_VERSION, Record, RecordedSpec, RunKind, RunOutcome};
pub use feed::{FEED_FILE, FeedLine, follow_etcd, parse_feed_line};
pub use fold::{
    Attempt, AttemptEnd, ClusterState, FoldError, Intent, RunState, StepHistory, StepResult,
};
pub use identity::recorded_identity;
pub use ids::{Digest, InvalidStepId, RunId, Seq, StepId};
pub use journal::Journal;
pub use location::Location;
pub use lock::human_time;
pub use outbox::AssetOutbox;
pub use secrets::{OutputError, Outputs, REDACTED, Redactor, redact_shapes, secret_shape};
pub use snapshot::SNAPSHOT_EVERY;
pub use store::seam::AssetPut;
pub use view::{JournalView, read_state};
