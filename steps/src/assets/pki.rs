//! The cluster's PKI under `asset_dir/tls/`, laid out as Lokomotive's
//! (`terraform-render-bootkube`): the Kubernetes CA and its apiserver, admin, kubelet,
//! kube-scheduler and kube-controller-manager certificates, the service-account key pair, the etcd CA and its client, server and peer
//! certificates, and (with `enable_aggregation`) the front-proxy CA and its client certificate.
//!
//! [`ensure_pki`] converges the directory instead of rendering it from scratch, because the files
//! are trusted by running machines:
//!
//! - **A CA that exists is reused, never regenerated.** Every certificate, kubeconfig and node
//!   trusts it; a new CA would cut them all off. A CA certificate whose key is missing, or a key
//!   that does not match its certificate, is an error naming the file. A CA key whose certificate
//!   was lost gets a new certificate for the same key and name, which existing certificates still
//!   chain to.
//! - **A leaf is reissued only when it must**: its file is missing or unreadable, its inputs
//!   changed (names, SANs, usages, the validity setting, the CA that signs it, its key), or it
//!   expires within [`renewal_window`]. Otherwise its files are left byte-identical. The inputs of
//!   each leaf are recorded as a digest in `tls/.pki-state.json` (no secret in it); a leaf without a
//!   record is reissued once.
//! - **Keys are reused.** A leaf is reissued with the key already in its `.key` file; a key is
//!   generated only when its file is missing. Certificates are signed with RFC 6979 (deterministic)
//!   ECDSA and their serial numbers are digests of their inputs, so the key files, the inputs and
//!   `now` determine every byte that is written.
//!
//! Differences from Lokomotive, on purpose:
//!
//! - **ECDSA P-256 keys instead of RSA 2048.** rcgen cannot generate RSA keys with ring, and
//!   Kubernetes (apiserver, kubelet, service-account tokens as ES256) and etcd accept ECDSA. Keys
//!   are PKCS#8 PEM (`PRIVATE KEY`); SEC1 (`EC PRIVATE KEY`) P-256 keys are read too. An RSA CA from
//!   a Lokomotive asset directory is refused with an error naming it. Following RFC 5480, the
//!   key usage of an ECDSA certificate has no `keyEncipherment`: leaves have `digitalSignature`,
//!   CAs `digitalSignature, keyCertSign, cRLSign`.
//! - **CAs are valid for at least ten years** ([`CA_MIN_VALIDITY_HOURS`]), leaves for
//!   `certs_validity_period_hours`. Lokomotive gave every certificate 8760 hours and clusters
//!   stopped working after a year; here leaves are renewed by the next run before they expire and
//!   the report carries every expiry date (`loko status`), with a warning when a CA is near its end
//!   (a CA is never renewed automatically).
//! - `not_before` is one hour before `now` ([`NOT_BEFORE_SKEW`]), not `now`: a node whose clock is
//!   behind the workstation's (before NTP has synced) must not see the certificates as not yet
//!   valid. `not_after` is exactly `now` + the validity.
//! - DNS SANs carry no trailing dot (the module passed `x.zone.`); etcd and the kubeconfigs use the
//!   names without it. The apiserver certificate also names each controller's hostname.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
#[cfg(test)]
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use p256::ecdsa::signature::Signer as _;
use p256::pkcs8::{DecodePrivateKey as _, EncodePublicKey as _, LineEnding};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyUsagePurpose, PublicKeyData, SanType, SerialNumber, SignatureAlgorithm, SigningKey,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer as _, X509Certificate};

use super::{AssetDir, AssetError, Sensitivity};

/// CAs live at least this long (ten years), whatever `certs_validity_period_hours` says: a CA is
/// never regenerated, so its expiry is the cluster's.
pub const CA_MIN_VALIDITY_HOURS: u64 = 10 * 8760;
/// How far `not_before` lies before `now`: tolerance for nodes whose clock is behind.
pub const NOT_BEFORE_SKEW: Duration = Duration::from_secs(3600);
/// A leaf is renewed when it expires within this long (or a third of its validity, if shorter).
pub const RENEWAL_WINDOW_MAX: Duration = Duration::from_secs(30 * 24 * 3600);
/// A CA that expires within this long gets a warning in the report: replacing it is a manual
/// operation on a running cluster, so the warning comes early.
pub const CA_WARNING_WINDOW: Duration = Duration::from_secs(180 * 24 * 3600);
/// Where the inputs digest of each leaf is kept, relative to the asset directory.
pub const STATE_FILE: &str = "tls/.pki-state.json";
/// Bumped when loko renders certificates differently on purpose, so that every leaf is reissued.
const RENDERING: u32 = 1;
/// The port of the apiserver, in its URLs.
const APISERVER_PORT: u16 = 6443;

/// How long before its expiry a certificate of `validity` is renewed:
/// min([`RENEWAL_WINDOW_MAX`], validity / 3), so that short test validities do not renew on
/// every run.
pub fn renewal_window(validity: Duration) -> Duration {
    RENEWAL_WINDOW_MAX.min(validity / 3)
}

/// Everything the certificates depend on. Derive it with [`PkiInputs::from_desired`]; the fields
/// are public so that a caller can see (and a test can vary) what goes into them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PkiInputs {
    /// `<cluster>.<zone>`: the apiserver for kubectl (admin kubeconfig).
    pub apiserver_public_name: String,
    /// `<cluster>-private.<zone>`: the apiserver for kubelets.
    pub apiserver_private_name: String,
    /// The controllers' hostnames, SANs of the apiserver certificate.
    pub controller_hostnames: Vec<String>,
    /// `<cluster>-etcd<i>.<zone>`, one per controller, in index order.
    pub etcd_names: Vec<String>,
    /// The `kubernetes` service IP (first host of service_cidr).
    pub apiserver_service_ip: Ipv4Addr,
    pub cluster_domain_suffix: String,
    pub enable_aggregation: bool,
    /// `certs_validity_period_hours`: the validity of every leaf.
    pub validity_hours: u32,
}

impl PkiInputs {
    /// The inputs of `cluster`. The names are those of its DNS records.
    pub fn from_desired(cluster: &specs::DesiredCluster) -> Self {
        let settings = &cluster.settings;
        let (public, private) = apiserver_names(cluster);
        PkiInputs {
            apiserver_public_name: public,
            apiserver_private_name: private,
            controller_hostnames: cluster.controllers().map(|n| n.hostname.clone()).collect(),
            etcd_names: (0..settings.controller_count)
                .map(|i| format!("{}-etcd{i}.{}", settings.cluster_name, settings.dns_zone))
                .collect(),
            apiserver_service_ip: cluster.apiserver_service_ip,
            cluster_domain_suffix: settings.cluster_domain_suffix.clone(),
            enable_aggregation: settings.enable_aggregation,
            validity_hours: settings.certs_validity_period_hours,
        }
    }
}

/// `(<cluster>.<zone>, <cluster>-private.<zone>)`: the names of the apiserver, as the DNS records
/// of [`specs::DesiredCluster::dns_records`] spell them.
pub(crate) fn apiserver_names(cluster: &specs::DesiredCluster) -> (String, String) {
    let s = &cluster.settings;
    (
        format!("{}.{}", s.cluster_name, s.dns_zone),
        format!("{}-private.{}", s.cluster_name, s.dns_zone),
    )
}

/// The URL of the apiserver at `name`.
pub(crate) fn apiserver_url(name: &str) -> String {
    format!("https://{name}:{APISERVER_PORT}")
}

/// What [`ensure_pki`] did, file by file. It goes into the journal, so it holds fingerprints and
/// dates, never a key.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PkiReport {
    /// Every certificate and public key of the PKI, in a fixed order.
    pub files: Vec<PkiFile>,
    /// What a user must act on: a CA that expires within [`CA_WARNING_WINDOW`].
    pub warnings: Vec<String>,
}

/// One certificate (or public key) of the PKI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PkiFile {
    /// Relative to the asset directory (`tls/apiserver.crt`).
    pub path: String,
    /// SHA-256 (hex) of the certificate's DER, or of the SubjectPublicKeyInfo of a public key.
    pub sha256: String,
    /// The certificate's `notAfter` (RFC 3339); `None` for a public key.
    pub not_after: Option<String>,
    pub status: FileStatus,
}

/// What happened to a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FileStatus {
    /// It did not exist and was written.
    Created,
    /// It existed and was replaced, for `reason`.
    Reissued { reason: String },
    /// It was left as it was.
    Kept,
}

/// Creates what is missing in `dir/tls`, reissues the leaves whose inputs changed or that expire
/// soon, and leaves everything else byte-identical (see the module docs for the rules).
///
/// `now` is the time the certificates are issued at; a caller passes `SystemTime::now()`, a test
/// a fixed time.
pub fn ensure_pki(
    dir: &AssetDir,
    inputs: &PkiInputs,
    now: SystemTime,
) -> Result<PkiReport, AssetError> {
    let now = UnixTime::new(now)?;
    let mut report = PkiReport::default();
    let mut state = PkiState::load(dir)?;

    let kube_ca = ensure_ca(dir, &KUBE_CA, inputs, now, &mut report)?;
    let etcd_ca = ensure_ca(dir, &ETCD_CA, inputs, now, &mut report)?;
    let aggregation_ca = if inputs.enable_aggregation {
        Some(ensure_ca(dir, &AGGREGATION_CA, inputs, now, &mut report)?)
    } else {
        None
    };
    for leaf in leaves(inputs) {
        let ca = match leaf.ca {
            CaKind::Kube => &kube_ca,
            CaKind::Etcd => &etcd_ca,
            CaKind::Aggregation => match &aggregation_ca {
                Some(ca) => ca,
                None => continue,
            },
        };
        ensure_leaf(dir, &leaf, ca, inputs, now, &mut state, &mut report)?;
    }
    ensure_service_account(dir, &mut report)?;
    state.save(dir)?;
    Ok(report)
}

/// A point in time, whole seconds since the epoch (X.509 times have no fractions).
#[derive(Debug, Clone, Copy)]
struct UnixTime(i64);

impl UnixTime {
    fn new(t: SystemTime) -> Result<Self, AssetError> {
        let secs = t
            .duration_since(UNIX_EPOCH)
            .map_err(|_| AssetError::Generate {
                what: "the PKI".into(),
                reason: "the clock is before 1970".into(),
            })?
            .as_secs();
        Ok(UnixTime(i64::try_from(secs).unwrap_or(i64::MAX)))
    }

    fn plus(self, d: Duration) -> UnixTime {
        UnixTime(
            self.0
                .saturating_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
        )
    }

    fn minus(self, d: Duration) -> UnixTime {
        UnixTime(
            self.0
                .saturating_sub(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
        )
    }

    fn to_datetime(self, what: &str) -> Result<OffsetDateTime, AssetError> {
        OffsetDateTime::from_unix_timestamp(self.0).map_err(|e| AssetError::Generate {
            what: what.into(),
            reason: format!("time out of range: {e}"),
        })
    }

    fn rfc3339(self) -> String {
        let t = if self.0 >= 0 {
            UNIX_EPOCH + Duration::from_secs(self.0.unsigned_abs())
        } else {
            UNIX_EPOCH - Duration::from_secs(self.0.unsigned_abs())
        };
        humantime::format_rfc3339_seconds(t).to_string()
    }
}

fn hours(h: u64) -> Duration {
    Duration::from_secs(h.saturating_mul(3600))
}

// ---------------------------------------------------------------------------------------------
// Keys

/// An ECDSA P-256 key that signs with RFC 6979 (deterministic nonces): the same key and message
/// give the same signature, so re-rendering a certificate gives the same bytes.
struct EcKey {
    signing: p256::ecdsa::SigningKey,
    /// The public key as an uncompressed SEC1 point, as X.509 carries it.
    point: Vec<u8>,
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
    fn public_key_pem(&self, what: &str) -> Result<String, AssetError> {
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
fn read_key(dir: &AssetDir, rel: &str) -> Result<Option<EcKey>, AssetError> {
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
fn key_at(dir: &AssetDir, rel: &str) -> Result<EcKey, AssetError> {
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

// ---------------------------------------------------------------------------------------------
// Reading certificates

/// What loko needs to know about a certificate file.
struct CertFacts {
    der: Vec<u8>,
    /// The subject public key (SEC1 point for EC keys).
    point: Vec<u8>,
    not_after: UnixTime,
    is_ca: bool,
}

fn parse_cert(bytes: &[u8]) -> Result<CertFacts, String> {
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
fn signed_by(der: &[u8], ca_der: &[u8]) -> bool {
    let (Ok((_, cert)), Ok((_, ca))) = (
        X509Certificate::from_der(der),
        X509Certificate::from_der(ca_der),
    ) else {
        return false;
    };
    cert.issuer().as_raw() == ca.subject().as_raw()
        && cert.verify_signature(Some(ca.public_key())).is_ok()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// What to issue

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CaKind {
    Kube,
    Etcd,
    Aggregation,
}

/// A certificate authority and where its files go.
struct CaDef {
    cert: &'static str,
    key: &'static str,
    /// More paths that hold the same certificate (the layout etcd and bootkube expect).
    copies: &'static [&'static str],
    cn: &'static str,
    org: Option<&'static str>,
}

const KUBE_CA: CaDef = CaDef {
    cert: "tls/ca.crt",
    key: "tls/ca.key",
    copies: &[],
    cn: "kubernetes-ca",
    org: Some("bootkube"),
};

const ETCD_CA: CaDef = CaDef {
    cert: "tls/etcd-ca.crt",
    key: "tls/etcd-ca.key",
    copies: &[
        "tls/etcd-client-ca.crt",
        "tls/etcd/server-ca.crt",
        "tls/etcd/peer-ca.crt",
    ],
    cn: "etcd-ca",
    org: Some("etcd"),
};

const AGGREGATION_CA: CaDef = CaDef {
    cert: "tls/aggregation-ca.crt",
    key: "tls/aggregation-ca.key",
    copies: &[],
    cn: "kubernetes-front-proxy-ca",
    org: None,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Usage {
    ServerAndClient,
    Client,
}

/// A leaf certificate: its names, SANs, usages and signer.
struct LeafDef {
    cert: &'static str,
    key: &'static str,
    ca: CaKind,
    cn: &'static str,
    org: Option<&'static str>,
    dns_names: Vec<String>,
    ips: Vec<IpAddr>,
    usage: Usage,
}

/// The leaves of the cluster, in the order they are issued and reported.
fn leaves(inputs: &PkiInputs) -> Vec<LeafDef> {
    let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut apiserver_names = vec![
        inputs.apiserver_public_name.clone(),
        inputs.apiserver_private_name.clone(),
    ];
    apiserver_names.extend(inputs.controller_hostnames.iter().cloned());
    apiserver_names
        .extend(["kubernetes", "kubernetes.default", "kubernetes.default.svc"].map(String::from));
    apiserver_names.push(format!(
        "kubernetes.default.svc.{}",
        inputs.cluster_domain_suffix
    ));
    let mut etcd_with_localhost = inputs.etcd_names.clone();
    etcd_with_localhost.push("localhost".into());
    vec![
        LeafDef {
            cert: "tls/apiserver.crt",
            key: "tls/apiserver.key",
            ca: CaKind::Kube,
            cn: "kube-apiserver",
            org: Some("system:masters"),
            dns_names: apiserver_names,
            ips: vec![IpAddr::V4(inputs.apiserver_service_ip), localhost],
            usage: Usage::ServerAndClient,
        },
        LeafDef {
            cert: "tls/admin.crt",
            key: "tls/admin.key",
            ca: CaKind::Kube,
            cn: "kubernetes-admin",
            org: Some("system:masters"),
            dns_names: vec![],
            ips: vec![],
            usage: Usage::Client,
        },
        LeafDef {
            cert: "tls/kubelet.crt",
            key: "tls/kubelet.key",
            ca: CaKind::Kube,
            cn: "kubelet",
            org: Some("system:nodes"),
            dns_names: vec![],
            ips: vec![],
            usage: Usage::ServerAndClient,
        },
        // The static control plane's scheduler and controller-manager act as the users
        // Kubernetes' bootstrap policy binds to their roles (`system:kube-scheduler`,
        // `system:volume-scheduler`, `system:kube-controller-manager` and the
        // `extension-apiserver-authentication-reader` Role), as kubeadm's do: no binding to
        // render, and neither holds `system:masters`.
        LeafDef {
            cert: "tls/kube-scheduler.crt",
            key: "tls/kube-scheduler.key",
            ca: CaKind::Kube,
            cn: "system:kube-scheduler",
            org: None,
            dns_names: vec![],
            ips: vec![],
            usage: Usage::Client,
        },
        LeafDef {
            cert: "tls/kube-controller-manager.crt",
            key: "tls/kube-controller-manager.key",
            ca: CaKind::Kube,
            cn: "system:kube-controller-manager",
            org: None,
            dns_names: vec![],
            ips: vec![],
            usage: Usage::Client,
        },
        LeafDef {
            cert: "tls/etcd-client.crt",
            key: "tls/etcd-client.key",
            ca: CaKind::Etcd,
            cn: "etcd-client",
            org: Some("etcd"),
            dns_names: etcd_with_localhost.clone(),
            ips: vec![localhost],
            usage: Usage::ServerAndClient,
        },
        LeafDef {
            cert: "tls/etcd/server.crt",
            key: "tls/etcd/server.key",
            ca: CaKind::Etcd,
            cn: "etcd-server",
            org: Some("etcd"),
            dns_names: etcd_with_localhost,
            ips: vec![localhost],
            usage: Usage::ServerAndClient,
        },
        // Lokomotive's peer certificate names only the etcd hosts. 127.0.0.1 is added so that
        // the certificates can be proven with a local 3-member etcd cluster (steps/tests/
        // pki_etcd.rs). Members dial each other by their etcd names; the extra SAN serves only
        // whoever holds the peer key, as the others do.
        LeafDef {
            cert: "tls/etcd/peer.crt",
            key: "tls/etcd/peer.key",
            ca: CaKind::Etcd,
            cn: "etcd-peer",
            org: Some("etcd"),
            dns_names: inputs.etcd_names.clone(),
            ips: vec![localhost],
            usage: Usage::ServerAndClient,
        },
        // The apiserver's `--proxy-client-cert-file`: what aggregated API servers see it as.
        LeafDef {
            cert: "tls/aggregation-client.crt",
            key: "tls/aggregation-client.key",
            ca: CaKind::Aggregation,
            cn: "kube-apiserver",
            org: None,
            dns_names: vec![],
            ips: vec![],
            usage: Usage::Client,
        },
    ]
}

fn distinguished_name(cn: &str, org: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    if let Some(org) = org {
        dn.push(DnType::OrganizationName, org);
    }
    dn.push(DnType::CommonName, cn);
    dn
}

/// A positive 16-byte serial number derived from `seed`.
fn serial(seed: &[u8]) -> SerialNumber {
    let digest = Sha256::digest(seed);
    let mut bytes = digest[..16].to_vec();
    // Positive, and never shortened by DER's minimal integer encoding.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

fn generate_err(what: &str) -> impl FnOnce(rcgen::Error) -> AssetError + '_ {
    move |e| AssetError::Generate {
        what: what.into(),
        reason: e.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// CAs

/// A CA ready to sign.
struct Ca {
    key: EcKey,
    der: Vec<u8>,
    pem: String,
}

impl Ca {
    fn issuer(&self, def_cert: &str) -> Result<Issuer<'static, &EcKey>, AssetError> {
        Issuer::from_ca_cert_pem(&self.pem, &self.key).map_err(generate_err(def_cert))
    }
}

fn ensure_ca(
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

// ---------------------------------------------------------------------------------------------
// Leaves

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
struct PkiState {
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
    fn load(dir: &AssetDir) -> Result<Self, AssetError> {
        Ok(dir
            .read(STATE_FILE)?
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default())
    }

    fn save(&self, dir: &AssetDir) -> Result<(), AssetError> {
        let mut text = serde_json::to_string_pretty(self).map_err(|e| AssetError::Generate {
            what: STATE_FILE.into(),
            reason: e.to_string(),
        })?;
        text.push('\n');
        dir.write(STATE_FILE, text.as_bytes(), Sensitivity::Public)
    }
}

fn ensure_leaf(
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

// ---------------------------------------------------------------------------------------------
// Service accounts

const SERVICE_ACCOUNT_KEY: &str = "tls/service-account.key";
const SERVICE_ACCOUNT_PUB: &str = "tls/service-account.pub";

/// The key pair that signs service-account tokens. Like a CA, it is never regenerated while its
/// public half exists: every token issued so far would be rejected.
fn ensure_service_account(dir: &AssetDir, report: &mut PkiReport) -> Result<(), AssetError> {
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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_750_000_000)
    }

    /// The tutorial's cluster, with `edit` applied to the spec text.
    fn cluster(edit: impl Fn(String) -> String) -> specs::DesiredCluster {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/tutorial.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        specs::parse(&edit(text), &path.display().to_string())
            .unwrap_or_else(|e| panic!("{e}"))
            .desired()
    }

    fn inputs(edit: impl Fn(String) -> String) -> PkiInputs {
        PkiInputs::from_desired(&cluster(edit))
    }

    fn tutorial() -> PkiInputs {
        inputs(|t| t)
    }

    fn three_controllers() -> PkiInputs {
        inputs(|t| t.replace("controller_count: 1", "controller_count: 3"))
    }

    fn new_dir() -> (tempfile::TempDir, AssetDir) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = AssetDir::create(tmp.path().join("assets")).unwrap();
        (tmp, dir)
    }

    /// Every file under the asset directory, relative path → bytes.
    fn snapshot(dir: &AssetDir) -> BTreeMap<String, Vec<u8>> {
        fn walk(root: &Path, at: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
            for entry in std::fs::read_dir(at).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(root, &path, out);
                } else {
                    let rel = path.strip_prefix(root).unwrap().display().to_string();
                    out.insert(rel, std::fs::read(&path).unwrap());
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(dir.root(), dir.root(), &mut out);
        out
    }

    fn status<'a>(report: &'a PkiReport, path: &str) -> &'a FileStatus {
        &report
            .files
            .iter()
            .find(|f| f.path == path)
            .unwrap_or_else(|| panic!("{path} not in {report:#?}"))
            .status
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn lays_out_lokomotives_files_with_secret_modes() {
        let (_tmp, dir) = new_dir();
        let report = ensure_pki(&dir, &tutorial(), now()).unwrap();
        let files = snapshot(&dir);
        for name in [
            "ca",
            "apiserver",
            "admin",
            "kubelet",
            "kube-scheduler",
            "kube-controller-manager",
            "etcd-ca",
            "etcd-client",
            "etcd/server",
            "etcd/peer",
        ] {
            for ext in ["crt", "key"] {
                assert!(
                    files.contains_key(&format!("tls/{name}.{ext}")),
                    "tls/{name}.{ext}"
                );
            }
            assert_eq!(
                mode(&dir.path(format!("tls/{name}.key"))),
                0o600,
                "{name}.key"
            );
            assert_eq!(
                mode(&dir.path(format!("tls/{name}.crt"))),
                0o644,
                "{name}.crt"
            );
        }
        for copy in [
            "tls/etcd-client-ca.crt",
            "tls/etcd/server-ca.crt",
            "tls/etcd/peer-ca.crt",
        ] {
            assert_eq!(files[copy], files["tls/etcd-ca.crt"], "{copy}");
        }
        assert_eq!(mode(&dir.path("tls/service-account.key")), 0o600);
        assert!(
            String::from_utf8_lossy(&files["tls/service-account.pub"])
                .starts_with("-----BEGIN PUBLIC KEY-----\n")
        );
        assert_eq!(mode(&dir.path("tls")), 0o700);
        assert_eq!(mode(&dir.path("tls/etcd")), 0o700);
        // The tutorial leaves aggregation off.
        assert!(!files.keys().any(|k| k.contains("aggregation")));
        assert!(report.files.iter().all(|f| f.status == FileStatus::Created));
        // The report is journaled: no key in it.
        let json = serde_json::to_string(&report).unwrap();
        assert!(
            !json.contains("PRIVATE KEY") && !json.contains(".key\""),
            "{json}"
        );
        assert!(report.warnings.is_empty());
    }

    #[test]
    fn a_second_run_changes_no_byte_and_retightens_modes() {
        let (_tmp, dir) = new_dir();
        ensure_pki(&dir, &tutorial(), now()).unwrap();
        let before = snapshot(&dir);
        std::fs::set_permissions(
            dir.path("tls/ca.key"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let report = ensure_pki(&dir, &tutorial(), now() + 40 * DAY).unwrap();
        assert_eq!(snapshot(&dir), before);
        assert!(
            report.files.iter().all(|f| f.status == FileStatus::Kept),
            "{report:#?}"
        );
        assert_eq!(mode(&dir.path("tls/ca.key")), 0o600);
    }

    #[test]
    fn adding_a_controller_reissues_the_leaves_that_name_it_with_their_keys() {
        let (_tmp, dir) = new_dir();
        ensure_pki(&dir, &tutorial(), now()).unwrap();
        let before = snapshot(&dir);
        let report = ensure_pki(&dir, &three_controllers(), now() + DAY).unwrap();
        let after = snapshot(&dir);
        for same in [
            "tls/ca.crt",
            "tls/ca.key",
            "tls/etcd-ca.crt",
            "tls/etcd-ca.key",
            "tls/apiserver.key",
            "tls/etcd/server.key",
            "tls/admin.crt",
            "tls/kubelet.crt",
            "tls/service-account.key",
        ] {
            assert_eq!(before[same], after[same], "{same} changed");
        }
        for changed in [
            "tls/apiserver.crt",
            "tls/etcd-client.crt",
            "tls/etcd/server.crt",
            "tls/etcd/peer.crt",
        ] {
            assert_ne!(before[changed], after[changed], "{changed} kept");
            assert!(
                matches!(status(&report, changed), FileStatus::Reissued { reason } if reason.contains("inputs changed")),
                "{changed}: {report:#?}"
            );
        }
        assert_eq!(status(&report, "tls/ca.crt"), &FileStatus::Kept);
        assert_eq!(status(&report, "tls/admin.crt"), &FileStatus::Kept);
    }

    #[test]
    fn the_same_keys_and_now_give_the_same_bytes() {
        let (_a, first) = new_dir();
        ensure_pki(&first, &three_controllers(), now()).unwrap();
        let (_b, second) = new_dir();
        for (rel, bytes) in snapshot(&first) {
            if rel.ends_with(".key") {
                second.write(&rel, &bytes, Sensitivity::Secret).unwrap();
            }
        }
        ensure_pki(&second, &three_controllers(), now()).unwrap();
        assert_eq!(snapshot(&first), snapshot(&second));
    }

    #[test]
    fn leaves_are_renewed_before_they_expire_and_the_ca_is_not() {
        let (_tmp, dir) = new_dir();
        let inputs = tutorial();
        ensure_pki(&dir, &inputs, now()).unwrap();
        let before = snapshot(&dir);
        let later = now() + hours(u64::from(inputs.validity_hours)) - 20 * DAY;
        let report = ensure_pki(&dir, &inputs, later).unwrap();
        let after = snapshot(&dir);
        assert!(
            matches!(status(&report, "tls/admin.crt"), FileStatus::Reissued { reason } if reason.contains("renewal window of 30 days")),
            "{report:#?}"
        );
        assert_ne!(before["tls/admin.crt"], after["tls/admin.crt"]);
        assert_eq!(before["tls/admin.key"], after["tls/admin.key"]);
        assert_eq!(before["tls/ca.crt"], after["tls/ca.crt"]);
        assert!(report.warnings.is_empty(), "{:?}", report.warnings);
        // Near the end of the CA's ten years: a warning, never a new CA.
        let much_later = now() + hours(CA_MIN_VALIDITY_HOURS) - 10 * DAY;
        let report = ensure_pki(&dir, &inputs, much_later).unwrap();
        assert_eq!(snapshot(&dir)["tls/ca.crt"], before["tls/ca.crt"]);
        assert!(
            report
                .warnings
                .iter()
                .any(|w| w.starts_with("tls/ca.crt expires on")),
            "{:?}",
            report.warnings
        );
    }

    #[test]
    fn a_validity_change_reissues_every_leaf_and_no_ca() {
        let (_tmp, dir) = new_dir();
        ensure_pki(&dir, &tutorial(), now()).unwrap();
        let mut inputs = tutorial();
        inputs.validity_hours = 24 * 90;
        let report = ensure_pki(&dir, &inputs, now()).unwrap();
        assert!(matches!(
            status(&report, "tls/kubelet.crt"),
            FileStatus::Reissued { .. }
        ));
        assert_eq!(status(&report, "tls/etcd-ca.crt"), &FileStatus::Kept);
        let kubelet = report
            .files
            .iter()
            .find(|f| f.path == "tls/kubelet.crt")
            .unwrap();
        assert_eq!(
            kubelet.not_after.as_deref(),
            Some(UnixTime::new(now() + 90 * DAY).unwrap().rfc3339().as_str())
        );
    }

    #[test]
    fn aggregation_adds_its_ca_and_client() {
        let (_tmp, dir) = new_dir();
        let inputs = inputs(|t| format!("{t}\nenable_aggregation: true\n"));
        let report = ensure_pki(&dir, &inputs, now()).unwrap();
        assert_eq!(
            status(&report, "tls/aggregation-ca.crt"),
            &FileStatus::Created
        );
        assert_eq!(
            status(&report, "tls/aggregation-client.crt"),
            &FileStatus::Created
        );
        assert_eq!(mode(&dir.path("tls/aggregation-client.key")), 0o600);
    }

    #[test]
    fn a_corrupt_ca_key_is_an_error_naming_it() {
        let (_tmp, dir) = new_dir();
        ensure_pki(&dir, &tutorial(), now()).unwrap();
        dir.write(
            "tls/ca.key",
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            Sensitivity::Secret,
        )
        .unwrap();
        let err = ensure_pki(&dir, &tutorial(), now()).unwrap_err();
        assert!(
            matches!(&err, AssetError::Invalid { path, .. } if path == &dir.path("tls/ca.key")),
            "{err}"
        );
        assert!(err.to_string().contains("tls/ca.key"), "{err}");
    }

    #[test]
    fn a_ca_certificate_of_another_key_is_refused() {
        let (_tmp, dir) = new_dir();
        ensure_pki(&dir, &tutorial(), now()).unwrap();
        let etcd_ca = dir.read("tls/etcd-ca.crt").unwrap().unwrap();
        dir.write("tls/ca.crt", &etcd_ca, Sensitivity::Public)
            .unwrap();
        let err = ensure_pki(&dir, &tutorial(), now()).unwrap_err();
        assert!(
            matches!(&err, AssetError::Invalid { path, reason } if path == &dir.path("tls/ca.crt") && reason.contains("does not belong to tls/ca.key")),
            "{err}"
        );
    }

    #[test]
    fn a_ca_certificate_without_its_key_is_refused() {
        let (_tmp, dir) = new_dir();
        ensure_pki(&dir, &tutorial(), now()).unwrap();
        std::fs::remove_file(dir.path("tls/etcd-ca.key")).unwrap();
        let err = ensure_pki(&dir, &tutorial(), now()).unwrap_err();
        assert!(
            matches!(&err, AssetError::Invalid { path, .. } if path == &dir.path("tls/etcd-ca.key")),
            "{err}"
        );
    }

    #[test]
    fn a_lost_ca_certificate_is_reissued_for_its_key_and_leaves_still_chain() {
        let (_tmp, dir) = new_dir();
        ensure_pki(&dir, &tutorial(), now()).unwrap();
        let before = snapshot(&dir);
        std::fs::remove_file(dir.path("tls/ca.crt")).unwrap();
        let report = ensure_pki(&dir, &tutorial(), now() + DAY).unwrap();
        assert!(matches!(
            status(&report, "tls/ca.crt"),
            FileStatus::Reissued { .. }
        ));
        let after = snapshot(&dir);
        assert_eq!(before["tls/ca.key"], after["tls/ca.key"]);
        let ca = parse_cert(&after["tls/ca.crt"]).unwrap();
        let old_admin = parse_cert(&before["tls/admin.crt"]).unwrap();
        assert!(signed_by(&old_admin.der, &ca.der));
    }

    #[test]
    fn a_leaf_without_a_record_or_with_a_foreign_certificate_is_reissued() {
        let (_tmp, dir) = new_dir();
        ensure_pki(&dir, &tutorial(), now()).unwrap();
        std::fs::remove_file(dir.path(STATE_FILE)).unwrap();
        let report = ensure_pki(&dir, &tutorial(), now()).unwrap();
        assert!(
            matches!(status(&report, "tls/admin.crt"), FileStatus::Reissued { reason } if reason.contains("no record")),
            "{report:#?}"
        );
        let kubelet = dir.read("tls/kubelet.crt").unwrap().unwrap();
        dir.write("tls/admin.crt", &kubelet, Sensitivity::Public)
            .unwrap();
        let report = ensure_pki(&dir, &tutorial(), now()).unwrap();
        assert!(
            matches!(status(&report, "tls/admin.crt"), FileStatus::Reissued { reason } if reason.contains("did not match tls/admin.key")),
            "{report:#?}"
        );
        let report = ensure_pki(&dir, &tutorial(), now()).unwrap();
        assert!(report.files.iter().all(|f| f.status == FileStatus::Kept));
    }

    #[test]
    fn a_service_account_public_key_without_its_key_is_refused() {
        let (_tmp, dir) = new_dir();
        ensure_pki(&dir, &tutorial(), now()).unwrap();
        std::fs::remove_file(dir.path("tls/service-account.key")).unwrap();
        let err = ensure_pki(&dir, &tutorial(), now()).unwrap_err();
        assert!(err.to_string().contains("tls/service-account.key"), "{err}");
    }

    #[test]
    fn inputs_of_the_tutorial() {
        let inputs = three_controllers();
        assert_eq!(inputs.apiserver_public_name, "supernova.packet.example.com");
        assert_eq!(
            inputs.apiserver_private_name,
            "supernova-private.packet.example.com"
        );
        assert_eq!(
            inputs.etcd_names,
            [0, 1, 2].map(|i| format!("supernova-etcd{i}.packet.example.com"))
        );
        assert_eq!(inputs.controller_hostnames[2], "supernova-controller-2");
        assert_eq!(inputs.apiserver_service_ip, Ipv4Addr::new(10, 3, 0, 1));
        assert_eq!(renewal_window(hours(8760)), RENEWAL_WINDOW_MAX);
        assert_eq!(renewal_window(hours(24)), hours(8));
    }
}
