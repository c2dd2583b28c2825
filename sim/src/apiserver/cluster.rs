//! Which kubelets belong to the cluster of an apiserver emulator: those whose kubeconfig names a
//! server its certificate is valid for and trusts the CA its clients are checked against.

use std::path::Path;

use base64::Engine as _;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use serde_yaml::Value;

use super::error::ApiserverError;
use crate::judge::x509::{ServingNames, url_host};

/// The apiserver names and CA of one cluster, from the apiserver's own files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterIdentity {
    /// What a kubelet may dial this apiserver at: the SANs of its serving certificate (a
    /// client verifies the host it dialed against them).
    hosts: ServingNames,
    /// DER of the cluster CA certificate.
    ca_der: Vec<u8>,
}

impl ClusterIdentity {
    /// Reads the serving certificate (`--tls-cert-file`) and the client CA (`--client-ca-file`).
    pub fn from_files(serving_cert: &Path, client_ca: &Path) -> Result<Self, ApiserverError> {
        let asset_error = |path: &Path, reason: String| ApiserverError::Asset {
            path: path.to_owned(),
            reason,
        };
        let hosts = ServingNames::from_pem_file(serving_cert)
            .map_err(|reason| asset_error(serving_cert, reason))?;
        if hosts.is_empty() {
            return Err(asset_error(
                serving_cert,
                "names no DNS name or IP address: no client could verify it".to_owned(),
            ));
        }
        let ca = CertificateDer::from_pem_file(client_ca)
            .map_err(|error| asset_error(client_ca, format!("no PEM certificate: {error}")))?;
        Ok(ClusterIdentity {
            hosts,
            ca_der: ca.as_ref().to_vec(),
        })
    }

    /// Whether `der` is the CA the apiserver checks client certificates against.
    pub fn is_client_ca(&self, der: &[u8]) -> bool {
        self.ca_der == der
    }

    /// Whether a kubelet with this kubeconfig talks to this cluster's apiserver with its CA.
    pub fn admits_kubelet(&self, kubeconfig: &str) -> bool {
        let Some(cluster) = kubeconfig_cluster(kubeconfig) else {
            return false;
        };
        let host_matches = cluster
            .get("server")
            .and_then(Value::as_str)
            .and_then(url_host)
            .is_some_and(|host| self.hosts.covers(host));
        let ca_matches = cluster
            .get("certificate-authority-data")
            .and_then(Value::as_str)
            .and_then(|data| {
                base64::engine::general_purpose::STANDARD
                    .decode(data.trim())
                    .ok()
            })
            .and_then(|pem| CertificateDer::from_pem_slice(&pem).ok())
            .is_some_and(|ca| ca.as_ref() == self.ca_der.as_slice());
        host_matches && ca_matches
    }
}

/// The PEM client certificate (`client-certificate-data`) of the kubeconfig's current user (or
/// its first user).
pub fn kubeconfig_client_certificate(kubeconfig: &str) -> Option<Vec<u8>> {
    let user = current_entry(kubeconfig, "users", "user")?;
    let data = user.get("client-certificate-data")?.as_str()?;
    base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .ok()
}

/// The `cluster` map of the kubeconfig's current context (or its first cluster).
fn kubeconfig_cluster(kubeconfig: &str) -> Option<Value> {
    current_entry(kubeconfig, "clusters", "cluster")
}

/// The `<kind>` map of the entry of list `<list>` (`clusters`, `users`) that the current context
/// names, or of the list's first entry, as kubectl picks them.
pub(super) fn current_entry(kubeconfig: &str, list: &str, kind: &str) -> Option<Value> {
    let document: Value = serde_yaml::from_str(kubeconfig).ok()?;
    let entries = document.get(list)?.as_sequence()?;
    let current = document
        .get("current-context")
        .and_then(Value::as_str)
        .and_then(|current| {
            document
                .get("contexts")?
                .as_sequence()?
                .iter()
                .find(|context| context.get("name").and_then(Value::as_str) == Some(current))?
                .get("context")?
                .get(kind)?
                .as_str()
        });
    let named = current.and_then(|name| {
        entries
            .iter()
            .find(|entry| entry.get("name").and_then(Value::as_str) == Some(name))
    });
    named.or_else(|| entries.first())?.get(kind).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kubelet_dialing_an_address_joins_only_a_certificate_with_that_ip_san() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["k8s.example.net".to_owned(), "10.0.1.100".to_owned()];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(names)
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let path = dir.path().join("apiserver.crt");
        std::fs::write(&path, cert.pem()).unwrap();
        // The certificate is its own CA here: the kubeconfig trusts it.
        let identity = ClusterIdentity::from_files(&path, &path).unwrap();
        let ca = base64::engine::general_purpose::STANDARD.encode(cert.pem());
        let kubeconfig = |server: &str| {
            format!(
                "clusters:\n- name: c\n  cluster: {{server: '{server}', certificate-authority-data: {ca}}}\n"
            )
        };
        assert!(identity.admits_kubelet(&kubeconfig("https://10.0.1.100:6443")));
        assert!(identity.admits_kubelet(&kubeconfig("https://K8s.example.net:6443")));
        assert!(!identity.admits_kubelet(&kubeconfig("https://10.0.1.101:6443")));
    }

    #[test]
    fn kubeconfig_cluster_follows_the_current_context() {
        let kubeconfig = "
apiVersion: v1
clusters:
- name: a
  cluster: {server: 'https://a.example.com:6443'}
- name: b
  cluster: {server: 'https://b.example.com:6443'}
contexts:
- name: ctx
  context: {cluster: b, user: u}
current-context: ctx
";
        let cluster = kubeconfig_cluster(kubeconfig);
        assert_eq!(
            cluster
                .as_ref()
                .and_then(|c| c.get("server"))
                .and_then(Value::as_str),
            Some("https://b.example.com:6443")
        );
    }
}
