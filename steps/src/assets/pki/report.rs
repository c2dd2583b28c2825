//! What [`super::ensure_pki`] did, file by file.

use serde::{Deserialize, Serialize};

/// What [`super::ensure_pki`] did, file by file. It goes into the journal, so it holds
/// fingerprints and dates, never a key.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PkiReport {
    /// Every certificate and public key of the PKI, in a fixed order.
    pub files: Vec<PkiFile>,
    /// What a user must act on: a CA that expires within [`super::CA_WARNING_WINDOW`].
    pub warnings: Vec<String>,
}

/// One certificate (or public key) of the PKI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PkiFile {
    /// Relative to the asset directory (`tls/apiserver.crt`).
    pub path: String,
    /// SHA-256 (hex) of the certificate's DER, or of the SubjectPublicKeyInfo of a public key.
    pub sha256: String,
    /// The certificate's `notAfter` (RFC 3339); `None` for a public key.
    pub not_after: Option<String>,
    pub status: FileStatus,
}

/// What happened to a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FileStatus {
    /// It did not exist and was written.
    Created,
    /// It existed and was replaced, for `reason`.
    Reissued { reason: String },
    /// It was left as it was.
    Kept,
}
