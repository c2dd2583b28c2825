//! The team: who the cluster's secrets are sealed to.
//!
//! age 0.13 deprecates its X25519 and SSH recipients in favour of post-quantum ones; loko keeps
//! them on purpose: the spec's `ssh_keys` must serve as recipients, and the `age` program of
//! today's distributions (Debian's 1.1) opens only these.
#![allow(deprecated)]

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

use crate::error::VaultError;

/// One recipient in a form age encrypts to.
enum Key {
    X25519(age::x25519::Recipient),
    Ssh(age::ssh::Recipient),
}

impl Key {
    fn as_age(&self) -> &dyn age::Recipient {
        match self {
            Key::X25519(r) => r,
            Key::Ssh(r) => r,
        }
    }
}

/// The recipients the cluster's secrets are sealed to: age X25519 recipients and OpenSSH public
/// keys (ed25519 and RSA), in the order given, duplicates removed.
pub struct Recipients {
    /// Each key with its display form (`age1...`, or `ssh-ed25519 AAAA...` without the comment).
    keys: Vec<(String, Key)>,
}

impl fmt::Debug for Recipients {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// How much of a refused entry an error quotes: enough to find it in the spec, and for an
/// `age1` recipient or an SSH key, nothing secret (public keys only get this far).
const QUOTED_CHARS: usize = 20;

impl Recipients {
    /// Parses each entry as an age X25519 recipient (`age1...`) or an OpenSSH public key line
    /// (`ssh-ed25519 AAAA... comment`, `ssh-rsa AAAA... comment`; the comment is ignored).
    ///
    /// An unparsable entry is named by its index and its first 20 characters; a private key
    /// pasted by mistake is refused without quoting any of it. An empty list is refused.
    pub fn parse(entries: &[String]) -> Result<Recipients, VaultError> {
        if entries.is_empty() {
            return Err(VaultError::NoRecipients);
        }
        let mut keys: Vec<(String, Key)> = Vec::with_capacity(entries.len());
        for (index, entry) in entries.iter().enumerate() {
            let key = parse_one(entry.trim()).map_err(|reason| VaultError::InvalidRecipient {
                index,
                start: quoted_start(entry),
                reason,
            })?;
            let display = match &key {
                Key::X25519(r) => r.to_string(),
                Key::Ssh(r) => r.to_string(),
            };
            if !keys.iter().any(|(d, _)| *d == display) {
                keys.push((display, key));
            }
        }
        Ok(Recipients { keys })
    }

    /// A stable digest of the set of recipients (hex SHA-256 of their sorted display forms), so
    /// that a change of recipients, and only that, is visible in the journal: order, comments
    /// and duplicates do not change it.
    pub fn fingerprint(&self) -> String {
        let mut forms: Vec<&str> = self.iter().collect();
        forms.sort_unstable();
        let mut hasher = Sha256::new();
        for form in forms {
            hasher.update(form.as_bytes());
            hasher.update(b"\n");
        }
        hex::encode(hasher.finalize())
    }

    /// How many distinct recipients.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are none (never true of a parsed list; for symmetry with `len`).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Each recipient's display form: `age1...`, or `ssh-ed25519 AAAA...` without its comment.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|(display, _)| display.as_str())
    }

    /// The recipients as age takes them.
    pub(crate) fn as_age(&self) -> impl Iterator<Item = &dyn age::Recipient> {
        self.keys.iter().map(|(_, key)| key.as_age())
    }
}

fn parse_one(entry: &str) -> Result<Key, String> {
    if looks_private(entry) {
        return Err(
            "this is a private key; give its public key (`age-keygen -y FILE`, or the \
                    SSH key's .pub file)"
                .to_owned(),
        );
    }
    if entry.starts_with("age1") {
        return age::x25519::Recipient::from_str(entry)
            .map(Key::X25519)
            .map_err(|e| format!("not an age X25519 recipient: {e}"));
    }
    // OpenSSH's key types: ssh-ed25519 and ssh-rsa, which age takes, and ECDSA and security keys,
    // which it refuses by name.
    if ["ssh-", "ecdsa-", "sk-"]
        .iter()
        .any(|prefix| entry.starts_with(prefix))
    {
        return age::ssh::Recipient::from_str(entry)
            .map(Key::Ssh)
            .map_err(|e| match e {
                age::ssh::ParseRecipientKeyError::Invalid(why) => {
                    format!("not an OpenSSH public key line: {why}")
                }
                age::ssh::ParseRecipientKeyError::RsaModulusTooSmall => {
                    "the RSA key is too short for age (2048 bits at least)".to_owned()
                }
                age::ssh::ParseRecipientKeyError::RsaModulusTooLarge => {
                    "the RSA key is longer than age takes".to_owned()
                }
                // `Ignore` and `Unsupported`: a key type age does not encrypt to (ECDSA, a
                // hardware key), and whatever a later age adds.
                _ => "age takes only ssh-ed25519 and ssh-rsa keys".to_owned(),
            });
    }
    Err(
        "expected an age recipient (age1...) or an OpenSSH public key line (ssh-ed25519 AAAA...)"
            .to_owned(),
    )
}

/// An age identity or a PEM/OpenSSH private key, whose text must never be quoted.
fn looks_private(entry: &str) -> bool {
    entry.to_ascii_uppercase().starts_with("AGE-SECRET-KEY-") || entry.contains("PRIVATE KEY")
}

fn quoted_start(entry: &str) -> String {
    if looks_private(entry.trim()) {
        return "(not quoted)".to_owned();
    }
    entry.trim().chars().take(QUOTED_CHARS).collect()
}
