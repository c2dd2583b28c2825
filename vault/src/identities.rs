//! The operator's side: the identity files that open what was sealed to them.

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::error::VaultError;

/// The environment variable naming identity files (several separated by `:`).
pub const IDENTITY_ENV: &str = "LOKO_IDENTITY";

/// The operator's identities: age identity files (`AGE-SECRET-KEY-1...`) and unencrypted OpenSSH
/// private keys, each remembered by the path it came from (the only thing errors show).
pub struct Identities {
    keys: Vec<Box<dyn age::Identity + Send + Sync>>,
    paths: Vec<PathBuf>,
}

impl fmt::Debug for Identities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identities")
            .field("paths", &self.paths)
            .finish_non_exhaustive()
    }
}

impl Identities {
    /// Loads every identity of each file: an age identity file (one or more
    /// `AGE-SECRET-KEY-1...` lines, `#` comments allowed) or an unencrypted OpenSSH private key
    /// (ed25519 or RSA). A passphrase-protected SSH key is refused (loko never prompts), as is a
    /// file with no identity.
    pub fn load(paths: &[PathBuf]) -> Result<Identities, VaultError> {
        let mut identities = Identities {
            keys: Vec::new(),
            paths: Vec::new(),
        };
        for path in paths {
            identities.keys.extend(load_file(path)?);
            identities.paths.push(path.clone());
        }
        Ok(identities)
    }

    /// Finds the operator's identities: the files of `$LOKO_IDENTITY` (one path, or several
    /// separated by `:`), else `~/.config/loko/identity.txt`, else `~/.ssh/id_ed25519` and
    /// `~/.ssh/id_rsa`, whichever exist. None found is an error naming every place looked at.
    pub fn discover() -> Result<Identities, VaultError> {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        Identities::discover_from(std::env::var_os(IDENTITY_ENV).as_deref(), home.as_deref())
    }

    /// [`Identities::discover`] with the values of `$LOKO_IDENTITY` and `$HOME` given, not read
    /// from the process's environment.
    ///
    /// Among the SSH keys, a passphrase-protected or unsupported one is passed over when the
    /// other loads, and is the error when it is the only one.
    pub fn discover_from(
        loko_identity: Option<&OsStr>,
        home: Option<&Path>,
    ) -> Result<Identities, VaultError> {
        let named: Vec<PathBuf> = loko_identity
            .map(|value| {
                std::env::split_paths(value)
                    .filter(|p| !p.as_os_str().is_empty())
                    .collect()
            })
            .unwrap_or_default();
        if !named.is_empty() {
            return Identities::load(&named);
        }
        let mut looked = vec![PathBuf::from(format!("${IDENTITY_ENV}"))];
        let Some(home) = home else {
            return Err(VaultError::NoIdentity { looked });
        };
        let age_file = home.join(".config/loko/identity.txt");
        looked.push(age_file.clone());
        if age_file.exists() {
            return Identities::load(&[age_file]);
        }
        let mut found = Identities {
            keys: Vec::new(),
            paths: Vec::new(),
        };
        let mut refused = None;
        for name in ["id_ed25519", "id_rsa"] {
            let path = home.join(".ssh").join(name);
            looked.push(path.clone());
            if !path.exists() {
                continue;
            }
            match load_file(&path) {
                Ok(keys) => {
                    found.keys.extend(keys);
                    found.paths.push(path);
                }
                Err(
                    e @ (VaultError::EncryptedSshKey { .. } | VaultError::InvalidIdentity { .. }),
                ) => {
                    refused.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        match refused {
            Some(e) if found.keys.is_empty() => Err(e),
            _ if found.keys.is_empty() => Err(VaultError::NoIdentity { looked }),
            _ => Ok(found),
        }
    }

    /// The files the identities came from, in order.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// The identities as age takes them.
    pub(crate) fn as_age(&self) -> impl Iterator<Item = &dyn age::Identity> {
        self.keys
            .iter()
            .map(|key| key.as_ref() as &dyn age::Identity)
    }
}

/// The largest identity file read: age's own limit for identity files.
const MAX_IDENTITY_FILE: u64 = 16 << 20;

fn load_file(path: &Path) -> Result<Vec<Box<dyn age::Identity + Send + Sync>>, VaultError> {
    let read_error = |source| VaultError::ReadIdentity {
        path: path.to_owned(),
        source,
    };
    let invalid = |reason: String| VaultError::InvalidIdentity {
        path: path.to_owned(),
        reason,
    };
    let size = std::fs::metadata(path).map_err(read_error)?.len();
    if size > MAX_IDENTITY_FILE {
        return Err(invalid(format!(
            "{size} bytes is too large for an identity file"
        )));
    }
    let bytes = Zeroizing::new(std::fs::read(path).map_err(read_error)?);
    let text = std::str::from_utf8(&bytes).map_err(|_| {
        invalid("not text: expected an age identity file or an OpenSSH private key".to_owned())
    })?;
    if text.contains("-----BEGIN") {
        return load_ssh_key(path, text);
    }
    let file = age::IdentityFile::from_buffer(text.as_bytes())
        // age names the line, never its contents.
        .map_err(|e| invalid(e.to_string()))?;
    let keys = file.into_identities().map_err(|e| invalid(e.to_string()))?;
    if keys.is_empty() {
        return Err(invalid(
            "holds no identity: expected AGE-SECRET-KEY-1... lines (`age-keygen`) or an OpenSSH private key".to_owned(),
        ));
    }
    Ok(keys)
}

fn load_ssh_key(
    path: &Path,
    text: &str,
) -> Result<Vec<Box<dyn age::Identity + Send + Sync>>, VaultError> {
    let invalid = |reason: String| VaultError::InvalidIdentity {
        path: path.to_owned(),
        reason,
    };
    let key = age::ssh::Identity::from_buffer(text.as_bytes(), Some(path.display().to_string()))
        .map_err(|e| invalid(e.to_string()))?;
    match key {
        age::ssh::Identity::Unencrypted(_) => Ok(vec![Box::new(key)]),
        age::ssh::Identity::Encrypted(_)
        | age::ssh::Identity::Unsupported(age::ssh::UnsupportedKey::EncryptedPem)
        | age::ssh::Identity::Unsupported(age::ssh::UnsupportedKey::EncryptedSsh(_)) => {
            Err(VaultError::EncryptedSshKey {
                path: path.to_owned(),
            })
        }
        age::ssh::Identity::Unsupported(age::ssh::UnsupportedKey::Hardware(kind)) => Err(invalid(
            format!("a hardware security key ({kind}) cannot open age files without a plugin"),
        )),
        age::ssh::Identity::Unsupported(age::ssh::UnsupportedKey::Type(kind)) => Err(invalid(
            format!("an SSH key of type {kind}: age takes ed25519 and RSA keys"),
        )),
    }
}
