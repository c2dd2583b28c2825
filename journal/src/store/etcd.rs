//! The shared store: etcd v3, spoken through its own gRPC gateway (JSON over HTTP).
//!
//! Why the gateway and not the `etcd-client` crate: etcd-client compiles etcd's protobuf files
//! in its build script with tonic-build, which needs a system `protoc`, and loko must build on
//! a fresh machine with nothing but Rust. etcd serves every call loko needs as JSON at
//! `/v3/kv/range`, `/v3/kv/txn`, `/v3/lease/{grant,keepalive,revoke,timetolive}` and
//! `/v3/watch` (keys and values base64), through reqwest, which loko already uses.
//!
//! Layout, under `/loko/v1/<prefix>/`:
//! - `lock`: the holder's name, put bound to its lease. Its creation revision is the **fence**:
//!   etcd revisions only grow, so every new holder's fence is larger than every earlier one's.
//! - `head`: the key of the last record, the position the next append expects.
//! - `e/<run><seq>`: the records, the journal's own 16-byte keys (big-endian, so etcd's byte
//!   order is journal order) and values (`crc32 ++ JSON`; over 256 KiB, deflated: see
//!   [`packing`]).
//! - `identity`: which cluster the journal belongs to (see [`crate::ClusterIdentity`]).
//! - `snap` and `s/<generation><chunk>`: the snapshot, in chunks under etcd's request limit.
//!
//! Every append is one transaction comparing the lock key's creation revision with the fence,
//! its lease with ours and `head` with the expected position: a holder that was paused or cut
//! off past its lease's TTL, while another took the lock, can never write again; it gets
//! [`StoreError::Fenced`]. The lease is kept alive at a third of its TTL; when the holder dies
//! the lease expires and etcd deletes the lock key, freeing the journal without anyone's help.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::seam::{AssetPut, Bytes, Key, Lease, Records, Store, StoreError};
use crate::clock::now_ms;

mod client;
mod config;
mod follow;
mod limits;
mod packing;
mod slots;

use client::{Client, Connection, b64, first_kv, int, prefix_end, unb64};
pub use config::{EtcdConfig, EtcdTls, LockInfo};
use limits::{MAX_RECORDS_PER_TXN, MAX_TXN_BYTES};

/// What has been appended and not yet flushed.
#[derive(Default)]
struct Pending {
    /// The key of the last record appended (durable or not).
    head: Option<Key>,
    /// The key of the last durable record.
    durable: Option<Key>,
    records: Vec<(Key, Vec<u8>)>,
    /// The assets to write with (or before) the record of each key.
    assets: std::collections::BTreeMap<Key, Vec<AssetPut>>,
    snapshot: Option<Vec<u8>>,
}

/// An etcd journal, held by this process under a lease (see the module docs).
pub struct EtcdStore {
    location: String,
    lease: Lease,
    /// 0 for a store opened only to read.
    lease_id: i64,
    pending: Mutex<Pending>,
    /// Why the lease is known lost (by the keep-alive), if it is.
    lost: Arc<Mutex<Option<String>>>,
    stop_keepalive: Arc<AtomicBool>,
    // Declared last: dropped after the lease is revoked in `drop`.
    conn: Connection,
}

impl EtcdStore {
    /// Takes the journal's lock under a new lease, or reports who holds it.
    pub fn acquire(config: &EtcdConfig) -> Result<EtcdStore, StoreError> {
        let conn = Connection::open(config)?;
        let ttl = config.ttl.as_secs().max(1);
        let grant = conn.post("/v3/lease/grant", json!({"TTL": ttl.to_string()}))?;
        let lease_id = int(&grant["ID"]);
        if lease_id == 0 {
            return Err(StoreError::Failed(format!(
                "etcd granted no lease: {grant}"
            )));
        }
        let holder = format!(
            "{}, since {}",
            crate::lock::whoami(),
            crate::lock::human_time(now_ms())
        );
        let lock = b64(&conn.key(b"lock"));
        let txn = conn.post(
            "/v3/kv/txn",
            json!({
                "compare": [{"target": "CREATE", "key": lock, "result": "EQUAL", "create_revision": "0"}],
                "success": [{"request_put": {"key": lock, "value": b64(holder.as_bytes()), "lease": lease_id.to_string()}}],
                "failure": [],
            }),
        )?;
        if txn["succeeded"].as_bool() != Some(true) {
            let _ = conn.revoke(lease_id);
            let holder = match conn.lock_info()? {
                Some(info) => info.to_string(),
                None => "a holder that just released it; try again".to_owned(),
            };
            return Err(StoreError::Held { holder });
        }
        let fence = int(&txn["header"]["revision"]) as u64;
        let head = conn.post("/v3/kv/range", json!({"key": b64(&conn.key(b"head"))}))?;
        let head = first_kv(&head).and_then(|kv| Key::try_from(&unb64(&kv["value"])[..]).ok());
        let lost = Arc::new(Mutex::new(None));
        let stop_keepalive = Arc::new(AtomicBool::new(false));
        conn.handle.spawn(keep_alive(
            conn.client.clone(),
            lease_id,
            config.ttl,
            Arc::clone(&lost),
            Arc::clone(&stop_keepalive),
        ));
        Ok(EtcdStore {
            location: config.url(),
            lease: Lease { holder, fence },
            lease_id,
            pending: Mutex::new(Pending {
                head,
                durable: head,
                ..Pending::default()
            }),
            lost,
            stop_keepalive,
            conn,
        })
    }

    /// Opens the journal to read it while another process may hold it: no lease, and every
    /// append is refused.
    pub fn read_only(config: &EtcdConfig) -> Result<EtcdStore, StoreError> {
        let conn = Connection::open(config)?;
        Ok(EtcdStore {
            location: config.url(),
            lease: Lease {
                holder: "nobody (read only)".to_owned(),
                fence: 0,
            },
            lease_id: 0,
            pending: Mutex::new(Pending::default()),
            lost: Arc::new(Mutex::new(Some("opened to read only".to_owned()))),
            stop_keepalive: Arc::new(AtomicBool::new(true)),
            conn,
        })
    }

    /// Who holds the journal at `config`, if anyone.
    pub fn holder(config: &EtcdConfig) -> Result<Option<LockInfo>, StoreError> {
        Connection::open(config)?.lock_info()
    }

    /// Revokes the lease of the journal's holder, freeing the journal at once; returns who
    /// held it. The holder, if alive, is fenced: its next append is refused.
    pub fn force_unlock(config: &EtcdConfig) -> Result<Option<LockInfo>, StoreError> {
        let conn = Connection::open(config)?;
        let info = conn.lock_info()?;
        if let Some(info) = &info {
            conn.revoke(info.lease)?;
        }
        Ok(info)
    }

    /// Copies records and the snapshot into this store's journal, which must be empty: for
    /// `loko journal push`.
    pub fn import(
        &self,
        records: impl Iterator<Item = Result<(Key, Vec<u8>), StoreError>>,
    ) -> Result<u64, StoreError> {
        let mut n = 0;
        let mut batch = Vec::new();
        for item in records {
            batch.push(item?);
            n += 1;
            if batch.len() >= 4 * MAX_RECORDS_PER_TXN {
                self.append_now(std::mem::take(&mut batch))?;
            }
        }
        self.append_now(batch)?;
        Ok(n)
    }

    fn append_now(&self, records: Vec<(Key, Vec<u8>)>) -> Result<(), StoreError> {
        let head = self.lock_pending().head;
        self.append(head, records, Vec::new())?;
        self.flush()
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn check_lease(&self) -> Result<(), StoreError> {
        match self.lost.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            Some(why) => Err(StoreError::Fenced(why.clone())),
            None => Ok(()),
        }
    }

    /// Runs `ops` in one transaction guarded by [`EtcdStore::lease_compares`]: refused
    /// (`Fenced`) when the lock changed hands since this holder took it.
    pub(super) fn fenced_txn(&self, ops: Vec<Value>) -> Result<(), StoreError> {
        let resp = self.conn.post(
            "/v3/kv/txn",
            json!({"compare": self.lease_compares(), "success": ops}),
        )?;
        match resp["succeeded"].as_bool() {
            Some(true) => Ok(()),
            _ => Err(StoreError::Fenced("the lock changed hands".to_owned())),
        }
    }

    /// The transaction's guards: the lock is still ours (same fence, same lease).
    fn lease_compares(&self) -> Vec<Value> {
        let lock = b64(&self.conn.key(b"lock"));
        vec![
            json!({"target": "CREATE", "key": lock, "result": "EQUAL", "create_revision": self.lease.fence.to_string()}),
            json!({"target": "LEASE", "key": lock, "result": "EQUAL", "lease": self.lease_id.to_string()}),
        ]
    }

    /// Writes one transaction of records after `durable`; returns the new durable head.
    fn write_batch(
        &self,
        durable: Option<Key>,
        batch: &[(Key, Vec<u8>)],
        assets: &[AssetPut],
    ) -> Result<Option<Key>, StoreError> {
        let Some((last, _)) = batch.last() else {
            return Ok(durable);
        };
        let head_key = b64(&self.conn.key(b"head"));
        let mut compare = self.lease_compares();
        compare.push(match durable {
            None => json!({"target": "CREATE", "key": head_key, "result": "EQUAL", "create_revision": "0"}),
            Some(k) => json!({"target": "VALUE", "key": head_key, "result": "EQUAL", "value": b64(&k)}),
        });
        // The assets first: the records that depend on them never go without them.
        let mut success: Vec<Value> = assets.iter().map(|a| self.asset_op(a)).collect();
        success.extend(batch.iter().map(|(k, v)| {
            let mut key = self.conn.key(b"e/");
            key.extend_from_slice(k);
            json!({"request_put": {"key": b64(&key), "value": b64(v)}})
        }));
        success.push(json!({"request_put": {"key": head_key, "value": b64(last)}}));
        let lock = b64(&self.conn.key(b"lock"));
        let resp = self.conn.post(
            "/v3/kv/txn",
            json!({
                "compare": compare,
                "success": success,
                "failure": [
                    {"request_range": {"key": lock}},
                    {"request_range": {"key": head_key}},
                ],
            }),
        )?;
        if resp["succeeded"].as_bool() == Some(true) {
            return Ok(Some(*last));
        }
        let responses = resp["responses"].as_array().cloned().unwrap_or_default();
        let range = |i: usize| {
            responses
                .get(i)
                .and_then(|r| r["response_range"]["kvs"].as_array())
                .and_then(|kvs| kvs.first().cloned())
        };
        let lock_kv = range(0);
        let ours = lock_kv.as_ref().is_some_and(|kv| {
            int(&kv["create_revision"]) as u64 == self.lease.fence
                && int(&kv["lease"]) == self.lease_id
        });
        if !ours {
            let reason = match lock_kv {
                Some(kv) => format!(
                    "the journal's lock is now held by {} (fence {}, ours {})",
                    String::from_utf8_lossy(&unb64(&kv["value"])),
                    int(&kv["create_revision"]),
                    self.lease.fence
                ),
                None => format!(
                    "the journal's lock (fence {}) is gone: the lease expired or was revoked",
                    self.lease.fence
                ),
            };
            *self.lost.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason.clone());
            return Err(StoreError::Fenced(reason));
        }
        let found = range(1).and_then(|kv| Key::try_from(&unb64(&kv["value"])[..]).ok());
        if found == Some(*last) {
            // An earlier try of this very transaction was applied and its answer lost.
            return Ok(found);
        }
        Err(StoreError::Conflict {
            expected: super::seam::describe_key(durable),
            found: super::seam::describe_key(found),
        })
    }

    /// Stores a snapshot in chunks under a new generation, then points `snap` at it and
    /// deletes the previous generation, in one transaction guarded by the lease.
    fn write_snapshot(&self, bytes: &[u8]) -> Result<(), StoreError> {
        let generation = now_ms().max(1);
        let chunks: Vec<&[u8]> = bytes.chunks(MAX_TXN_BYTES).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let mut key = self.conn.key(b"s/");
            key.extend_from_slice(&generation.to_be_bytes());
            key.extend_from_slice(&(i as u32).to_be_bytes());
            self.fenced_txn(vec![
                json!({"request_put": {"key": b64(&key), "value": b64(chunk)}}),
            ])?;
        }
        let meta_key = b64(&self.conn.key(b"snap"));
        let mut meta = generation.to_be_bytes().to_vec();
        meta.extend_from_slice(&(chunks.len() as u32).to_be_bytes());
        meta.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        let mut ops = vec![json!({"request_put": {"key": meta_key, "value": b64(&meta)}})];
        if let Some(old) = self.snapshot_meta()? {
            let mut from = self.conn.key(b"s/");
            from.extend_from_slice(&old.0.to_be_bytes());
            ops.push(json!({"request_delete_range": {"key": b64(&from), "range_end": b64(&prefix_end(&from))}}));
        }
        self.fenced_txn(ops)
    }

    /// The snapshot's generation, chunk count and length.
    fn snapshot_meta(&self) -> Result<Option<(u64, u32, u64)>, StoreError> {
        let resp = self
            .conn
            .post("/v3/kv/range", json!({"key": b64(&self.conn.key(b"snap"))}))?;
        let Some(kv) = first_kv(&resp) else {
            return Ok(None);
        };
        let v = unb64(&kv["value"]);
        let (Some(g), Some(c), Some(l)) = (v.get(..8), v.get(8..12), v.get(12..20)) else {
            return Ok(None);
        };
        let num = |b: &[u8]| b.iter().fold(0u64, |n, x| n << 8 | u64::from(*x));
        Ok(Some((num(g), num(c) as u32, num(l))))
    }
}

impl Store for EtcdStore {
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
        self.check_lease()?;
        // Deflating a large record takes milliseconds: before the lock, not while the
        // committer's flush waits for it.
        let records = records
            .into_iter()
            .map(|(key, value)| Ok((key, packing::pack(value)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let mut pending = self.lock_pending();
        if pending.head != after {
            return Err(StoreError::Conflict {
                expected: super::seam::describe_key(after),
                found: super::seam::describe_key(pending.head),
            });
        }
        if let Some((first, _)) = records.first()
            && !assets.is_empty()
        {
            pending.assets.entry(*first).or_default().extend(assets);
        }
        if let Some((last, _)) = records.last() {
            pending.head = Some(*last);
        }
        pending.records.extend(records);
        Ok(())
    }

    fn keeps_assets(&self) -> bool {
        true
    }

    fn put_assets(&self, assets: Vec<AssetPut>) -> Result<(), StoreError> {
        self.write_assets(&assets)
    }

    fn assets(&self) -> Records<'_> {
        let prefix = self.conn.key(b"a/");
        let end = prefix_end(&prefix);
        self.conn.range_pages(prefix, end)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.check_lease()?;
        // One flush at a time (the committer's), so the pending list is taken whole and
        // written in order.
        let (records, mut assets, snapshot, mut durable) = {
            let mut p = self.lock_pending();
            let assets = std::mem::take(&mut p.assets);
            (
                std::mem::take(&mut p.records),
                assets,
                p.snapshot.take(),
                p.durable,
            )
        };
        if records.is_empty() && snapshot.is_none() {
            return Ok(());
        }
        let mut start = 0;
        while start < records.len() {
            let (end, puts) = match self.next_batch(&records[start..], &mut assets) {
                Ok((n, puts)) => (start + n, puts),
                Err(e) => return Err(self.keep_pending(&records[start..], assets, e)),
            };
            match self.write_batch(durable, &records[start..end], &puts) {
                Ok(head) => {
                    durable = head;
                    self.lock_pending().durable = durable;
                }
                Err(e) => {
                    // Back with the first record not written, ahead of its own.
                    let first = assets.entry(records[start].0).or_default();
                    first.splice(0..0, puts);
                    return Err(self.keep_pending(&records[start..], assets, e));
                }
            }
            start = end;
        }
        if let Some(bytes) = snapshot {
            // Derived data: a snapshot that could not be written costs the next open time,
            // never a record (they are durable by now). A lost lease surfaces at the next
            // append.
            let _ = self.write_snapshot(&bytes);
        }
        Ok(())
    }

    fn scan_after(&self, after: Option<Key>) -> Records<'_> {
        let prefix = self.conn.key(b"e/");
        let from = match after {
            None => prefix.clone(),
            Some(k) => {
                let mut from = prefix.clone();
                from.extend_from_slice(&k);
                from.push(0);
                from
            }
        };
        self.conn.range_pages(from, prefix_end(&prefix))
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Records<'_> {
        let mut from = self.conn.key(b"e/");
        from.extend_from_slice(prefix);
        let end = prefix_end(&from);
        self.conn.range_pages(from, end)
    }

    fn contains(&self, key: Key) -> Result<bool, StoreError> {
        let mut k = self.conn.key(b"e/");
        k.extend_from_slice(&key);
        let resp = self
            .conn
            .post("/v3/kv/range", json!({"key": b64(&k), "count_only": true}))?;
        Ok(int(&resp["count"]) > 0)
    }

    fn put_snapshot(&self, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.check_lease()?;
        self.lock_pending().snapshot = Some(bytes);
        Ok(())
    }

    fn snapshot(&self) -> Result<Option<Bytes>, StoreError> {
        let Some((generation, count, len)) = self.snapshot_meta()? else {
            return Ok(None);
        };
        let mut from = self.conn.key(b"s/");
        from.extend_from_slice(&generation.to_be_bytes());
        let resp = self.conn.post(
            "/v3/kv/range",
            json!({"key": b64(&from), "range_end": b64(&prefix_end(&from))}),
        )?;
        let kvs = resp["kvs"].as_array().cloned().unwrap_or_default();
        if kvs.len() != count as usize {
            return Ok(None);
        }
        let bytes: Vec<u8> = kvs.iter().flat_map(|kv| unb64(&kv["value"])).collect();
        Ok((bytes.len() as u64 == len).then_some(Bytes::Owned(bytes)))
    }

    fn identity(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.get_slot(b"identity")
    }

    fn put_identity(&self, bytes: &[u8]) -> Result<(), StoreError> {
        self.put_slot(b"identity", bytes)
    }

    #[cfg(feature = "testing")]
    fn overwrite_raw(&self, key: Key, value: &[u8]) -> Result<(), StoreError> {
        let mut k = self.conn.key(b"e/");
        k.extend_from_slice(&key);
        self.conn
            .post("/v3/kv/put", json!({"key": b64(&k), "value": b64(value)}))
            .map(|_| ())
    }
}

impl Drop for EtcdStore {
    fn drop(&mut self) {
        self.stop_keepalive.store(true, Ordering::Relaxed);
        if self.lease_id != 0 {
            // Frees the journal at once rather than after the TTL. A failure leaves the lease
            // to expire.
            let lease = self.lease_id;
            let _ = self.conn.call(move |c| async move {
                c.post("/v3/lease/revoke", &json!({"ID": lease.to_string()}))
                    .await
                    .map(|_| ())
            });
        }
    }
}

/// Renews the lease every third of its TTL until stopped; records why when it is lost.
async fn keep_alive(
    client: Client,
    lease: i64,
    ttl: Duration,
    lost: Arc<Mutex<Option<String>>>,
    stop: Arc<AtomicBool>,
) {
    let mut renewed = Instant::now();
    let body = json!({"ID": lease.to_string()});
    loop {
        tokio::time::sleep(ttl / 3).await;
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let why = match client.post("/v3/lease/keepalive", &body).await {
            Ok(resp) if int(&resp["result"]["TTL"]) > 0 => {
                renewed = Instant::now();
                continue;
            }
            Ok(_) => format!("the lease {lease:x} expired or was revoked"),
            Err(_) if renewed.elapsed() < ttl => continue,
            Err(e) => format!(
                "the lease {lease:x} could not be renewed for {}s: {e}",
                ttl.as_secs()
            ),
        };
        *lost.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
        return;
    }
}
