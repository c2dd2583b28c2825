//! The certificate authorities: created once, then only ever reused (see the rules in the
//! parent module's docs), with the copies of their certificates that etcd and bootkube expect.

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyUsagePurpose};
use x509_parser::prelude::{FromDer as _, X509Certificate};

use super::cert::{distinguished_name, generate_err, parse_cert, serial, sha256_hex};
use super::clock::{CA_MIN_VALIDITY_HOURS, CA_WARNING_WINDOW, NOT_BEFORE_SKEW, UnixTime, hours};
use super::inputs::PkiInputs;
use super::keys::{EcKey, key_at, read_key};
use super::layout::CaDef;
use super::report::{FileStatus, PkiFile, PkiReport};
use crate::assets::{AssetDir, AssetError, Sensitivity};

/// A CA ready to sign.
pub(super) struct Ca {
    key: EcKey,
    pub(super) der: Vec<u8>,
    pem: String,
}

impl Ca {
    pub(super) fn issuer(&self, def_cert: &str) -> Result<Issuer<'static, &EcKey>, AssetError> {
        Issuer::from_ca_cert_pem(&self.pem, &self.key).map_err(generate_err(def_cert))
    }
}

pub(super) fn ensure_ca(
    dir: &AssetDir,
    def: &CaDef,
    inputs: &PkiInputs,
    now: UnixTime,
    report: &mut PkiReport,
) -> Result<Ca, AssetError> {
    let existing_key = read_key(dir, def.key)?;
    let existing_cert = dir.read(def.cert)?;
    let (ca, status) = match (existing_key, existing_cert) {
        (Some(key), Some(bytes)) => {
            let invalid = |reason: String| AssetError::Invalid {
                path: dir.path(def.cert),
                reason,
            };
            let facts = parse_cert(&bytes).map_err(invalid)?;
            if facts.point != key.point {
                return Err(invalid(format!(
                    "does not belong to {} (its public key differs); a CA is never regenerated: \
                     restore the pair that belongs together",
                    def.key
                )));
            }
            if !facts.is_ca {
                return Err(invalid("is not a CA certificate".into()));
            }
            // rcgen copies the subject into the leaves' issuer field one attribute per name.
            let subject_ok = X509Certificate::from_der(&facts.der)
                .is_ok_and(|(_, c)| c.subject().iter().all(|rdn| rdn.iter().count() == 1));
            if !subject_ok {
                return Err(invalid(
                    "its subject has empty or multi-valued names, which loko cannot sign under"
                        .into(),
                ));
            }
            let pem = String::from_utf8(bytes).map_err(|_| invalid("not UTF-8 text".into()))?;
            let ca = Ca {
                key,
                der: facts.der,
                pem,
            };
            if facts.not_after.0 < now.plus(CA_WARNING_WINDOW).0 {
                report.warnings.push(format!(
                    "{} expires on {}; a CA is never renewed automatically and every certificate \
                     of the cluster chains to it",
                    def.cert,
                    facts.not_after.rfc3339()
                ));
            }
            (ca, FileStatus::Kept)
        }
        (None, Some(_)) => {
            return Err(AssetError::Invalid {
                path: dir.path(def.key),
                reason: format!(
                    "is missing while {} exists; a CA is never regenerated (the cluster trusts \
                     it): restore the key, or remove both files to start a new PKI",
                    def.cert
                ),
            });
        }
        (key, None) => {
            let status = if key.is_some() {
                FileStatus::Reissued {
                    reason: format!(
                        "the certificate was missing; reissued for the existing {}",
                        def.key
                    ),
                }
            } else {
                FileStatus::Created
            };
            let key = match key {
                Some(key) => key,
                None => key_at(dir, def.key)?,
            };
            let validity = hours(CA_MIN_VALIDITY_HOURS.max(u64::from(inputs.validity_hours)));
            let mut params = CertificateParams::default();
            params.distinguished_name = distinguished_name(def.cn, def.org);
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
            ];
            params.not_before = now.minus(NOT_BEFORE_SKEW).to_datetime(def.cert)?;
            params.not_after = now.plus(validity).to_datetime(def.cert)?;
            let seed = [
                b"ca\0".as_slice(),
                def.cn.as_bytes(),
                b"\0",
                &key.point,
                &now.0.to_be_bytes(),
            ]
            .concat();
            params.serial_number = Some(serial(&seed));
            let cert = params.self_signed(&key).map_err(generate_err(def.cert))?;
            let pem = cert.pem();
            dir.write(def.cert, pem.as_bytes(), Sensitivity::Public)?;
            (
                Ca {
                    key,
                    der: cert.der().to_vec(),
                    pem,
                },
                status,
            )
        }
    };
    let facts = parse_cert(ca.pem.as_bytes()).map_err(|reason| AssetError::Invalid {
        path: dir.path(def.cert),
        reason,
    })?;
    report.files.push(PkiFile {
        path: def.cert.into(),
        sha256: sha256_hex(&ca.der),
        not_after: Some(facts.not_after.rfc3339()),
        status,
    });
    for copy in def.copies {
        let status = match dir.read(copy)? {
            None => FileStatus::Created,
            Some(b) if b == ca.pem.as_bytes() => FileStatus::Kept,
            Some(_) => FileStatus::Reissued {
                reason: format!("differed from {}", def.cert),
            },
        };
        dir.write(copy, ca.pem.as_bytes(), Sensitivity::Public)?;
        report.files.push(PkiFile {
            path: (*copy).into(),
            sha256: sha256_hex(&ca.der),
            not_after: Some(facts.not_after.rfc3339()),
            status,
        });
    }
    Ok(ca)
}
