//! What loko reads from a certificate it finds (its key, expiry, whether it is a CA, who signed
//! it), and the subject names and serial numbers of those it writes.

use rcgen::{DistinguishedName, DnType, SerialNumber};
use sha2::{Digest as _, Sha256};
use x509_parser::prelude::{FromDer as _, X509Certificate};

use super::clock::UnixTime;
use crate::assets::AssetError;

/// What loko needs to know about a certificate file.
pub(super) struct CertFacts {
    pub(super) der: Vec<u8>,
    /// The subject public key (SEC1 point for EC keys).
    pub(super) point: Vec<u8>,
    pub(super) not_after: UnixTime,
    pub(super) is_ca: bool,
}

pub(super) fn parse_cert(bytes: &[u8]) -> Result<CertFacts, String> {
    let (_, pem) =
        x509_parser::pem::parse_x509_pem(bytes).map_err(|e| format!("not a PEM file: {e}"))?;
    if pem.label != "CERTIFICATE" {
        return Err(format!("a PEM {:?}, not a CERTIFICATE", pem.label));
    }
    let (_, cert) = X509Certificate::from_der(&pem.contents)
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    Ok(CertFacts {
        point: cert.public_key().subject_public_key.data.to_vec(),
        not_after: UnixTime(cert.validity().not_after.timestamp()),
        is_ca: cert.is_ca(),
        der: pem.contents.clone(),
    })
}

/// Whether the certificate `der` carries a valid signature of the CA certificate `ca_der`.
pub(super) fn signed_by(der: &[u8], ca_der: &[u8]) -> bool {
    let (Ok((_, cert)), Ok((_, ca))) = (
        X509Certificate::from_der(der),
        X509Certificate::from_der(ca_der),
    ) else {
        return false;
    };
    cert.issuer().as_raw() == ca.subject().as_raw()
        && cert.verify_signature(Some(ca.public_key())).is_ok()
}

pub(super) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub(super) fn distinguished_name(cn: &str, org: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    if let Some(org) = org {
        dn.push(DnType::OrganizationName, org);
    }
    dn.push(DnType::CommonName, cn);
    dn
}

/// A positive 16-byte serial number derived from `seed`.
pub(super) fn serial(seed: &[u8]) -> SerialNumber {
    let digest = Sha256::digest(seed);
    let mut bytes = digest[..16].to_vec();
    // Positive, and never shortened by DER's minimal integer encoding.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

pub(super) fn generate_err(what: &str) -> impl FnOnce(rcgen::Error) -> AssetError + '_ {
    move |e| AssetError::Generate {
        what: what.into(),
        reason: e.to_string(),
    }
}
