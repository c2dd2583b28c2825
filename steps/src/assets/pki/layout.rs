//! What the PKI issues: the CAs and the leaves of a cluster, with their files, names, SANs and
//! usages (Lokomotive's layout, plus the scheduler's and controller-manager's own
//! certificates).

use std::net::{IpAddr, Ipv4Addr};

use serde::Serialize;

use super::inputs::PkiInputs;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CaKind {
    Kube,
    Etcd,
    Aggregation,
}

/// A certificate authority and where its files go.
pub(super) struct CaDef {
    pub(super) cert: &'static str,
    pub(super) key: &'static str,
    /// More paths that hold the same certificate (the layout etcd and bootkube expect).
    pub(super) copies: &'static [&'static str],
    pub(super) cn: &'static str,
    pub(super) org: Option<&'static str>,
}

pub(super) const KUBE_CA: CaDef = CaDef {
    cert: "tls/ca.crt",
    key: "tls/ca.key",
    copies: &[],
    cn: "kubernetes-ca",
    org: Some("bootkube"),
};

pub(super) const ETCD_CA: CaDef = CaDef {
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

pub(super) const AGGREGATION_CA: CaDef = CaDef {
    cert: "tls/aggregation-ca.crt",
    key: "tls/aggregation-ca.key",
    copies: &[],
    cn: "kubernetes-front-proxy-ca",
    org: None,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Usage {
    ServerAndClient,
    Client,
}

/// A leaf certificate: its names, SANs, usages and signer.
pub(super) struct LeafDef {
    pub(super) cert: &'static str,
    pub(super) key: &'static str,
    pub(super) ca: CaKind,
    pub(super) cn: &'static str,
    pub(super) org: Option<&'static str>,
    pub(super) dns_names: Vec<String>,
    pub(super) ips: Vec<IpAddr>,
    pub(super) usage: Usage,
}

/// Hosts split into DNS names and IP addresses, each kept in order: a certificate names an
/// address as an IP address SAN, since a client that dials an address checks only those (Go's
/// `x509.Certificate.VerifyHostname`, rustls' `ServerName::IpAddress`). Only a cluster without
/// a zone has addresses here (its `api_address`, its etcd members).
fn by_kind(hosts: Vec<String>) -> (Vec<String>, Vec<IpAddr>) {
    let mut addresses = Vec::new();
    let names = hosts
        .into_iter()
        .filter(|host| match host.parse::<IpAddr>() {
            Ok(address) => {
                addresses.push(address);
                false
            }
            Err(_) => true,
        })
        .collect();
    (names, addresses)
}

/// The leaves of the cluster, in the order they are issued and reported.
pub(super) fn leaves(inputs: &PkiInputs) -> Vec<LeafDef> {
    let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut apiserver_names = vec![
        inputs.apiserver_public_name.clone(),
        inputs.apiserver_private_name.clone(),
    ];
    // The spec's api_address is both.
    apiserver_names.dedup();
    apiserver_names.extend(inputs.controller_hostnames.iter().cloned());
    apiserver_names
        .extend(["kubernetes", "kubernetes.default", "kubernetes.default.svc"].map(String::from));
    apiserver_names.push(format!(
        "kubernetes.default.svc.{}",
        inputs.cluster_domain_suffix
    ));
    let (apiserver_names, apiserver_addresses) = by_kind(apiserver_names);
    let (etcd_names, etcd_addresses) = by_kind(inputs.etcd_names.clone());
    let mut etcd_with_localhost = etcd_names.clone();
    etcd_with_localhost.push("localhost".into());
    let with_localhost = |addresses: &[IpAddr]| {
        let mut ips = vec![localhost];
        ips.extend_from_slice(addresses);
        ips
    };
    vec![
        LeafDef {
            cert: "tls/apiserver.crt",
            key: "tls/apiserver.key",
            ca: CaKind::Kube,
            cn: "kube-apiserver",
            org: Some("system:masters"),
            dns_names: apiserver_names,
            ips: [
                vec![IpAddr::V4(inputs.apiserver_service_ip), localhost],
                apiserver_addresses,
            ]
            .concat(),
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
        // No kubelet certificate: each kubelet gets its own (`system:node:<name>`) by TLS
        // bootstrap (`assets::bootstrap_token`), signed by the controller-manager with this CA.
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
            ips: with_localhost(&etcd_addresses),
            usage: Usage::ServerAndClient,
        },
        LeafDef {
            cert: "tls/etcd/server.crt",
            key: "tls/etcd/server.key",
            ca: CaKind::Etcd,
            cn: "etcd-server",
            org: Some("etcd"),
            dns_names: etcd_with_localhost,
            ips: with_localhost(&etcd_addresses),
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
            dns_names: etcd_names,
            ips: with_localhost(&etcd_addresses),
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
