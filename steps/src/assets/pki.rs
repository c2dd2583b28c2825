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

use std::time::SystemTime;

use super::{AssetDir, AssetError};

mod ca;
mod cert;
mod clock;
mod inputs;
mod keys;
mod layout;
mod leaf;
mod report;
mod service_account;
#[cfg(test)]
mod tests;

use ca::ensure_ca;
use clock::UnixTime;
use layout::{AGGREGATION_CA, CaKind, ETCD_CA, KUBE_CA, leaves};
use leaf::{PkiState, ensure_leaf};
use service_account::ensure_service_account;

pub use clock::{
    CA_MIN_VALIDITY_HOURS, CA_WARNING_WINDOW, NOT_BEFORE_SKEW, RENEWAL_WINDOW_MAX, renewal_window,
};
pub(crate) use inputs::apiserver_url;
pub use inputs::{PkiInputs, apiserver_names};
pub use leaf::STATE_FILE;
pub use report::{FileStatus, PkiFile, PkiReport};

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
