//! The cluster as it stands now: the kubelets whose Node registered (configured for this
//! cluster, allowed to, and not deleted since), their Nodes as drains changed them, and the pods
//! they run.

use chrono::Utc;
use serde_json::Value;

use super::bootstrap;
use super::events::NodeChanges;
use super::kubelet::Kubelet;
use super::state::ApiState;
use super::verdict::Cluster;
use super::{objects, pods};

/// A Node as the apiserver serves it, with what drains changed of it (`spec.unschedulable`
/// and the `node.kubernetes.io/unschedulable` taint the node lifecycle controller adds).
pub(super) fn node_with_changes(
    kubelet: &Kubelet,
    network_problem: Option<&str>,
    changes: &NodeChanges,
) -> Value {
    let mut node = objects::node(kubelet, network_problem);
    if changes.cordoned(kubelet) {
        node["spec"]["unschedulable"] = Value::Bool(true);
        if let Some(taints) = node["spec"]["taints"].as_array_mut() {
            taints.push(serde_json::json!({
                "key": "node.kubernetes.io/unschedulable",
                "effect": "NoSchedule",
            }));
        }
    }
    node
}

/// Every pod the cluster runs now; with `on`, those bound to that node.
pub(super) fn current_pods(state: &ApiState, on: Option<&str>) -> Vec<Value> {
    let derived = state.store.derived();
    let kubelets = ready_kubelets(state);
    let changes = state.store.node_changes();
    let cluster = Cluster {
        objects: &derived.objects,
        policy: &derived.policy,
        requirements: state.store.requirements(),
        network_problem: derived.network_problem.as_deref(),
        kubelets: &kubelets,
        changes: &changes,
    };
    pods::pods(&cluster, Utc::now(), on)
}

/// The kubelets that registered their Node: configured for this cluster, and allowed to, and
/// whose Node was not deleted since.
pub(super) fn ready_kubelets(state: &ApiState) -> Vec<Kubelet> {
    let registered = state.registry.snapshot();
    let changes = state.store.node_changes();
    let kept: Vec<Kubelet> = registered
        .into_iter()
        .filter(|kubelet| !changes.deleted(kubelet))
        .collect();
    drop(changes);
    kept.into_iter()
        .filter(|kubelet| {
            let Some(kubeconfig) = kubelet.kubeconfig.as_deref() else {
                return false;
            };
            if !state.cluster.admits_kubelet(kubeconfig) {
                return false;
            }
            let refusal = registration_refusal(state, kubelet, kubeconfig);
            state
                .registry
                .set_refusal(&kubelet.node_name, refusal.as_deref());
            let first = state
                .refused_logged
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(kubelet.node_name.clone());
            match refusal {
                None => {
                    let problem = bootstrap::renewal_problem(state, kubelet);
                    state
                        .registry
                        .set_renewal_problem(&kubelet.node_name, problem.as_deref());
                    if first && let Some(problem) = problem {
                        tracing::warn!(node = %kubelet.node_name, "kubelet certificate: {problem}");
                    }
                    true
                }
                Some(refusal) => {
                    if first {
                        tracing::warn!(node = %kubelet.node_name, "kubelet cannot register: {refusal}");
                    }
                    false
                }
            }
        })
        .collect()
}

/// Why the kubelet with this kubeconfig cannot register its node, or `None` if it can: its
/// identity (see `bootstrap`) must be allowed what registering and heartbeats take.
fn registration_refusal(state: &ApiState, kubelet: &Kubelet, kubeconfig: &str) -> Option<String> {
    let user = match bootstrap::kubelet_user(state, kubelet, kubeconfig) {
        Ok(user) => user,
        Err(reason) => return Some(reason),
    };
    let needs = match state.store.requirements().identity("kubelet-registration") {
        Ok(identity) => identity.requests(&kubelet.node_name),
        Err(error) => return Some(error.to_string()),
    };
    let derived = state.store.derived();
    bootstrap::first_refusal(&state.authorizers, &derived.policy, &user, &needs)
}
