//! What a store is to the journal: its trait, keys, records, lease and errors. Apart from
//! `store.rs` so that the stores below it import them without importing their parent.

use std::ops::Deref;

/// One asset to write with the next record: its path relative to the asset directory and its
/// stored bytes, or `None` to delete it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetPut {
    /// Relative to the asset directory, e.g. `tls/ca.key`.
    pub path: String,
    /// As stored (the caller seals it); `None` removes the asset.
    pub value: Option<Vec<u8>>,
}

/// A record's key: run id and sequence number, each big-endian.
pub type Key = [u8; 16];

/// Bytes as a store hands them out: borrowed from sled's cache, or owned.
pub enum Bytes {
    /// From the embedded store, without a copy.
    Embedded(sled::IVec),
    /// Read over the network.
    Owned(Vec<u8>),
}

impl Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Embedded(b) => b,
            Bytes::Owned(b) => b,
        }
    }
}

/// Records in key order, read lazily.
pub type Records<'a> = Box<dyn Iterator<Item = Result<(Bytes, Bytes), StoreError>> + 'a>;

/// Who holds a store, and the fence that orders holders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// `pid N on host, since T`, as other processes are shown it.
    pub holder: String,
    /// Grows with every new holder (etcd: the lock key's creation revision); an append of an
    /// older fence is refused once a newer one exists. 0 for the embedded store, whose OS lock
    /// cannot be taken over.
    pub fence: u64,
}

/// A storage failure.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// Another process holds the journal.
    #[error("held by another loko ({holder})")]
    Held { holder: String },
    /// This process's lease is gone and another may hold the journal: nothing more may be
    /// written by it.
    #[error("fenced: {0}")]
    Fenced(String),
    /// The journal does not end where the appender expected (a writer that bypassed the lease).
    #[error(
        "sequence conflict: the append expected the journal to end at {expected}, it ends at {found}"
    )]
    Conflict { expected: String, found: String },
    /// The store failed to read or write; the text is the store's.
    #[error("{0}")]
    Failed(String),
    /// No server of the store could be connected to when it was opened (refused, no route,
    /// no such host): a setup problem, not one to wait out.
    #[error("{0}")]
    Unreachable(String),
}

/// The storage of one journal, held by this process (see the module docs). Dropping it
/// releases the lease.
pub trait Store: Send + Sync {
    /// Where the journal lives, for messages: a directory or an `etcd://` URL.
    fn location(&self) -> &str;

    /// The lease this store was acquired with.
    fn lease(&self) -> &Lease;

    /// Appends `records` (keys ascending, each after `after`) right after the record with key
    /// `after` (`None`: the journal is empty), with `assets` written in the same transaction as
    /// the records or in transactions before them (see [`crate::AssetOutbox`]). Durable only
    /// after the next [`Store::flush`]. Refused when the journal does not end at `after`, and
    /// by a store that keeps no assets ([`Store::keeps_assets`]) when `assets` is not empty.
    fn append(
        &self,
        after: Option<Key>,
        records: Vec<(Key, Vec<u8>)>,
        assets: Vec<AssetPut>,
    ) -> Result<(), StoreError>;

    /// True when the store keeps the cluster's assets.
    fn keeps_assets(&self) -> bool {
        false
    }

    /// Writes assets without a record, durably at once and guarded by the lease.
    fn put_assets(&self, assets: Vec<AssetPut>) -> Result<(), StoreError> {
        match assets.is_empty() {
            true => Ok(()),
            false => Err(no_assets()),
        }
    }

    /// The stored assets, keyed by path, in path order (none in a store that keeps none).
    fn assets(&self) -> Records<'_> {
        Box::new(std::iter::empty())
    }

    /// Makes every append and snapshot so far durable.
    fn flush(&self) -> Result<(), StoreError>;

    /// The durable records whose keys sort after `after` (all of them for `None`), in key order.
    fn scan_after(&self, after: Option<Key>) -> Records<'_>;

    /// The durable records whose keys start with `prefix`, in key order.
    fn scan_prefix(&self, prefix: &[u8]) -> Records<'_>;

    /// True when a durable record has this key.
    fn contains(&self, key: Key) -> Result<bool, StoreError>;

    /// Replaces the snapshot; durable with the next [`Store::flush`], after every record
    /// appended before it.
    fn put_snapshot(&self, bytes: Vec<u8>) -> Result<(), StoreError>;

    /// The latest durable snapshot, if one was written.
    fn snapshot(&self) -> Result<Option<Bytes>, StoreError>;

    /// The slot recording which cluster the journal belongs to (see [`crate::ClusterIdentity`]),
    /// if it was written.
    fn identity(&self) -> Result<Option<Vec<u8>>, StoreError>;

    /// Writes the identity slot, durably at once and guarded by the lease as appends are.
    fn put_identity(&self, bytes: &[u8]) -> Result<(), StoreError>;

    /// Overwrites a durable record in place. Only for tests that prove damaged records are
    /// reported.
    #[cfg(feature = "testing")]
    fn overwrite_raw(&self, key: Key, value: &[u8]) -> Result<(), StoreError>;
}

pub(super) fn no_assets() -> StoreError {
    StoreError::Failed(
        "this journal's store keeps no assets: they stay in the asset directory".to_owned(),
    )
}

/// The key's text for messages: `run R record S`.
pub(crate) fn describe_key(key: Option<Key>) -> String {
    match key.and_then(|k| crate::event::parse_key(&k)) {
        Some((run, seq)) => format!("run {run} record {seq}"),
        None => "the start (no record)".to_owned(),
    }
}
