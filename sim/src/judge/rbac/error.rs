//! Why RBAC objects or the judge's data cannot be read.

use std::path::PathBuf;

/// What went wrong reading RBAC objects or the judge's data.
#[derive(Debug, thiserror::Error)]
pub enum RbacError {
    /// A manifest file or directory cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file is not JSON or YAML.
    #[error("{path}: not a JSON or YAML manifest: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        reason: String,
    },
    /// An RBAC object lacks a field the apiserver requires.
    #[error("{what}: {reason}")]
    Invalid {
        /// The object (kind and name) and where it came from.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// A requirement names an identity, file or role the data does not have.
    #[error("RBAC requirements: {0}")]
    Requirement(String),
}
