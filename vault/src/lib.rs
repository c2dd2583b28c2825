//! The cluster's secrets sealed to the team, with [age](https://age-encryption.org/v1).
//!
//! A cluster's assets (its CA and every key, the kubeconfigs) leave the operator's machine only
//! sealed to the spec's `recipients`: age X25519 recipients and OpenSSH public keys, so that the
//! `ssh_keys` that already log into the nodes can serve. Each operator opens them with their own
//! identity file. The crate reads identity files and nothing else: where sealed bytes are kept
//! is the caller's business.
//!
//! ```
//! # fn main() -> Result<(), vault::VaultError> {
//! # let dir = tempfile::tempdir().unwrap();
//! # let path = dir.path().join("identity.txt");
//! # std::fs::write(&path, "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX\n").unwrap();
//! let team = vault::Recipients::parse(&[
//!     "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj".to_owned(),
//! ])?;
//! let sealed = vault::seal(&team, b"-----BEGIN PRIVATE KEY-----...")?;
//! assert!(vault::is_sealed(&sealed));
//!
//! let mine = vault::Identities::load(&[path])?;
//! assert_eq!(&vault::open(&mine, &sealed)?[..], b"-----BEGIN PRIVATE KEY-----...");
//! # Ok(())
//! # }
//! ```
//!
//! Nothing secret ever reaches an error: identities are named by path, recipients by index.

mod error;
mod identities;
mod recipients;

use std::io::{Read, Write};

use zeroize::Zeroizing;

pub use error::VaultError;
pub use identities::{IDENTITY_ENV, Identities};
pub use recipients::Recipients;

/// The first line of every binary age file (age-encryption.org/v1).
const AGE_HEADER: &[u8] = b"age-encryption.org/v1\n";

/// Seals `plaintext` to every recipient, in age's binary format: any one recipient's identity
/// opens it (with [`open`], or the `age` program).
pub fn seal(recipients: &Recipients, plaintext: &[u8]) -> Result<Vec<u8>, VaultError> {
    let failed = |reason: String| VaultError::Seal { reason };
    let encryptor =
        age::Encryptor::with_recipients(recipients.as_age()).map_err(|e| failed(e.to_string()))?;
    // The output is ciphertext, so growing it leaves no secret behind; reserving the plaintext's
    // length and a header's worth only saves copies.
    let mut sealed = Vec::with_capacity(plaintext.len() + 512 * recipients.len() + 512);
    let mut writer = encryptor
        .wrap_output(&mut sealed)
        .map_err(|e| failed(e.to_string()))?;
    writer
        .write_all(plaintext)
        .map_err(|e| failed(e.to_string()))?;
    writer.finish().map_err(|e| failed(e.to_string()))?;
    Ok(sealed)
}

/// Opens what [`seal`] (or `age -r`/`-R`) sealed, with the first of `identities` that is one
/// of its recipients. The plaintext is zeroed when dropped.
///
/// Sealed to others only: [`VaultError::NotARecipient`], naming the identity files tried. Not a
/// whole, unaltered age file: [`VaultError::Damaged`].
pub fn open(identities: &Identities, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    let damaged = |reason: String| VaultError::Damaged { reason };
    let decryptor = age::Decryptor::new_buffered(sealed).map_err(|e| damaged(e.to_string()))?;
    let mut reader = decryptor
        .decrypt(identities.as_age())
        .map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => VaultError::NotARecipient {
                tried: identities.paths().to_vec(),
            },
            other => damaged(other.to_string()),
        })?;
    // The plaintext is shorter than the sealed file: reserving that much up front means the
    // buffer never moves, so no copy of a secret is left behind unzeroed.
    let mut plaintext = Zeroizing::new(Vec::with_capacity(sealed.len()));
    reader
        .read_to_end(&mut plaintext)
        .map_err(|e| damaged(e.to_string()))?;
    Ok(plaintext)
}

/// Whether `bytes` begin with age's header: a store scan's proof that a value is sealed, not a
/// plaintext key.
pub fn is_sealed(bytes: &[u8]) -> bool {
    bytes.starts_with(AGE_HEADER)
}
