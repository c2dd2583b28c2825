//! The etcd store's keys beside the records: the identity slot, and the assets under `a/`
//! (written with the records that depend on them). Read without the lease, written only under
//! it.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::EtcdStore;
use super::client::{b64, first_kv, unb64};
use crate::store::Key;
use crate::store::StoreError;
use crate::store::seam::AssetPut;

impl EtcdStore {
    /// The value of key `name` under the prefix, if it exists.
    pub(super) fn get_slot(&self, name: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let resp = self
            .conn
            .post("/v3/kv/range", json!({"key": b64(&self.conn.key(name))}))?;
        Ok(first_kv(&resp).map(|kv| unb64(&kv["value"])))
    }

    /// Puts key `name` under the prefix in one transaction guarded by the lease: a holder that
    /// lost the journal writes nothing.
    pub(super) fn put_slot(&self, name: &[u8], bytes: &[u8]) -> Result<(), StoreError> {
        self.check_lease()?;
        self.fenced_txn(vec![
            json!({"request_put": {"key": b64(&self.conn.key(name)), "value": b64(bytes)}}),
        ])
    }
}

/// What the assets of one batch of records may add to its transaction, so that it stays under
/// etcd's limits with the records.
const ASSET_OPS_PER_TXN: usize = super::MAX_RECORDS_PER_TXN / 2;

impl EtcdStore {
    /// The operation that writes (or deletes) one asset under `a/`.
    pub(super) fn asset_op(&self, asset: &AssetPut) -> Value {
        let mut key = self.conn.key(b"a/");
        key.extend_from_slice(asset.path.as_bytes());
        match &asset.value {
            Some(v) => json!({"request_put": {"key": b64(&key), "value": b64(v)}}),
            None => json!({"request_delete_range": {"key": b64(&key)}}),
        }
    }

    /// Writes `assets` in as few transactions guarded by the lease as etcd's limits allow.
    pub(super) fn write_assets(&self, assets: &[AssetPut]) -> Result<(), StoreError> {
        self.check_lease()?;
        let mut start = 0;
        while start < assets.len() {
            let end = start + fitting(&assets[start..], 0, 0).max(1);
            let ops: Vec<Value> = assets[start..end]
                .iter()
                .map(|a| self.asset_op(a))
                .collect();
            self.fenced_txn(ops)?;
            start = end;
        }
        Ok(())
    }

    /// How many of `records` go in the next transaction, and the assets that go with them
    /// (taken out of `assets`). Assets too many or too large to share the first record's
    /// transaction are written ahead of it, alone.
    pub(super) fn next_batch(
        &self,
        records: &[(Key, Vec<u8>)],
        assets: &mut BTreeMap<Key, Vec<AssetPut>>,
    ) -> Result<(usize, Vec<AssetPut>), StoreError> {
        let mut puts: Vec<AssetPut> = Vec::new();
        let (mut ops, mut bytes) = (0, 0);
        for (n, (key, value)) in records.iter().enumerate() {
            let own = assets.get(key).map_or(&[][..], |a| &a[..]);
            let own_bytes: usize = own.iter().map(size).sum();
            let fits_alone = fitting(own, 0, value.len()) == own.len();
            if n == 0 && !fits_alone {
                self.write_assets(own)?;
                assets.remove(key);
            } else if puts.len() + own.len() > ASSET_OPS_PER_TXN
                || ops >= super::MAX_RECORDS_PER_TXN - puts.len() - own.len()
                || (n > 0 && bytes + own_bytes + value.len() > super::MAX_TXN_BYTES)
            {
                return Ok((n, puts));
            } else if let Some(own) = assets.remove(key) {
                puts.extend(own);
            }
            ops += 1;
            bytes += own_bytes + value.len();
        }
        Ok((records.len(), puts))
    }

    /// Puts what was not written back in the pending list, ahead of later appends; returns `e`.
    pub(super) fn keep_pending(
        &self,
        rest: &[(Key, Vec<u8>)],
        mut assets: BTreeMap<Key, Vec<AssetPut>>,
        e: StoreError,
    ) -> StoreError {
        let mut p = self.lock_pending();
        let mut records = rest.to_vec();
        records.append(&mut p.records);
        p.records = records;
        assets.append(&mut p.assets);
        p.assets = assets;
        e
    }
}

/// The stored size of one asset.
fn size(asset: &AssetPut) -> usize {
    asset.path.len() + asset.value.as_ref().map_or(0, Vec::len)
}

/// How many of `assets`, from the first, fit in a transaction that already holds `ops`
/// operations of `bytes`.
fn fitting(assets: &[AssetPut], ops: usize, bytes: usize) -> usize {
    let mut bytes = bytes;
    assets
        .iter()
        .take(ASSET_OPS_PER_TXN.saturating_sub(ops))
        .take_while(|a| {
            bytes += size(a);
            bytes <= super::MAX_TXN_BYTES
        })
        .count()
}
