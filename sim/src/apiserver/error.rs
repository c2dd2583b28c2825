//! Why an apiserver emulator cannot start.

use std::net::SocketAddr;
use std::path::PathBuf;

/// What went wrong starting an apiserver emulator.
#[derive(Debug, thiserror::Error)]
pub enum ApiserverError {
    /// An asset is missing or unreadable.
    #[error("apiserver asset {path}: {reason}")]
    Asset {
        /// The asset file.
        path: PathBuf,
        /// Why it cannot be used (never its contents).
        reason: String,
    },
    /// The certificates do not make a valid TLS configuration.
    #[error("apiserver TLS configuration from {assets}: {reason}")]
    Tls {
        /// The serving certificate.
        assets: PathBuf,
        /// rustls' reason.
        reason: String,
    },
    /// The listening socket could not be bound.
    #[error("apiserver cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}
