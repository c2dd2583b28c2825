//! The PKI's private keys: ECDSA P-256, read from PEM (PKCS#8 or SEC1) or generated once and
//! kept, and signing with RFC 6979 so that a certificate re-rendered from the same key has the
//! same bytes.

use p256::ecdsa::signature::Signer as _;
use p256::pkcs8::{DecodePrivateKey as _, EncodePublicKey as _, LineEnding};
use rcgen::{PublicKeyData, SignatureAlgorithm, SigningKey};

use super::cert::generate_err;
use crate::assets::{AssetDir, AssetError, Sensitivity};

/// An ECDSA P-256 key that signs with RFC 6979 (deterministic nonces): the same key and message
/// give the same signature, so re-rendering a certificate gives the same bytes.
pub(super) struct EcKey {
    signing: p256::ecdsa::SigningKey,
    /// The public key as an uncompressed SEC1 point, as X.509 carries it.
    pub(super) point: Vec<u8>,
}

impl EcKey {
    fn from_pem(text: &str) -> Result<Self, String> {
        let secret = p256::SecretKey::from_pkcs8_pem(text)
            .or_else(|_| p256::SecretKey::from_sec1_pem(text))
            .map_err(|e| {
                format!(
                    "not an ECDSA P-256 private key in PEM (PKCS#8 or SEC1), as loko writes: {e}"
                )
            })?;
        let signing = p256::ecdsa::SigningKey::from(&secret);
        let point = signing
            .verifying_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec();
        Ok(EcKey { signing, point })
    }

    /// The public key as a PEM `PUBLIC KEY` (SubjectPublicKeyInfo).
    pub(super) fn public_key_pem(&self, what: &str) -> Result<String, AssetError> {
        self.signing
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| AssetError::Generate {
                what: what.into(),
                reason: e.to_string(),
            })
    }
}

impl PublicKeyData for EcKey {
    fn der_bytes(&self) -> &[u8] {
        &self.point
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

impl SigningKey for EcKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let signature: p256::ecdsa::Signature = self.signing.sign(msg);
        Ok(signature.to_der().as_bytes().to_vec())
    }
}

/// Reads the key at `rel`; `Ok(None)` if there is none, `Invalid` naming it if it is not one.
/// A key that is read has its mode re-tightened (the bytes stay).
pub(super) fn read_key(dir: &AssetDir, rel: &str) -> Result<Option<EcKey>, AssetError> {
    let Some(bytes) = dir.read(rel)? else {
        return Ok(None);
    };
    let invalid = |reason: String| AssetError::Invalid {
        path: dir.path(rel),
        reason,
    };
    let text = std::str::from_utf8(&bytes).map_err(|_| invalid("not UTF-8 text".into()))?;
    let key = EcKey::from_pem(text).map_err(invalid)?;
    dir.write(rel, &bytes, Sensitivity::Secret)?;
    Ok(Some(key))
}

/// Reads the key at `rel`, or generates and writes one if there is none.
pub(super) fn key_at(dir: &AssetDir, rel: &str) -> Result<EcKey, AssetError> {
    if let Some(key) = read_key(dir, rel)? {
        return Ok(key);
    }
    let generated = rcgen::KeyPair::generate().map_err(generate_err(rel))?;
    let pem = generated.serialize_pem();
    dir.write(rel, pem.as_bytes(), Sensitivity::Secret)?;
    EcKey::from_pem(&pem).map_err(|reason| AssetError::Generate {
        what: rel.into(),
        reason,
    })
}
