//! The storage behind the journal: the only module that knows sled.
//!
//! sled 0.34 has had no release since 2021 (1.0 is an alpha), so everything loko needs from it
//! is this small surface: ordered inserts, a durable flush, ordered scans, and one slot for
//! the latest snapshot of the fold. Swapping it for
//! another embedded store (redb, fjall, or an append-only file) means rewriting this file only.

use std::path::Path;

/// Bytes as the store hands them out (derefs to `[u8]`).
pub(crate) type Bytes = sled::IVec;

/// An ordered, durable key-value store of journal records.
pub(crate) struct Store {
    db: sled::Db,
    events: sled::Tree,
    snapshots: sled::Tree,
}

/// The key of the one snapshot kept.
const LATEST: &[u8] = b"latest";

/// A storage failure; the text is sled's.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(String);

impl StoreError {
    pub(crate) fn from_text(text: String) -> StoreError {
        StoreError(text)
    }
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError(e.to_string())
    }
}

impl Store {
    pub(crate) fn open(dir: &Path) -> Result<Store, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            // Durability comes from explicit flushes after each group of appends; sled's own
            // periodic flush would only add fsyncs.
            .flush_every_ms(None)
            .open()?;
        let events = db.open_tree("events")?;
        let snapshots = db.open_tree("snapshots")?;
        Ok(Store {
            db,
            events,
            snapshots,
        })
    }

    /// Inserts a record; it is durable only after the next [`Store::flush`].
    pub(crate) fn insert(&self, key: [u8; 16], value: Vec<u8>) -> Result<(), StoreError> {
        self.events.insert(key, value)?;
        Ok(())
    }

    /// Makes every insert so far durable (written and fsynced).
    pub(crate) fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// Every record in key order. Keys and values are borrowed from sled's cache, not copied.
    pub(crate) fn scan(&self) -> impl Iterator<Item = Result<(Bytes, Bytes), StoreError>> + '_ {
        self.events.iter().map(|r| r.map_err(StoreError::from))
    }

    /// The records whose keys sort after `key`, in key order.
    pub(crate) fn scan_after(
        &self,
        key: [u8; 16],
    ) -> impl Iterator<Item = Result<(Bytes, Bytes), StoreError>> + '_ {
        use std::ops::Bound;
        self.events
            .range::<[u8; 16], _>((Bound::Excluded(key), Bound::Unbounded))
            .map(|r| r.map_err(StoreError::from))
    }

    /// True when a record with this key exists.
    pub(crate) fn contains(&self, key: [u8; 16]) -> Result<bool, StoreError> {
        Ok(self.events.contains_key(key)?)
    }

    /// Replaces the snapshot; durable with the next [`Store::flush`], which also makes every
    /// record inserted before it durable.
    pub(crate) fn put_snapshot(&self, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.snapshots.insert(LATEST, bytes)?;
        Ok(())
    }

    /// The latest snapshot, if one was written.
    pub(crate) fn snapshot(&self) -> Result<Option<Bytes>, StoreError> {
        Ok(self.snapshots.get(LATEST)?)
    }

    /// The records whose keys start with `prefix`, in key order.
    pub(crate) fn scan_prefix(
        &self,
        prefix: &[u8],
    ) -> impl Iterator<Item = Result<(Bytes, Bytes), StoreError>> + '_ {
        self.events
            .scan_prefix(prefix)
            .map(|r| r.map_err(StoreError::from))
    }

    /// Overwrites a record in place. Only for tests that prove damaged records are reported.
    #[doc(hidden)]
    pub(crate) fn overwrite_raw(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.events.insert(key, value)?;
        self.flush()
    }
}
