//! The BMCs' credentials: from the environment or a file only the user can read, never from the
//! spec, and registered with the journal's redactor the moment they are read.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The user name's variable.
pub const USERNAME_ENV: &str = "LOKO_BMC_USERNAME";
/// The password's variable.
pub const PASSWORD_ENV: &str = "LOKO_BMC_PASSWORD";
/// The variable naming a file that holds both (user name on its first line, password on its
/// second), for those who keep secrets out of the environment.
pub const FILE_ENV: &str = "LOKO_BMC_CREDENTIALS_FILE";

/// A BMC account. Its `Debug` never shows the password, which the journal's redactor knows.
#[derive(Clone)]
pub struct BmcCredentials {
    pub(crate) username: String,
    pub(crate) password: String,
    /// The run's redactor, told the password; the client tells it what it derives from it (the
    /// basic-auth header, a session's token).
    pub(crate) redactor: journal::Redactor,
}

impl std::fmt::Debug for BmcCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BmcCredentials({}, [redacted])", self.username)
    }
}

/// The credentials could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error(
        "no BMC credentials: set {USERNAME_ENV} and {PASSWORD_ENV}, or {FILE_ENV} to a file holding the user name and the password on two lines"
    )]
    Missing,
    #[error("{FILE_ENV}={}: cannot read it: {source}", .path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{FILE_ENV}={}: its mode is {mode:o}, readable by others; chmod 600 it (it holds a password)",
        .path.display()
    )]
    Exposed { path: PathBuf, mode: u32 },
    #[error(
        "{FILE_ENV}={}: expected the user name on the first line and the password on the second",
        .path.display()
    )]
    Malformed { path: PathBuf },
}

impl BmcCredentials {
    /// An account; `redactor` (the run's) learns the password.
    pub fn new(
        username: impl Into<String>,
        password: impl Into<String>,
        redactor: &journal::Redactor,
    ) -> BmcCredentials {
        let password = password.into();
        redactor.add(&password);
        BmcCredentials {
            username: username.into(),
            password,
            redactor: redactor.clone(),
        }
    }

    /// The user name, which may be shown.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// From [`FILE_ENV`] if it is set, else [`USERNAME_ENV`] and [`PASSWORD_ENV`].
    pub fn from_env(redactor: &journal::Redactor) -> Result<BmcCredentials, CredentialsError> {
        Self::from_lookup(|name| std::env::var(name).ok(), redactor)
    }

    /// As [`BmcCredentials::from_env`], with the variables from `lookup`.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
        redactor: &journal::Redactor,
    ) -> Result<BmcCredentials, CredentialsError> {
        let set = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        if let Some(path) = set(FILE_ENV) {
            return Self::from_file(Path::new(&path), redactor);
        }
        match (set(USERNAME_ENV), set(PASSWORD_ENV)) {
            (Some(user), Some(password)) => Ok(Self::new(user.trim(), password, redactor)),
            _ => Err(CredentialsError::Missing),
        }
    }

    /// A file of two lines, user name and password, that only its owner may read.
    pub fn from_file(
        path: &Path,
        redactor: &journal::Redactor,
    ) -> Result<BmcCredentials, CredentialsError> {
        let unreadable = |source| CredentialsError::Unreadable {
            path: path.to_owned(),
            source,
        };
        let mode = std::fs::metadata(path)
            .map_err(unreadable)?
            .permissions()
            .mode()
            & 0o777;
        // Checked before reading, so an exposed password is not even loaded.
        if mode & 0o077 != 0 {
            return Err(CredentialsError::Exposed {
                path: path.to_owned(),
                mode,
            });
        }
        let text = std::fs::read_to_string(path).map_err(unreadable)?;
        let mut lines = text.lines();
        match (lines.next().map(str::trim), lines.next()) {
            (Some(user), Some(password)) if !user.is_empty() && !password.is_empty() => {
                Ok(Self::new(user, password, redactor))
            }
            _ => Err(CredentialsError::Malformed {
                path: path.to_owned(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(vars: &[(&'static str, String)]) -> impl Fn(&str) -> Option<String> + use<> {
        let vars = vars.to_vec();
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn credentials_come_from_the_environment_and_never_show() {
        let redactor = journal::Redactor::new();
        let c = BmcCredentials::from_lookup(
            lookup(&[
                (USERNAME_ENV, "admin".into()),
                (PASSWORD_ENV, "bmc-pass-0123456789".into()),
            ]),
            &redactor,
        )
        .unwrap();
        assert_eq!(c.username(), "admin");
        assert!(!format!("{c:?}").contains("bmc-pass"));
        assert_eq!(redactor.redact("x bmc-pass-0123456789"), "x [redacted]");
        assert!(matches!(
            BmcCredentials::from_lookup(lookup(&[(USERNAME_ENV, "admin".into())]), &redactor),
            Err(CredentialsError::Missing)
        ));
    }

    #[test]
    fn a_credentials_file_must_be_the_owners_alone() {
        let redactor = journal::Redactor::new();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bmc");
        std::fs::write(&path, "admin\nfile-pass-0123456789\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let vars = [(FILE_ENV, path.display().to_string())];
        let err = BmcCredentials::from_lookup(lookup(&vars), &redactor).unwrap_err();
        assert!(
            matches!(err, CredentialsError::Exposed { mode: 0o640, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("chmod 600"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let c = BmcCredentials::from_lookup(lookup(&vars), &redactor).unwrap();
        assert_eq!(
            (c.username(), c.password.as_str()),
            ("admin", "file-pass-0123456789")
        );
        std::fs::write(&path, "admin\n").unwrap();
        assert!(matches!(
            BmcCredentials::from_lookup(lookup(&vars), &redactor),
            Err(CredentialsError::Malformed { .. })
        ));
    }
}
