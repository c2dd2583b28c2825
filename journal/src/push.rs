//! `loko journal push` and `pull`: a journal in a directory copied into an empty etcd journal,
//! and back.

use std::path::{Path, PathBuf};

use crate::error::{JournalError, store_error};
use crate::journal::Journal;
use crate::journal::fold_store;
use crate::store::seam::AssetPut;
use crate::store::{self, EtcdConfig, EtcdStore, SledStore, Store, StoreError};

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

impl Journal {
    /// Copies every record of the etcd journal at `from` (read without its lock), and its
    /// identity, into the empty journal in directory `dir`; returns how many records. The copy
    /// is checked by folding it again. For `loko journal pull`.
    pub fn pull_from(from: &EtcdConfig, dir: &Path) -> Result<u64, JournalError> {
        let path = PathBuf::from(from.url());
        let source = EtcdStore::read_only(from).map_err(|e| store_error(&path, e))?;
        let (original, _, _) = fold_store(&path, &source)?;
        let target = SledStore::acquire(dir).map_err(|e| store_error(dir, e))?;
        if target.scan_after(None).next().is_some() {
            return Err(store_error(
                dir,
                StoreError::Failed(
                    "it already holds records; pull only copies into an empty journal".to_owned(),
                ),
            ));
        }
        let mut head = None;
        let mut n = 0;
        for item in source.scan_after(None) {
            let (k, v) = item.map_err(|e| store_error(&path, e))?;
            let key = store::Key::try_from(&k[..]).map_err(|_| {
                store_error(
                    &path,
                    StoreError::Failed(format!("{} is not a journal key", hex::encode(&*k))),
                )
            })?;
            target
                .append(head, vec![(key, v.to_vec())], Vec::new())
                .map_err(|e| store_error(dir, e))?;
            head = Some(key);
            n += 1;
        }
        target.flush().map_err(|e| store_error(dir, e))?;
        if let Some(identity) = source.identity().map_err(|e| store_error(&path, e))? {
            target
                .put_identity(&identity)
                .map_err(|e| store_error(dir, e))?;
        }
        let (copied, _, _) = fold_store(dir, &target)?;
        if copied.cluster != original.cluster {
            return Err(store_error(
                dir,
                StoreError::Failed("the copy folds to another state than the original".to_owned()),
            ));
        }
        Ok(n)
    }
}
