//! Where a cluster's journal lives. Apart from `lib.rs` so that the crate's files import it
//! without importing the crate's root.

use std::path::PathBuf;

use crate::store::EtcdConfig;

/// Where a cluster's journal lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// The embedded store in a directory (by default `<asset_dir>/.loko/journal`).
    Dir(PathBuf),
    /// etcd v3, shared by every machine that reaches it.
    Etcd(EtcdConfig),
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Dir(dir) => write!(f, "{}", dir.display()),
            Location::Etcd(config) => write!(f, "{}", config.url()),
        }
    }
}
