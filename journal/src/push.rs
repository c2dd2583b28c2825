//! `loko journal push`: a journal in a directory copied into an empty etcd journal.

use std::path::PathBuf;

use crate::journal::fold_store;
use crate::store::{self, EtcdConfig, EtcdStore, Store, StoreError};
use crate::{AssetPut, Journal, JournalError, store_error};

impl Journal {
    /// Copies every record of this journal into the empty etcd journal at `to`, holding its
    /// lock meanwhile, with `assets` (the asset directory's files in their stored form) written
    /// before the records that depend on them; returns how many records. The copy is checked
    /// by folding it again.
    pub fn push_to(&self, to: &EtcdConfig, assets: Vec<AssetPut>) -> Result<u64, JournalError> {
        let path = PathBuf::from(to.url());
        let target = EtcdStore::acquire(to).map_err(|e| store_error(&path, e))?;
        if target.scan_after(None).next().is_some() {
            return Err(store_error(
                &path,
                StoreError::Failed(
                    "it already holds records; push only copies into an empty journal".to_owned(),
                ),
            ));
        }
        target
            .put_assets(assets)
            .map_err(|e| store_error(&path, e))?;
        let records = self
            .store()
            .scan_after(None)
            .map(|r| r.map(|(k, v)| (store::Key::try_from(&k[..]).unwrap_or([0; 16]), v.to_vec())));
        let n = target.import(records).map_err(|e| store_error(&path, e))?;
        if let Some(identity) = self
            .store()
            .identity()
            .map_err(|e| store_error(self.path(), e))?
        {
            target
                .put_identity(&identity)
                .map_err(|e| store_error(&path, e))?;
        }
        let (copied, _, _) = fold_store(&path, &target)?;
        if copied.cluster != self.state() {
            return Err(store_error(
                &path,
                StoreError::Failed("the copy folds to another state than the original".to_owned()),
            ));
        }
        Ok(n)
    }
}
