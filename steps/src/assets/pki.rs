//! The cluster's PKI under `asset_dir/tls/`, laid out as Lokomotive's
//! (`terraform-render-bootkube`): the Kubernetes CA and its apiserver, admin,
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

use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{AssetDir, AssetError};

mod ca;
mod cert;
mod keys;
mod layout;
mod leaf;
mod service_account;
#[cfg(test)]
mod tests;

use ca::ensure_ca;
use layout::{AGGREGATION_CA, CaKind, ETCD_CA, KUBE_CA, leaves};
use leaf::{PkiState, ensure_leaf};
use service_account::ensure_service_account;

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

/// The cluster's id: the first 16 hex digits of the SHA-256 of its CA certificate (DER), the
/// fingerprint the PKI step journals for `tls/ca.crt`. Made with the CA at the first run and
/// never changed after (the CA is reused, never replaced), so it tells this cluster's devices
/// from those of a copy of its spec built on another CA. `None` before the CA exists.
pub fn cluster_id(dir: &AssetDir) -> Result<Option<String>, AssetError> {
    let Some(bytes) = dir.read(KUBE_CA.cert)? else {
        return Ok(None);
    };
    let facts = cert::parse_cert(&bytes).map_err(|reason| AssetError::Invalid {
        path: dir.path(KUBE_CA.cert),
        reason,
    })?;
    let mut id = cert::sha256_hex(&facts.der);
    id.truncate(16);
    Ok(Some(id))
}

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
pub fn apiserver_names(cluster: &specs::DesiredCluster) -> (String, String) {
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

fn generate_err(what: &str) -> impl FnOnce(rcgen::Error) -> AssetError + '_ {
    move |e| AssetError::Generate {
        what: what.into(),
        reason: e.to_string(),
    }
}
