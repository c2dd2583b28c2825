//! What can go wrong with a node.

use std::net::SocketAddr;
use std::path::PathBuf;

/// What went wrong with a node.
#[derive(Debug, thiserror::Error)]
pub enum NodesError {
    /// The hostname cannot name a directory.
    #[error("node hostname {hostname:?} is not a valid host name")]
    InvalidHostname {
        /// The hostname.
        hostname: String,
    },
    /// A node root file or directory could not be written.
    #[error("node root {path}: {source}")]
    RootDir {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The Ignition's SSH host key cannot be used (the key itself is never shown).
    #[error("node {hostname}: SSH host key: {reason}")]
    HostKey {
        /// The node.
        hostname: String,
        /// Why.
        reason: String,
    },
    /// The SSH address could not be bound.
    #[error("node {hostname}: cannot listen for SSH on {addr}: {source}")]
    SshBind {
        /// The node.
        hostname: String,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The configured sshd binary does not exist.
    #[error("sshd binary {path} not found")]
    SshdMissing {
        /// The configured path.
        path: PathBuf,
    },
}
