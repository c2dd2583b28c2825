//! What the certificates depend on, and the apiserver's names and URL derived from a cluster.

use std::net::Ipv4Addr;

use serde::Serialize;

/// The port of the apiserver, in its URLs.
const APISERVER_PORT: u16 = 6443;

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
    /// The inputs of `cluster`. The names are those of its DNS records, or its `api_address`
    /// and its controllers' private addresses when it has no zone.
    pub fn from_desired(cluster: &specs::DesiredCluster) -> Self {
        let settings = &cluster.settings;
        let (public, private) = apiserver_names(cluster);
        PkiInputs {
            apiserver_public_name: public,
            apiserver_private_name: private,
            controller_hostnames: cluster.controllers().map(|n| n.hostname.clone()).collect(),
            etcd_names: (0..settings.controller_count)
                .map(|i| cluster.etcd_host(i))
                .collect(),
            apiserver_service_ip: cluster.apiserver_service_ip,
            cluster_domain_suffix: settings.cluster_domain_suffix.clone(),
            enable_aggregation: settings.enable_aggregation,
            validity_hours: settings.certs_validity_period_hours,
        }
    }
}

/// `(public, private)`: where loko and kubectl, and where the kubelets, reach the apiserver
/// (`<cluster>.<zone>` and `<cluster>-private.<zone>`, as the DNS records of
/// [`specs::DesiredCluster::dns_records`] spell them, or the spec's `api_address` for both).
pub fn apiserver_names(cluster: &specs::DesiredCluster) -> (String, String) {
    cluster.settings.apiserver_hosts()
}

/// The URL of the apiserver at `name`.
pub(crate) fn apiserver_url(name: &str) -> String {
    format!("https://{name}:{APISERVER_PORT}")
}
