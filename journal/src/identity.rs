//! The cluster a journal belongs to: recorded at the first run, so that a spec of another
//! cluster pointed at the same journal (the same etcd prefix, the same state directory) is
//! refused instead of reading that journal as its own.
//!
//! The record is one slot of the store ([`Store::identity`]), beside the records rather than
//! among them: the engine's runs and their sequence numbers stay as they are, and a journal of
//! an earlier loko, without the slot, reads as before until its next run records it.

use std::path::Path;

use crate::cluster_identity::ClusterIdentity;
use crate::error::{JournalError, store_error};
use crate::journal::Journal;
use crate::location::Location;
use crate::store::{EtcdStore, Store};

// Here rather than beside the struct: the error it makes names the identity, so the
// struct's file does not import the error.
impl ClusterIdentity {
    fn decode(path: &Path, bytes: &[u8]) -> Result<ClusterIdentity, JournalError> {
        serde_json::from_slice(bytes).map_err(|e| JournalError::BadIdentity {
            path: path.to_owned(),
            reason: e.to_string(),
        })
    }
}

/// The identity recorded in the journal at `location`, read without its lock (a run may hold
/// it); `None` for a journal that does not exist yet or was written by a loko before the
/// identity was recorded.
pub fn recorded_identity(location: &Location) -> Result<Option<ClusterIdentity>, JournalError> {
    match location {
        Location::Dir(dir) => {
            let path = crate::store::SledStore::identity_path(dir);
            match std::fs::read(&path) {
                Ok(bytes) => ClusterIdentity::decode(dir, &bytes).map(Some),
                // No journal there (yet): what is in the way is the opener's to report.
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                    ) =>
                {
                    Ok(None)
                }
                Err(source) => Err(JournalError::Io { path, source }),
            }
        }
        Location::Etcd(config) => {
            let path = Path::new(&config.url()).to_owned();
            let store = EtcdStore::read_only(config).map_err(|e| store_error(&path, e))?;
            read(&path, &store)
        }
    }
}

fn read(path: &Path, store: &dyn Store) -> Result<Option<ClusterIdentity>, JournalError> {
    match store.identity().map_err(|e| store_error(path, e))? {
        Some(bytes) => ClusterIdentity::decode(path, &bytes).map(Some),
        None => Ok(None),
    }
}

impl Journal {
    /// The identity this journal records, if any.
    pub fn identity(&self) -> Result<Option<ClusterIdentity>, JournalError> {
        read(self.path(), self.store())
    }

    /// Binds the journal to `wanted`: records it when the journal has no identity yet, and
    /// refuses ([`JournalError::OtherCluster`]) when it records another cluster's. Returns the
    /// identity the journal holds (with its random id).
    pub fn bind_identity(&self, wanted: &ClusterIdentity) -> Result<ClusterIdentity, JournalError> {
        if let Some(recorded) = self.identity()? {
            return match recorded.same_cluster(wanted) {
                true => Ok(recorded),
                false => Err(JournalError::OtherCluster {
                    path: self.path().to_owned(),
                    recorded: Box::new(recorded),
                    wanted: Box::new(wanted.clone()),
                }),
            };
        }
        self.store()
            .put_identity(&wanted.encode())
            .map_err(|e| store_error(self.path(), e))?;
        Ok(wanted.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nova(name: &str) -> ClusterIdentity {
        ClusterIdentity::new(name, "example.com", "p-1").unwrap()
    }

    #[test]
    fn a_directory_journal_is_bound_to_the_first_cluster_and_refuses_another() {
        let tmp = tempfile::tempdir().unwrap();
        let location = Location::Dir(tmp.path().join("journal"));
        assert_eq!(recorded_identity(&location).unwrap(), None);
        let journal = Journal::open_at(&location).unwrap();
        let first = journal.bind_identity(&nova("supernova")).unwrap();
        // Binding again with a fresh random id keeps the recorded one.
        assert_eq!(journal.bind_identity(&nova("supernova")).unwrap(), first);
        let err = journal
            .bind_identity(&nova("nova"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("belongs to cluster \"supernova\" (zone example.com, project p-1)")
                && err.contains("\"nova\""),
            "{err}"
        );
        drop(journal);
        // Read without the lock, and after a reopen.
        assert_eq!(recorded_identity(&location).unwrap(), Some(first.clone()));
        let journal = Journal::open_at(&location).unwrap();
        assert_eq!(journal.identity().unwrap(), Some(first));
    }
}
