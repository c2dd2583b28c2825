//! The cluster a journal belongs to: recorded at the first run, so that a spec of another
//! cluster pointed at the same journal (the same etcd prefix, the same state directory) is
//! refused instead of reading that journal as its own.
//!
//! The record is one slot of the store ([`Store::identity`]), beside the records rather than
//! among them: the engine's runs and their sequence numbers stay as they are, and a journal of
//! an earlier loko, without the slot, reads as before until its next run records it.

use std::io::Read as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::store::{EtcdStore, Store};
use crate::{JournalError, Location, store_error};

/// Which cluster a journal belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterIdentity {
    /// The spec's `cluster_name`.
    pub name: String,
    /// The DNS zone the cluster's names are in.
    pub zone: String,
    /// The Packet project its devices are in.
    pub project: String,
    /// Random, made when the identity was first recorded: two clusters created one after the
    /// other under the same name are told apart by it (in messages and the assets' records).
    pub id: String,
}

impl ClusterIdentity {
    /// The identity of a cluster named by a spec, with a new random id.
    pub fn new(name: &str, zone: &str, project: &str) -> std::io::Result<ClusterIdentity> {
        let mut random = [0u8; 8];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut random)?;
        Ok(ClusterIdentity {
            name: name.to_owned(),
            zone: zone.to_owned(),
            project: project.to_owned(),
            id: hex::encode(random),
        })
    }

    /// True when both name the same cluster: same name, zone and project (the random id is the
    /// journal's, a spec has none).
    pub fn same_cluster(&self, other: &ClusterIdentity) -> bool {
        (&self.name, &self.zone, &self.project) == (&other.name, &other.zone, &other.project)
    }

    fn encode(&self) -> Vec<u8> {
        // A struct of strings always serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }

    fn decode(path: &Path, bytes: &[u8]) -> Result<ClusterIdentity, JournalError> {
        serde_json::from_slice(bytes).map_err(|e| JournalError::BadIdentity {
            path: path.to_owned(),
            reason: e.to_string(),
        })
    }
}

impl std::fmt::Display for ClusterIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?} (zone {}, project {})",
            self.name, self.zone, self.project
        )
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

impl crate::Journal {
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
        let journal = crate::Journal::open_at(&location).unwrap();
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
        let journal = crate::Journal::open_at(&location).unwrap();
        assert_eq!(journal.identity().unwrap(), Some(first));
    }
}
