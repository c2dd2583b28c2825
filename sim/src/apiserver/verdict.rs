//! What the derived pods are judged from ([`Cluster`]) and what a pod's container does on its
//! node ([`Verdict`]), shared by the pods' derivation and CoreDNS's judge.

use std::path::PathBuf;

use serde_json::Value;

use super::events::NodeChanges;
use super::kubelet::Kubelet;
use crate::judge::rbac::{Policy, Requirements};

/// What a pod's container does on its node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Running and ready.
    Ready,
    /// Running, its readiness probe failing: why.
    NotReady(String),
    /// Not started: the kubelet's waiting reason (`ContainerCreating`) and why.
    Waiting { reason: String, message: String },
    /// The process exits at start: what it logs last.
    Crashes(String),
}

/// What the pods are judged from: the stored objects and the policy derived from them.
pub(super) struct Cluster<'a> {
    pub objects: &'a [(PathBuf, Value)],
    pub policy: &'a Policy,
    pub requirements: &'a Requirements,
    /// Why no node is Ready, or `None`.
    pub network_problem: Option<&'a str>,
    /// The registered kubelets: the nodes pods run on, and the network's peers.
    pub kubelets: &'a [Kubelet],
    /// What drains changed: cordons and evictions.
    pub changes: &'a NodeChanges,
}

/// The data of ConfigMap `name` of `namespace`, if stored.
pub(super) fn config_map_data<'a>(
    cluster: &Cluster<'a>,
    namespace: &str,
    name: &str,
) -> Option<&'a Value> {
    cluster.objects.iter().find_map(|(_, object)| {
        (object["kind"] == "ConfigMap"
            && object["metadata"]["name"] == name
            && object["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default")
                == namespace)
            .then_some(&object["data"])
    })
}
