//! The kubelets' bootstrap token (`auth/bootstrap-token.json`, 0600): what every node's
//! Ignition carries instead of a client certificate, so that each kubelet gets its own
//! `system:node:<name>` certificate by TLS bootstrap, as Typhoon v1.32.3 does
//! (terraform-render-bootstrap `auth.tf`, `resources/kubeconfig-bootstrap`,
//! `resources/manifests/bootstrap-token.yaml`).
//!
//! Unlike Typhoon's, the token expires ([`LIFETIME`] after it is issued): a leaked userdata
//! (Packet's metadata service serves it to every process of a node) then lets nobody join the
//! cluster for long. A token is reissued only when a run has nodes to boot
//! ([`ensure_token`] with `nodes_to_boot`) and less than half its lifetime is left, so every
//! Ignition a run renders holds a token valid for at least [`LIFETIME`]/2: a slow first boot
//! (a provisioning of up to an hour, replacements, a reservation's wait) is covered, and scaling
//! a pool up later issues a fresh one. A cluster whose nodes all booted keeps its expired token:
//! the kubelets renew their own certificates and need it no more.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use ssh_key::rand_core::{OsRng, RngCore as _};

use super::{AssetDir, AssetError, Sensitivity};

/// Where the token is kept.
pub const BOOTSTRAP_TOKEN: &str = "auth/bootstrap-token.json";
/// How long a token authenticates after it is issued.
pub const LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Its id's and secret's alphabet and lengths (k8s.io/cluster-bootstrap/token/api:
/// `[a-z0-9]{6}.[a-z0-9]{16}`).
const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const ID_LEN: usize = 6;
const SECRET_LEN: usize = 16;

/// A bootstrap token. Its `Debug` shows the id and expiration only.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootstrapToken {
    /// The public half: the Secret's name is `bootstrap-token-<id>`.
    pub id: String,
    secret: String,
    /// RFC 3339, UTC, seconds.
    pub expiration: String,
}

impl std::fmt::Debug for BootstrapToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BootstrapToken")
            .field("id", &self.id)
            .field("expiration", &self.expiration)
            .finish_non_exhaustive()
    }
}

impl BootstrapToken {
    /// A fresh token expiring [`LIFETIME`] after `now`.
    fn issue(now: SystemTime) -> BootstrapToken {
        BootstrapToken {
            id: random_word(ID_LEN),
            secret: random_word(SECRET_LEN),
            expiration: humantime::format_rfc3339_seconds(now + LIFETIME).to_string(),
        }
    }

    /// `<id>.<secret>`, what a kubeconfig's `token` holds. Registered with the journal's
    /// redaction when the token is read, so it never reaches the journal or a log.
    pub fn bearer(&self) -> String {
        format!("{}.{}", self.id, self.secret)
    }

    /// When it stops authenticating, or `None` if its expiration does not parse.
    fn expires_at(&self) -> Option<SystemTime> {
        humantime::parse_rfc3339(&self.expiration).ok()
    }

    /// The Secret the apiserver authenticates it by, as Typhoon's `bootstrap-token.yaml` plus
    /// its `expiration`.
    pub fn secret_object(&self) -> serde_json::Value {
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "bootstrap.kubernetes.io/token",
            "metadata": {"name": format!("bootstrap-token-{}", self.id), "namespace": "kube-system"},
            "stringData": {
                "description": "loko's kubelet bootstrap token",
                "token-id": self.id,
                "token-secret": self.secret,
                "expiration": self.expiration,
                "usage-bootstrap-authentication": "true",
            },
        })
    }
}

/// The token in `dir`, issued anew when there is none (or it is not one loko wrote), or when
/// `nodes_to_boot` and it expires within [`LIFETIME`]/2 of `now`.
pub fn ensure_token(
    dir: &AssetDir,
    now: SystemTime,
    nodes_to_boot: bool,
) -> Result<BootstrapToken, AssetError> {
    let kept = read_token(dir)?.filter(|token| {
        !nodes_to_boot || token.expires_at().is_some_and(|at| at > now + LIFETIME / 2)
    });
    let token = match kept {
        Some(token) => token,
        None => {
            let token = BootstrapToken::issue(now);
            dir.redactor().add(&token.bearer());
            let text = serde_json::to_vec_pretty(&token).map_err(|e| AssetError::Invalid {
                path: dir.path(BOOTSTRAP_TOKEN),
                reason: e.to_string(),
            })?;
            dir.write(BOOTSTRAP_TOKEN, &text, Sensitivity::Secret)?;
            token
        }
    };
    Ok(token)
}

/// The token `dir` holds, `None` if there is none or the file is not one loko wrote (a new
/// one is issued: nothing pins a token).
pub fn read_token(dir: &AssetDir) -> Result<Option<BootstrapToken>, AssetError> {
    let Some(bytes) = dir.read(BOOTSTRAP_TOKEN)? else {
        return Ok(None);
    };
    let token = serde_json::from_slice::<BootstrapToken>(&bytes)
        .ok()
        .filter(|t| valid_word(&t.id, ID_LEN) && valid_word(&t.secret, SECRET_LEN));
    if let Some(token) = &token {
        dir.redactor().add(&token.bearer());
        dir.redactor().add(&token.secret);
    }
    Ok(token)
}

/// `len` characters of [`ALPHABET`], uniformly (rejection sampling: 252 is the largest
/// multiple of 36 under 256).
fn random_word(len: usize) -> String {
    let mut word = String::with_capacity(len);
    while word.len() < len {
        let mut byte = [0u8; 1];
        OsRng.fill_bytes(&mut byte);
        if byte[0] < 252 {
            word.push(char::from(ALPHABET[usize::from(byte[0]) % ALPHABET.len()]));
        }
    }
    word
}

fn valid_word(word: &str, len: usize) -> bool {
    word.len() == len && word.bytes().all(|b| ALPHABET.contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn a_token_is_kept_until_nodes_would_boot_with_less_than_half_its_life() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = AssetDir::create(tmp.path()).unwrap();
        let start = at(1_750_000_000);
        let first = ensure_token(&dir, start, true).unwrap();
        assert!(valid_word(&first.id, 6) && valid_word(&first.secret, 16));
        assert_eq!(first.expiration, "2025-06-16T15:06:40Z");
        let mode = std::fs::metadata(dir.path(BOOTSTRAP_TOKEN)).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
            0o600
        );
        // Half its life left: kept for new nodes.
        let half = start + LIFETIME / 2 - Duration::from_secs(1);
        assert_eq!(ensure_token(&dir, half, true).unwrap(), first);
        // Less: a new node gets a new one; with no node to boot, the old one stays.
        let later = start + LIFETIME;
        assert_eq!(ensure_token(&dir, later, false).unwrap(), first);
        let second = ensure_token(&dir, later, true).unwrap();
        assert_ne!(second, first);
        assert_eq!(read_token(&dir).unwrap(), Some(second.clone()));
        // Never in a Debug line or the journal.
        assert!(!format!("{second:?}").contains(&second.secret));
        assert_eq!(
            dir.redactor()
                .secret_kind(&format!("x {} y", second.bearer())),
            Some("known secret (API token or key)")
        );
    }

    #[test]
    fn a_damaged_token_file_is_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = AssetDir::create(tmp.path()).unwrap();
        dir.write(
            BOOTSTRAP_TOKEN,
            b"{\"id\": \"UPPER!\"}",
            Sensitivity::Secret,
        )
        .unwrap();
        let token = ensure_token(&dir, at(1_750_000_000), false).unwrap();
        assert!(valid_word(&token.id, 6));
    }
}
