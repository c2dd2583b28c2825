//! The leaf certificates: issued under their CA, reissued only when their inputs changed or
//! they near their expiry, their keys kept. The inputs each was issued for are recorded, as a
//! digest, in [`STATE_FILE`].

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use rcgen::{CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose, SanType};
use serde::{Deserialize, Serialize};

use super::ca::Ca;
use super::cert::generate_err;
use super::cert::{CertFacts, distinguished_name, parse_cert, serial, sha256_hex, signed_by};
use super::clock::{NOT_BEFORE_SKEW, UnixTime, hours, renewal_window};
use super::inputs::PkiInputs;
use super::keys::{EcKey, key_at};
use super::layout::{LeafDef, Usage};
use super::report::{FileStatus, PkiFile, PkiReport};
use crate::assets::{AssetDir, AssetError, Sensitivity};

/// Where the inputs digest of each leaf is kept, relative to the asset directory.
pub const STATE_FILE: &str = "tls/.pki-state.json";
/// Bumped when loko renders certificates differently on purpose, so that every leaf is reissued.
pub(super) const RENDERING: u32 = 1;

/// What a leaf's certificate is rendered from, besides `now`; its digest decides reissues.
#[derive(Serialize)]
struct LeafInputs<'a> {
    rendering: u32,
    cn: &'a str,
    org: Option<&'a str>,
    dns_names: &'a [String],
    ips: &'a [IpAddr],
    usage: Usage,
    validity_hours: u32,
    ca_sha256: String,
    key_sha256: String,
}

/// loko's record of the leaves it issued (`tls/.pki-state.json`).
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct PkiState {
    /// Per certificate path: the digests it was issued for.
    leaves: BTreeMap<String, LeafRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct LeafRecord {
    /// SHA-256 of the [`LeafInputs`] JSON.
    inputs_sha256: String,
    /// SHA-256 of the certificate's DER as written.
    cert_sha256: String,
}

impl PkiState {
    /// The record, or an empty one if it is missing or unreadable: then every leaf is reissued
    /// once, with the same keys and CAs, which is safe.
    pub(super) fn load(dir: &AssetDir) -> Result<Self, AssetError> {
        Ok(dir
            .read(STATE_FILE)?
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default())
    }

    pub(super) fn save(&self, dir: &AssetDir) -> Result<(), AssetError> {
        let mut text = serde_json::to_string_pretty(self).map_err(|e| AssetError::Generate {
            what: STATE_FILE.into(),
            reason: e.to_string(),
        })?;
        text.push('\n');
        dir.write(STATE_FILE, text.as_bytes(), Sensitivity::Public)
    }
}

pub(super) fn ensure_leaf(
    dir: &AssetDir,
    def: &LeafDef,
    ca: &Ca,
    inputs: &PkiInputs,
    now: UnixTime,
    state: &mut PkiState,
    report: &mut PkiReport,
) -> Result<(), AssetError> {
    let key = key_at(dir, def.key)?;
    let leaf_inputs = LeafInputs {
        rendering: RENDERING,
        cn: def.cn,
        org: def.org,
        dns_names: &def.dns_names,
        ips: &def.ips,
        usage: def.usage,
        validity_hours: inputs.validity_hours,
        ca_sha256: sha256_hex(&ca.der),
        key_sha256: sha256_hex(&key.point),
    };
    let inputs_json = serde_json::to_vec(&leaf_inputs).map_err(|e| AssetError::Generate {
        what: def.cert.into(),
        reason: e.to_string(),
    })?;
    let inputs_sha256 = sha256_hex(&inputs_json);
    let validity = hours(u64::from(inputs.validity_hours));

    let existing = dir.read(def.cert)?;
    let reissue_reason = match &existing {
        None => None,
        Some(bytes) => {
            match keep_or_reason(def, bytes, ca, &key, &inputs_sha256, now, validity, state) {
                Ok(facts) => {
                    // Kept: same bytes, mode re-tightened.
                    dir.write(def.cert, bytes, Sensitivity::Public)?;
                    report.files.push(PkiFile {
                        path: def.cert.into(),
                        sha256: sha256_hex(&facts.der),
                        not_after: Some(facts.not_after.rfc3339()),
                        status: FileStatus::Kept,
                    });
                    return Ok(());
                }
                Err(reason) => Some(reason),
            }
        }
    };

    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(def.cn, def.org);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = match def.usage {
        Usage::ServerAndClient => vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
        Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
    };
    params.use_authority_key_identifier_extension = true;
    let mut sans = Vec::new();
    for name in &def.dns_names {
        let ia5 = name.as_str().try_into().map_err(|e| AssetError::Generate {
            what: def.cert.into(),
            reason: format!("SAN {name:?}: {e}"),
        })?;
        sans.push(SanType::DnsName(ia5));
    }
    sans.extend(def.ips.iter().map(|ip| SanType::IpAddress(*ip)));
    params.subject_alt_names = sans;
    params.not_before = now.minus(NOT_BEFORE_SKEW).to_datetime(def.cert)?;
    params.not_after = now.plus(validity).to_datetime(def.cert)?;
    params.serial_number = Some(serial(
        &[inputs_sha256.as_bytes(), &now.0.to_be_bytes()].concat(),
    ));
    let cert = params
        .signed_by(&key, &ca.issuer(def.cert)?)
        .map_err(generate_err(def.cert))?;
    let pem = cert.pem();
    dir.write(def.cert, pem.as_bytes(), Sensitivity::Public)?;
    let der = cert.der().to_vec();
    state.leaves.insert(
        def.cert.into(),
        LeafRecord {
            inputs_sha256,
            cert_sha256: sha256_hex(&der),
        },
    );
    report.files.push(PkiFile {
        path: def.cert.into(),
        sha256: sha256_hex(&der),
        not_after: Some(now.plus(validity).rfc3339()),
        status: match reissue_reason {
            None => FileStatus::Created,
            Some(reason) => FileStatus::Reissued { reason },
        },
    });
    Ok(())
}

/// The facts of the existing certificate if it can stay, or why it must be reissued.
#[allow(clippy::too_many_arguments)]
fn keep_or_reason(
    def: &LeafDef,
    bytes: &[u8],
    ca: &Ca,
    key: &EcKey,
    inputs_sha256: &str,
    now: UnixTime,
    validity: Duration,
    state: &PkiState,
) -> Result<CertFacts, String> {
    let facts = parse_cert(bytes).map_err(|e| format!("the certificate was unreadable: {e}"))?;
    if facts.point != key.point {
        return Err(format!("the certificate did not match {}", def.key));
    }
    if !signed_by(&facts.der, &ca.der) {
        return Err("the certificate was not signed by the current CA".into());
    }
    let Some(record) = state.leaves.get(def.cert) else {
        return Err(format!("no record of its inputs in {STATE_FILE}"));
    };
    if record.cert_sha256 != sha256_hex(&facts.der) {
        return Err("the certificate changed since loko wrote it".into());
    }
    if record.inputs_sha256 != inputs_sha256 {
        return Err("its inputs changed (names, SANs, validity, CA or key)".into());
    }
    let window = renewal_window(validity);
    if facts.not_after.0 < now.plus(window).0 {
        return Err(format!(
            "it expires on {}, within the renewal window of {} days",
            facts.not_after.rfc3339(),
            window.as_secs() / 86_400
        ));
    }
    Ok(facts)
}
