//! The journal of one cluster: opening (lock, fold), appending, reading back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use tokio::sync::oneshot;

use crate::clock::now_ms;
use crate::committer::Committer;
use crate::crash::{crash_if_asked, crash_point};
use crate::error::{JournalError, store_error};
use crate::event::{self, Event, Record, RecordedSpec, RunKind};
use crate::feed;
use crate::fold::ClusterState;
use crate::ids::{Digest, RunId, Seq, StepId};
use crate::location::Location;
use crate::lock;
use crate::outbox::AssetOutbox;
use crate::par::par_map;
use crate::secrets::Redactor;
use crate::snapshot;
use crate::store::{self, EtcdStore, Lease, SledStore, Store, StoreError};

/// The journal of one cluster. Cheap to share: wrap it in an `Arc`.
pub struct Journal {
    path: PathBuf,
    store: Arc<dyn Store>,
    state: Mutex<Folded>,
    committer: Committer,
    feed: Arc<feed::Feed>,
    /// What every event passes through on its way into the store.
    redactor: Redactor,
    /// The assets to write with each record, when the store keeps them.
    outbox: Mutex<Option<Arc<dyn AssetOutbox>>>,
}

pub(crate) struct Folded {
    pub(crate) cluster: ClusterState,
    next_seq: BTreeMap<RunId, u64>,
    /// The key of the last record, where the next append goes after.
    head: Option<store::Key>,
    /// Records folded since the last snapshot (or since the first record).
    since_snapshot: u64,
}

impl Journal {
    /// Opens (creating if needed) the journal in directory `dir` (the embedded store), locks
    /// it, and folds every record; its events are redacted by the shape rules alone (a fresh
    /// [`Redactor`]).
    pub fn open(dir: &Path) -> Result<Journal, JournalError> {
        Journal::open_redacting(&Location::Dir(dir.to_owned()), Redactor::new())
    }

    /// Opens the journal at `location`: a directory, or etcd; redacting by the shape rules
    /// alone, as [`Journal::open`].
    pub fn open_at(location: &Location) -> Result<Journal, JournalError> {
        Journal::open_redacting(location, Redactor::new())
    }

    /// Opens the journal at `location` for a run: every event it appends passes through
    /// `redactor`, which removes the secret values the run knows (the binary's API token and
    /// AWS keys, what steps add to it later) besides the shapes.
    pub fn open_redacting(
        location: &Location,
        redactor: Redactor,
    ) -> Result<Journal, JournalError> {
        crash_point().map_err(JournalError::BadCrashPoint)?;
        let mut journal = match location {
            Location::Dir(dir) => {
                let store = SledStore::acquire(dir).map_err(|e| store_error(dir, e))?;
                Journal::with_store(Arc::new(store), Some(dir))?
            }
            Location::Etcd(config) => {
                let store = EtcdStore::acquire(config)
                    .map_err(|e| store_error(Path::new(&config.url()), e))?;
                // Readers of an etcd journal watch the store itself; there is no feed file.
                Journal::with_store(Arc::new(store), None)?
            }
        };
        journal.redactor = redactor;
        Ok(journal)
    }

    /// The redactor the journal's events pass through: a step that learns a secret adds it
    /// here, and whatever prints the run's errors redacts with it.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Opens the journal at `location` to read it. An etcd journal is read without its lock,
    /// so while another process holds it (a run in progress); every append is refused. The
    /// embedded store admits one opener, so there this is [`Journal::open_at`].
    pub fn open_read_only(location: &Location) -> Result<Journal, JournalError> {
        match location {
            Location::Dir(_) => Journal::open_at(location),
            Location::Etcd(config) => {
                let store = EtcdStore::read_only(config)
                    .map_err(|e| store_error(Path::new(&config.url()), e))?;
                Journal::with_store(Arc::new(store), None)
            }
        }
    }

    /// Folds what `store` holds and starts appending to it, publishing a feed in `feed_dir`
    /// (the embedded store's directory; readers of an etcd journal watch the store itself).
    pub(crate) fn with_store(
        store: Arc<dyn Store>,
        feed_dir: Option<&Path>,
    ) -> Result<Journal, JournalError> {
        let path = PathBuf::from(store.location());
        let (folded, used, read) = fold_store(&path, store.as_ref())?;
        // What this holder opened with, for readers of the feed (see `feed`): the stored
        // snapshot it used, as stored (nothing is encoded), and the records the fold read after it.
        let feed = match feed_dir {
            None => feed::Feed::none(),
            Some(dir) => {
                let base = used.as_ref().map_or(&[][..], |(bytes, _)| &bytes[..]);
                feed::Feed::start(dir, &lock::whoami(), base, &read)
            }
        };
        let feed = Arc::new(feed);
        let committer =
            Committer::spawn(Arc::clone(&store), Arc::clone(&feed)).map_err(|source| {
                JournalError::Io {
                    path: path.clone(),
                    source,
                }
            })?;
        Ok(Journal {
            path,
            store,
            state: Mutex::new(folded),
            committer,
            feed,
            redactor: Redactor::new(),
            outbox: Mutex::new(None),
        })
    }

    /// Where the journal lives: its directory, or its `etcd://` URL.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The store the journal is in, for the slots beside its records (identity, assets).
    pub(crate) fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// Where appends take the assets to write with their records.
    pub(crate) fn outbox(&self) -> MutexGuard<'_, Option<Arc<dyn AssetOutbox>>> {
        self.outbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The lease this process holds the journal with.
    pub fn lease(&self) -> &Lease {
        self.store.lease()
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
            spec: RecordedSpec::of(&spec),
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
            let (k, v) = item.map_err(|e| store_error(&self.path, e))?;
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
    #[cfg(feature = "testing")]
    pub fn damage_record_for_tests(
        &self,
        run: RunId,
        seq: Seq,
        bytes: &[u8],
    ) -> Result<(), JournalError> {
        self.store
            .overwrite_raw(event::key(run, seq), bytes)
            .map_err(|e| store_error(&self.path, e))
    }

    fn folded(&self) -> MutexGuard<'_, Folded> {
        // A panic while holding the lock cannot leave the fold half-applied: apply only runs
        // after the checks that can fail, so the data is still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn encode(&self, event: &Event) -> Result<Vec<u8>, JournalError> {
        event::encode(now_ms(), event, &self.redactor).map_err(|source| JournalError::Encode {
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
        let key = event::key(run, seq);
        self.feed.queue(run, seq, &bytes);
        // Taken under the state lock: the files a step wrote before this record go with it
        // or with an earlier one.
        let assets = self.outbox().as_ref().map(|o| o.take()).unwrap_or_default();
        self.store
            .append(folded.head, vec![(key, bytes)], assets)
            .map_err(|e| store_error(&self.path, e))?;
        *next += 1;
        folded.head = Some(key);
        folded.cluster.apply_admitted(run, seq, record);
        folded.since_snapshot += 1;
        if folded.since_snapshot >= snapshot::SNAPSHOT_EVERY {
            self.write_snapshot(folded, (run, seq));
        }
        Ok(seq)
    }

    /// Stores a snapshot of the fold up to `last`. It only speeds up the next open, so failing
    /// to write one is not an error of the append that triggered it: the next open uses the
    /// previous snapshot (still true of the records it covers) or folds the records, and a
    /// store that cannot write fails the next flush anyway. Either way the next try is
    /// [`snapshot::SNAPSHOT_EVERY`] events later, not at every append.
    fn write_snapshot(&self, folded: &mut Folded, last: (RunId, Seq)) {
        if let Ok(bytes) = snapshot::encode(last, &folded.next_seq, &folded.cluster) {
            let _ = self.store.put_snapshot(bytes);
        }
        folded.since_snapshot = 0;
    }

    /// Waits until everything inserted so far is durable, sharing the flush with concurrent
    /// appenders.
    async fn commit(&self) -> Result<(), JournalError> {
        let (tx, rx) = oneshot::channel();
        let stopped = || {
            store_error(
                &self.path,
                StoreError::Failed("the flush thread stopped".to_owned()),
            )
        };
        self.committer.send(tx).map_err(|_| stopped())?;
        rx.await
            .map_err(|_| stopped())?
            .map_err(|e| store_error(&self.path, e))?;
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

/// A stored snapshot as stored, and the key of the last record it covers.
type UsedSnapshot = (store::Bytes, store::Key);

/// Folds the store: the latest usable snapshot and the records after it, or every record;
/// with the stored snapshot it started from, if it used one, and the records it read.
pub(crate) fn fold_store(
    dir: &Path,
    store: &dyn Store,
) -> Result<(Folded, Option<UsedSnapshot>, Read), JournalError> {
    if let Some((bytes, snap)) = usable_snapshot(store).map_err(|e| store_error(dir, e))? {
        let after = snapshot::last_key(&snap);
        let folded = Folded {
            cluster: snap.cluster,
            next_seq: snap.next_seq,
            head: Some(after),
            since_snapshot: 0,
        };
        let (folded, read) = fold_records(dir, folded, store.scan_after(Some(after)))?;
        return Ok((folded, Some((bytes, after)), read));
    }
    let (folded, read) = fold_records(dir, Folded::empty(), store.scan_after(None))?;
    Ok((folded, None, read))
}

impl Folded {
    fn empty() -> Folded {
        Folded {
            cluster: ClusterState::default(),
            next_seq: BTreeMap::new(),
            head: None,
            since_snapshot: 0,
        }
    }
}

/// The stored snapshot, if there is one this build can use. A snapshot that cannot be used is
/// ignored (it is derived data; every record is still there), but one that could be read and
/// names a record the store lacks is ignored too: it must never stand in for records that are
/// not durable.
fn usable_snapshot(
    store: &dyn Store,
) -> Result<Option<(store::Bytes, snapshot::Snapshot)>, StoreError> {
    let Some(bytes) = store.snapshot()? else {
        return Ok(None);
    };
    let Ok(snap) = snapshot::decode(&bytes) else {
        return Ok(None);
    };
    Ok(store
        .contains(snapshot::last_key(&snap))?
        .then_some((bytes, snap)))
}

/// The records a fold read, as stored: the feed republishes them without a second scan.
type Read = Vec<(RunId, Seq, store::Bytes)>;

/// Folds `records` (in key order) onto `folded`, checking each against the ones before it;
/// returns the fold and the records as read.
fn fold_records(
    dir: &Path,
    mut folded: Folded,
    records: impl Iterator<Item = Result<(store::Bytes, store::Bytes), StoreError>>,
) -> Result<(Folded, Read), JournalError> {
    let corrupt = |run, seq, reason: String| JournalError::Corrupt {
        path: dir.to_owned(),
        run,
        seq,
        reason,
    };
    let mut raw = Vec::new();
    for item in records {
        let (k, v) = item.map_err(|e| store_error(dir, e))?;
        let (run, seq) = event::parse_key(&k).ok_or_else(|| {
            corrupt(
                RunId(0),
                Seq(0),
                format!("store key {} is not a journal key", hex::encode(&*k)),
            )
        })?;
        raw.push((run, seq, v));
    }
    // Decoding is most of the cost of folding many records and each record decodes on its
    // own, so it is spread over the cores; folding stays sequential, in key order.
    let decoded = if raw.len() < 4096 {
        raw.iter().map(|(_, _, v)| event::decode(v)).collect()
    } else {
        par_map(&raw, |(_, _, v)| event::decode(v))
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
        folded.head = Some(event::key(run, seq));
        folded.since_snapshot += 1;
    }
    Ok((folded, raw))
}

#[cfg(test)]
mod tests;
