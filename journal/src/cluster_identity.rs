//! A cluster's identity, which [`crate::identity`] records in the journal. Apart from
//! `identity.rs` so that the journal's error, which names it, does not import that file.

use std::io::Read as _;

use serde::{Deserialize, Serialize};

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

    pub(crate) fn encode(&self) -> Vec<u8> {
        // A struct of strings always serializes.
        serde_json::to_vec(self).unwrap_or_default()
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
