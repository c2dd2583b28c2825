//! The journal's errors. Apart from `lib.rs` so that the crate's files import them without
//! importing the crate's root.

use std::path::{Path, PathBuf};

use crate::cluster_identity::ClusterIdentity;
use crate::crash::CRASH_AT_APPEND_ENV;
use crate::fold::FoldError;
use crate::ids::{RunId, Seq};
use crate::store::StoreError;

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
