//! A cluster's identity, which [`crate::identity`] records in the journal. Apart from
//! `identity.rs` so that the journal's error, which names it, does not import that file.

use std::io::Read as _;

use serde::{Deserialize, Serialize};

/// Which cluster a journal belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterIdentity {
    /// The spec's `cluster_name`.
    pub name: String,
    /// The DNS zone the cluster's names are in; empty for a cluster without one.
    pub zone: String,
    /// The Packet project its devices are in; empty for a rack.
    pub project: String,
    /// The address the spec names its API by (`api_address`), for a cluster without a DNS
    /// zone: two such racks of one name are told apart by it. Absent from the records of
    /// clusters with a zone, and of an older loko.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_address: Option<String>,
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
            api_address: None,
            id: hex::encode(random),
        })
    }

    /// The identity of a cluster whose spec names its API address itself (no DNS zone).
    #[must_use]
    pub fn at_api_address(mut self, address: &str) -> ClusterIdentity {
        self.api_address = Some(address.to_owned());
        self
    }

    /// True when both name the same cluster: same name, zone, project and API address (the
    /// random id is the journal's, a spec has none).
    pub fn same_cluster(&self, other: &ClusterIdentity) -> bool {
        fn key(c: &ClusterIdentity) -> (&str, &str, &str, Option<&str>) {
            (&c.name, &c.zone, &c.project, c.api_address.as_deref())
        }
        key(self) == key(other)
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        // A struct of strings always serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

impl std::fmt::Display for ClusterIdentity {
    /// `"name" (zone Z, project P)`; what a cluster lacks is left out, its API address said.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let named = [
            ("zone", Some(&self.zone)),
            ("project", Some(&self.project)),
            ("API", self.api_address.as_ref()),
        ];
        let said: Vec<String> = named
            .iter()
            .filter_map(|(what, value)| {
                value
                    .filter(|v| !v.is_empty())
                    .map(|v| format!("{what} {v}"))
            })
            .collect();
        match said.is_empty() {
            true => write!(f, "{:?}", self.name),
            false => write!(f, "{:?} ({})", self.name, said.join(", ")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_zoneless_clusters_of_one_name_are_told_apart_by_their_api_address() {
        let a = ClusterIdentity::new("rack", "", "")
            .unwrap()
            .at_api_address("k8s.a.example.net");
        let b = ClusterIdentity::new("rack", "", "")
            .unwrap()
            .at_api_address("k8s.b.example.net");
        assert!(!a.same_cluster(&b));
        assert!(
            a.same_cluster(
                &ClusterIdentity::new("rack", "", "")
                    .unwrap()
                    .at_api_address("k8s.a.example.net")
            )
        );
        assert_eq!(a.to_string(), "\"rack\" (API k8s.a.example.net)");
        let packet = ClusterIdentity::new("nova", "example.com", "p-1").unwrap();
        assert_eq!(
            packet.to_string(),
            "\"nova\" (zone example.com, project p-1)"
        );
    }

    #[test]
    fn a_record_without_an_api_address_reads_as_before() {
        let old = br#"{"name":"nova","zone":"example.com","project":"p-1","id":"0011"}"#;
        let read: ClusterIdentity = serde_json::from_slice(old).unwrap();
        assert_eq!(read.api_address, None);
        assert_eq!(read.encode(), old.to_vec(), "written back byte for byte");
    }
}
