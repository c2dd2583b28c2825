//! The embedded store: a sled database in the journal's directory, held by an OS file lock.
//!
//! sled 0.34 has had no release since 2021 (1.0 is an alpha), so everything loko needs from it
//! is this small surface: ordered inserts, a durable flush, ordered scans, and one slot for
//! the latest snapshot of the fold. Swapping it for another embedded store (redb, fjall, or an
//! append-only file) means rewriting this file only.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::seam::{AssetPut, Bytes, Key, Lease, Records, Store, StoreError};
use crate::lock::{self, RunLock};

/// A journal directory: `LOCK` (the OS lock naming its holder) and `events` (the sled
/// database, one tree `events` of records and one tree `snapshots`).
pub struct SledStore {
    location: String,
    dir: PathBuf,
    lease: Lease,
    db: sled::Db,
    events: sled::Tree,
    snapshots: sled::Tree,
    /// The key of the last record appended (durable or not).
    head: Mutex<Option<Key>>,
    // Declared last so it is released after the database is closed.
    _lock: RunLock,
}

/// The key of the one snapshot kept.
const LATEST: &[u8] = b"latest";

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Failed(e.to_string())
    }
}

impl SledStore {
    /// Creates the directory `dir` (mode 0700) if needed, takes its lock or reports the holder,
    /// and opens the database.
    pub fn acquire(dir: &Path) -> Result<SledStore, StoreError> {
        let location = dir.display().to_string();
        let failed = |e: std::io::Error| StoreError::Failed(e.to_string());
        create_private_dir(dir).map_err(failed)?;
        let lock = RunLock::acquire(&dir.join("LOCK"), dir).map_err(|e| match e {
            lock::LockError::Held { holder, .. } => StoreError::Held { holder },
            lock::LockError::Io { source, .. } => failed(source),
        })?;
        let db = sled::Config::new()
            .path(dir.join("events"))
            // Durability comes from explicit flushes after each group of appends; sled's own
            // periodic flush would only add fsyncs.
            .flush_every_ms(None)
            .open()?;
        let events = db.open_tree("events")?;
        let snapshots = db.open_tree("snapshots")?;
        let head = events.last()?.and_then(|(k, _)| Key::try_from(&k[..]).ok());
        Ok(SledStore {
            location,
            dir: dir.to_owned(),
            lease: Lease {
                holder: lock::whoami(),
                fence: 0,
            },
            db,
            events,
            snapshots,
            head: Mutex::new(head),
            _lock: lock,
        })
    }

    /// The file of the identity slot in journal directory `dir`: a file beside the database,
    /// so that commands that only read can check it while a run holds the database.
    pub fn identity_path(dir: &Path) -> PathBuf {
        dir.join("IDENTITY")
    }

    fn wrap<'a>(
        iter: impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>> + 'a,
    ) -> Records<'a> {
        // Keys and values are borrowed from sled's cache, not copied.
        Box::new(iter.map(|r| {
            r.map(|(k, v)| (Bytes::Embedded(k), Bytes::Embedded(v)))
                .map_err(StoreError::from)
        }))
    }
}

impl Store for SledStore {
    fn location(&self) -> &str {
        &self.location
    }

    fn lease(&self) -> &Lease {
        &self.lease
    }

    fn append(
        &self,
        after: Option<Key>,
        records: Vec<(Key, Vec<u8>)>,
        assets: Vec<AssetPut>,
    ) -> Result<(), StoreError> {
        if !assets.is_empty() {
            return Err(super::seam::no_assets());
        }
        // The OS lock makes this process the only writer, so the head kept in memory is the
        // store's; the check catches a caller that lost track of it.
        let mut head = self.head.lock().unwrap_or_else(|e| e.into_inner());
        if *head != after {
            return Err(StoreError::Conflict {
                expected: super::seam::describe_key(after),
                found: super::seam::describe_key(*head),
            });
        }
        for (key, value) in records {
            self.events.insert(key, value)?;
            *head = Some(key);
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    fn scan_after(&self, after: Option<Key>) -> Records<'_> {
        use std::ops::Bound;
        match after {
            None => Self::wrap(self.events.iter()),
            Some(key) => Self::wrap(
                self.events
                    .range::<Key, _>((Bound::Excluded(key), Bound::Unbounded)),
            ),
        }
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Records<'_> {
        Self::wrap(self.events.scan_prefix(prefix))
    }

    fn contains(&self, key: Key) -> Result<bool, StoreError> {
        Ok(self.events.contains_key(key)?)
    }

    fn put_snapshot(&self, bytes: Vec<u8>) -> Result<(), StoreError> {
        // sled writes in order, so the flush that makes this durable makes every record
        // inserted before it durable too.
        self.snapshots.insert(LATEST, bytes)?;
        Ok(())
    }

    fn snapshot(&self) -> Result<Option<Bytes>, StoreError> {
        Ok(self.snapshots.get(LATEST)?.map(Bytes::Embedded))
    }

    fn identity(&self) -> Result<Option<Vec<u8>>, StoreError> {
        match std::fs::read(Self::identity_path(&self.dir)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::Failed(e.to_string())),
        }
    }

    fn put_identity(&self, bytes: &[u8]) -> Result<(), StoreError> {
        write_durably(&Self::identity_path(&self.dir), bytes)
            .map_err(|e| StoreError::Failed(format!("identity: {e}")))
    }

    #[cfg(feature = "testing")]
    fn overwrite_raw(&self, key: Key, value: &[u8]) -> Result<(), StoreError> {
        self.events.insert(key, value)?;
        self.flush()
    }
}

/// Writes `path` whole or not at all: a temporary file, fsynced, renamed over it, and the
/// directory fsynced.
fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    match path.parent() {
        Some(dir) => std::fs::File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}
