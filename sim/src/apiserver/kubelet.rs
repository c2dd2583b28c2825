//! The kubelets as the apiservers see them: each node's kubelet ([`Kubelet`], with its
//! [`Taint`]s) in the [`KubeletRegistry`] the nodes and every apiserver share.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::judge::iptables::NodeFirewall;

/// A kubelet as the apiserver sees it: registered when its node boots, gone when it is deleted.
#[derive(Clone)]
pub struct Kubelet {
    /// Node name (the device hostname).
    pub node_name: String,
    /// The kubelet kubeconfig from the node's Ignition, if any.
    pub kubeconfig: Option<String>,
    /// Labels from the kubelet's `--node-labels`.
    pub labels: BTreeMap<String, String>,
    /// Private IPv4 (the node's InternalIP).
    pub internal_ip: Ipv4Addr,
    /// Public IPv4 (the node's ExternalIP).
    pub external_ip: Ipv4Addr,
    /// When the node booted.
    pub registered_at: DateTime<Utc>,
    /// The taints of its `--register-with-taints`.
    pub taints: Vec<Taint>,
    /// Its `--cluster-dns` addresses: the nameservers of its `ClusterFirst` pods.
    pub cluster_dns: Vec<String>,
    /// The nameservers of its `--resolv-conf`: those of its `Default` pods.
    pub host_nameservers: Vec<String>,
    /// The firewall its node booted with: whether another node's BGP session gets in.
    pub firewall: Arc<NodeFirewall>,
    /// `kubeconfig` is the `--bootstrap-kubeconfig`: the kubelet gets its certificate by TLS
    /// bootstrap.
    pub bootstrap: bool,
    /// The kubelet renews its client certificate (`--rotate-certificates`).
    pub rotate_certificates: bool,
}

impl std::fmt::Debug for Kubelet {
    // The kubeconfig holds the kubelet's private key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kubelet")
            .field("node_name", &self.node_name)
            .field("has_kubeconfig", &self.kubeconfig.is_some())
            .field("bootstrap", &self.bootstrap)
            .field("rotate_certificates", &self.rotate_certificates)
            .field("labels", &self.labels)
            .field("internal_ip", &self.internal_ip)
            .field("external_ip", &self.external_ip)
            .field("taints", &self.taints)
            .field("cluster_dns", &self.cluster_dns)
            .field("host_nameservers", &self.host_nameservers)
            .finish()
    }
}

/// The running kubelets of a simulated cloud, shared by the nodes and every apiserver emulator.
#[derive(Debug, Clone, Default)]
pub struct KubeletRegistry {
    kubelets: Arc<RwLock<BTreeMap<String, Kubelet>>>,
    /// Why an apiserver did not let a node's kubelet register, by node, as its log says.
    refusals: Arc<RwLock<BTreeMap<String, String>>>,
    /// Why a registered kubelet's certificate would not be renewed, by node.
    renewal_problems: Arc<RwLock<BTreeMap<String, String>>>,
}

impl KubeletRegistry {
    /// Records a booted node's kubelet (replacing an older one of the same name).
    pub fn register(&self, kubelet: Kubelet) {
        let mut kubelets = self
            .kubelets
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        kubelets.insert(kubelet.node_name.clone(), kubelet);
    }

    /// Forgets a node's kubelet (its device was stopped or deleted).
    pub fn unregister(&self, node_name: &str) {
        let mut kubelets = self
            .kubelets
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        kubelets.remove(node_name);
    }

    /// Why the node's kubelet could not register when an apiserver last listed nodes, or
    /// `None` (registered, or not judged yet).
    pub fn refusal(&self, node_name: &str) -> Option<String> {
        self.refusals
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(node_name)
            .cloned()
    }

    /// Why the node's registered kubelet would not renew its certificate (TLS bootstrap
    /// without rotation, or renewals the csrapproving controller would not approve), or `None`.
    pub fn renewal_problem(&self, node_name: &str) -> Option<String> {
        self.renewal_problems
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(node_name)
            .cloned()
    }

    pub(super) fn set_refusal(&self, node_name: &str, refusal: Option<&str>) {
        set_entry(&self.refusals, node_name, refusal);
    }

    pub(super) fn set_renewal_problem(&self, node_name: &str, problem: Option<&str>) {
        set_entry(&self.renewal_problems, node_name, problem);
    }

    pub(super) fn snapshot(&self) -> Vec<Kubelet> {
        let kubelets = self
            .kubelets
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        kubelets.values().cloned().collect()
    }
}

/// Sets (`Some`) or clears (`None`) a node's entry of `map`.
fn set_entry(map: &RwLock<BTreeMap<String, String>>, node_name: &str, value: Option<&str>) {
    let mut map = map
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match value {
        Some(value) => map.insert(node_name.to_owned(), value.to_owned()),
        None => map.remove(node_name),
    };
}

/// A node's taint, as `--register-with-taints` gives it (`key[=value]:Effect`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taint {
    /// The key.
    pub key: String,
    /// The value (empty when none).
    pub value: String,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`.
    pub effect: String,
}

impl Taint {
    /// The taints of a `--register-with-taints` value (comma-separated `key[=value]:Effect`);
    /// entries without an effect are not taints and are left out.
    pub fn parse_list(flag: &str) -> Vec<Taint> {
        flag.split(',')
            .map(str::trim)
            .filter_map(|entry| {
                let (key_value, effect) = entry.rsplit_once(':')?;
                let (key, value) = key_value.split_once('=').unwrap_or((key_value, ""));
                (!key.is_empty()).then(|| Taint {
                    key: key.to_owned(),
                    value: value.to_owned(),
                    effect: effect.to_owned(),
                })
            })
            .collect()
    }

    /// Whether any of `tolerations` tolerates it (`Toleration.ToleratesTaint`,
    /// `k8s.io/api/core/v1/toleration.go`).
    pub(super) fn tolerated_by(&self, tolerations: &[Value]) -> bool {
        tolerations.iter().any(|toleration| {
            let effect = toleration["effect"].as_str().unwrap_or_default();
            if !effect.is_empty() && effect != self.effect {
                return false;
            }
            let key = toleration["key"].as_str().unwrap_or_default();
            if !key.is_empty() && key != self.key {
                return false;
            }
            match toleration["operator"].as_str().unwrap_or("Equal") {
                "Exists" => true,
                "Equal" => {
                    !key.is_empty()
                        && toleration["value"].as_str().unwrap_or_default() == self.value
                }
                _ => false,
            }
        })
    }

    pub(super) fn shown(&self) -> String {
        format!("{{{}: {}}}", self.key, self.value)
    }
}
