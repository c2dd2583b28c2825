//! The one error type of the vault. No variant carries secret material: identity files are named
//! by path, recipients by index and their first characters, and age's own messages (which name
//! neither keys nor plaintext) are kept as text.

use std::path::PathBuf;

/// What went wrong while parsing recipients, loading identities, sealing or opening.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// A recipient entry is neither an age X25519 recipient nor an OpenSSH public key age takes.
    #[error("recipient {index} ({start:?}): {reason}")]
    InvalidRecipient {
        /// The entry's position in the list, from 0.
        index: usize,
        /// The entry's first 20 characters (never more, and nothing of a private key).
        start: String,
        /// Why it was refused.
        reason: String,
    },
    /// The list of recipients is empty: a sealed file nobody can open is never written.
    #[error(
        "no recipients: the spec's `recipients` (or, when absent, its `ssh_keys`) must name at \
         least one age recipient (age1...) or ssh-ed25519/ssh-rsa public key"
    )]
    NoRecipients,
    /// An identity file could not be read.
    #[error("identity file {path}: {source}")]
    ReadIdentity {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// An identity file holds no identity loko can use.
    #[error("identity file {path}: {reason}")]
    InvalidIdentity {
        /// The file.
        path: PathBuf,
        /// Why (its contents are never quoted).
        reason: String,
    },
    /// An OpenSSH private key protected by a passphrase: loko never prompts.
    #[error(
        "identity file {path} is an SSH private key protected by a passphrase, which loko cannot \
         use: give an age identity (`age-keygen -o ~/.config/loko/identity.txt`, its public key \
         in the spec's `recipients`) or an unencrypted key file, with LOKO_IDENTITY=PATH"
    )]
    EncryptedSshKey {
        /// The file.
        path: PathBuf,
    },
    /// No identity file in any of the places loko looks.
    #[error(
        "no identity to open the cluster's secrets: looked at {}; create one with \
         `age-keygen -o ~/.config/loko/identity.txt` and ask a member of the team to add its \
         public key to the spec's `recipients`, or set LOKO_IDENTITY=PATH",
        looked.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    NoIdentity {
        /// Every place looked at, in order.
        looked: Vec<PathBuf>,
    },
    /// The file was sealed to recipients none of whose identities were given.
    #[error(
        "not a recipient: none of the identities tried ({}) opens this file; a member of the \
         team must add your public key to the spec's `recipients` and run loko again",
        tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    NotARecipient {
        /// The identity files tried, by path.
        tried: Vec<PathBuf>,
    },
    /// The input is not a whole, unaltered age file.
    #[error("damaged sealed file: {reason}")]
    Damaged {
        /// age's account of what is wrong (header, MAC or payload).
        reason: String,
    },
    /// Encryption failed (age refused the recipients, or writing to memory failed).
    #[error("sealing failed: {reason}")]
    Seal {
        /// age's account of the failure.
        reason: String,
    },
}
