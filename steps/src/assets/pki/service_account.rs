//! The service accounts' key pair, which signs every service-account token of the cluster.

use rcgen::PublicKeyData as _;

use super::cert::sha256_hex;
use super::keys::key_at;
use super::report::{FileStatus, PkiFile, PkiReport};
use crate::assets::{AssetDir, AssetError, Sensitivity};

const SERVICE_ACCOUNT_KEY: &str = "tls/service-account.key";
const SERVICE_ACCOUNT_PUB: &str = "tls/service-account.pub";

/// The key pair that signs service-account tokens. Like a CA, it is never regenerated while its
/// public half exists: every token issued so far would be rejected.
pub(super) fn ensure_service_account(
    dir: &AssetDir,
    report: &mut PkiReport,
) -> Result<(), AssetError> {
    let existing_pub = dir.read(SERVICE_ACCOUNT_PUB)?;
    if dir.read(SERVICE_ACCOUNT_KEY)?.is_none() && existing_pub.is_some() {
        return Err(AssetError::Invalid {
            path: dir.path(SERVICE_ACCOUNT_KEY),
            reason: format!(
                "is missing while {SERVICE_ACCOUNT_PUB} exists; it is never regenerated (the \
                 cluster's service-account tokens are signed with it): restore it, or remove both"
            ),
        });
    }
    let key = key_at(dir, SERVICE_ACCOUNT_KEY)?;
    let pem = key.public_key_pem(SERVICE_ACCOUNT_PUB)?;
    let status = match existing_pub {
        None => FileStatus::Created,
        Some(b) if b == pem.as_bytes() => FileStatus::Kept,
        Some(_) => FileStatus::Reissued {
            reason: format!("did not match {SERVICE_ACCOUNT_KEY}"),
        },
    };
    dir.write(SERVICE_ACCOUNT_PUB, pem.as_bytes(), Sensitivity::Public)?;
    report.files.push(PkiFile {
        path: SERVICE_ACCOUNT_PUB.into(),
        sha256: sha256_hex(&key.subject_public_key_info()),
        not_after: None,
        status,
    });
    Ok(())
}
