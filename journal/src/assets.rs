//! The cluster's assets kept in the journal's store, beside its records: on etcd, so that every
//! operator of a team finds the CA, the keys, the kubeconfigs and the pinned host keys where the
//! journal is, and none is ever missing for a record that depends on it.
//!
//! The journal does not know what an asset is: the caller (loko's binary) hands it each file
//! already in its stored form (sealed to the team), through an [`AssetOutbox`]; every append
//! takes what the outbox holds and the store writes it in the same fenced transaction as the
//! record, or in transactions just before it. A step writes its files before its record is
//! appended, so a crash at any append leaves every record's files in the store.
//!
//! The embedded store keeps no assets: a journal in a directory leaves them in the asset
//! directory, as it always did.

use std::path::Path;
use std::sync::Arc;

use crate::error::{JournalError, store_error};
use crate::journal::Journal;
use crate::location::Location;
use crate::outbox::AssetOutbox;
use crate::store::EtcdStore;
use crate::store::seam::{AssetPut, Store};

/// The stored assets, path and stored bytes, in path order.
pub type StoredAssets = Vec<(String, Vec<u8>)>;

impl Journal {
    /// True when this journal's store keeps the assets (etcd); a directory's does not.
    pub fn keeps_assets(&self) -> bool {
        self.store().keeps_assets()
    }

    /// From now on, every append writes what `outbox` holds with its record.
    pub fn attach_assets(&self, outbox: Arc<dyn AssetOutbox>) {
        *self.outbox() = Some(outbox);
    }

    /// The assets the store holds.
    pub fn stored_assets(&self) -> Result<StoredAssets, JournalError> {
        read(self.path(), self.store())
    }

    /// Writes `assets` at once, without a record (e.g. `loko journal push`, which copies an
    /// asset directory into a new journal): fenced and durable when this returns.
    pub fn put_assets(&self, assets: Vec<AssetPut>) -> Result<(), JournalError> {
        self.store()
            .put_assets(assets)
            .map_err(|e| store_error(self.path(), e))
    }
}

/// The assets stored with the journal at `location`, read without its lock (a run may hold
/// it); none for a directory.
pub fn stored_assets(location: &Location) -> Result<StoredAssets, JournalError> {
    match location {
        Location::Dir(_) => Ok(Vec::new()),
        Location::Etcd(config) => {
            let path = Path::new(&config.url()).to_owned();
            let store = EtcdStore::read_only(config).map_err(|e| store_error(&path, e))?;
            read(&path, &store)
        }
    }
}

fn read(path: &Path, store: &dyn Store) -> Result<StoredAssets, JournalError> {
    store
        .assets()
        .map(|item| {
            let (k, v) = item.map_err(|e| store_error(path, e))?;
            let name = String::from_utf8(k.to_vec()).map_err(|_| JournalError::Corrupt {
                path: path.to_owned(),
                run: crate::ids::RunId(0),
                seq: crate::ids::Seq(0),
                reason: format!("asset key {} is not a path", hex::encode(&*k)),
            })?;
            Ok((name, v.to_vec()))
        })
        .collect()
}
