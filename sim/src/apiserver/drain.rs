//! What a drain does through the API, as `kubectl drain` and Cluster API's machine controller
//! do it: cordon a node (`PATCH /api/v1/nodes/{name}` of `spec.unschedulable`), evict its pods
//! (`POST .../pods/{name}/eviction`, policy/v1, judged against the PodDisruptionBudgets stored
//! as `pkg/registry/core/pod/storage/eviction.go` of Kubernetes v1.32 judges them), and delete
//! the Node (`DELETE /api/v1/nodes/{name}`). Each change, with who made it, goes into the
//! simulator's [`ApiEvents`] log, beside the Packet device deletions, so a test reads their
//! order.
//!
//! Pods are derived, not stored (`pods`), so an eviction is kept as the fact that the owner's
//! pod left that node: that pod is placed again on another schedulable node (a Deployment's
//! ReplicaSet makes a new pod; a cordoned node takes none), the owner's other pods stay bound. A DaemonSet's pod
//! comes back, as its controller recreates it (it tolerates `unschedulable`). The changes
//! belong to one registration of a node: a kubelet that registers again (its device rebooted
//! or was made again) is a new Node, neither cordoned nor deleted.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::kubelet::Kubelet;
use super::objects;
use super::registered::{current_pods, node_with_changes, ready_kubelets};
use super::state::{ApiState, Caller, json_response};
use crate::judge::api_status;

/// `PATCH /api/v1/nodes/{name}`: a merge or strategic-merge patch of `spec.unschedulable`
/// (what `kubectl cordon` and `uncordon` send); other fields are not kept.
pub(super) async fn patch_node(
    State(state): State<Arc<ApiState>>,
    axum::Extension(caller): axum::Extension<Caller>,
    UrlPath(name): UrlPath<String>,
    body: Bytes,
) -> Response {
    let Some(kubelet) = registered(&state, &name) else {
        return node_not_found(&name);
    };
    let patch: Value = match serde_json::from_slice(&body) {
        Ok(patch) => patch,
        Err(error) => {
            return json_response(
                StatusCode::BAD_REQUEST,
                api_status::failure(400, "BadRequest", &format!("invalid patch: {error}")),
            );
        }
    };
    let unschedulable = match &patch["spec"]["unschedulable"] {
        Value::Bool(on) => Some(*on),
        // A merge patch's null removes the field: schedulable.
        Value::Null if patch["spec"].get("unschedulable").is_some() => Some(false),
        _ => None,
    };
    if let Some(on) = unschedulable {
        // Pods are bound when first derived: derive them before the cordon, so the pods the
        // scheduler bound while the node took pods stay bound to it (a cordon moves none).
        current_pods(&state, Some(&name));
        let mut changes = state.store.node_changes();
        changes.set_cordoned(&kubelet, on);
        drop(changes);
        state.store.events().record(
            "patch",
            format!("nodes/{name}"),
            &user_of(&caller),
            format!("spec.unschedulable={on}"),
        );
    }
    json_response(StatusCode::OK, node_object(&state, &kubelet))
}

/// `DELETE /api/v1/nodes/{name}`: the Node is gone until its kubelet registers again.
pub(super) async fn delete_node(
    State(state): State<Arc<ApiState>>,
    axum::Extension(caller): axum::Extension<Caller>,
    UrlPath(name): UrlPath<String>,
) -> Response {
    let Some(kubelet) = registered(&state, &name) else {
        return node_not_found(&name);
    };
    let node = node_object(&state, &kubelet);
    state.store.node_changes().delete(&kubelet);
    state.store.events().record(
        "delete",
        format!("nodes/{name}"),
        &user_of(&caller),
        String::new(),
    );
    json_response(StatusCode::OK, node)
}

/// `GET /api/v1/namespaces/{ns}/pods/{name}`: what a drain polls until an evicted pod is gone.
pub(super) async fn get_pod(
    State(state): State<Arc<ApiState>>,
    UrlPath((namespace, name)): UrlPath<(String, String)>,
) -> Response {
    match find_pod(current_pods(&state, None), &namespace, &name) {
        Some(pod) => json_response(StatusCode::OK, pod),
        None => json_response(
            StatusCode::NOT_FOUND,
            objects::status_not_found("pods", &name),
        ),
    }
}

fn find_pod(pods: Vec<Value>, namespace: &str, name: &str) -> Option<Value> {
    pods.into_iter()
        .find(|p| p["metadata"]["namespace"] == namespace && p["metadata"]["name"] == name)
}

/// `POST /api/v1/namespaces/{ns}/pods/{name}/eviction`: the pod goes unless the one
/// PodDisruptionBudget selecting it allows no disruption now (429).
pub(super) async fn evict_pod(
    State(state): State<Arc<ApiState>>,
    axum::Extension(caller): axum::Extension<Caller>,
    UrlPath((namespace, name)): UrlPath<(String, String)>,
) -> Response {
    let pods = current_pods(&state, None);
    let Some(pod) = find_pod(pods.clone(), &namespace, &name) else {
        return json_response(
            StatusCode::NOT_FOUND,
            objects::status_not_found("pods", &name),
        );
    };
    let pod = &pod;
    let derived = state.store.derived();
    let budgets: Vec<&Value> = derived
        .objects
        .iter()
        .map(|(_, object)| object)
        .filter(|object| object["kind"] == "PodDisruptionBudget")
        .filter(|budget| {
            budget["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default")
                == namespace
        })
        .filter(|budget| selects(budget, pod))
        .collect();
    if budgets.len() > 1 {
        // eviction.go: "This pod has more than one PodDisruptionBudget, which the eviction
        // subresource does not support."
        return json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            api_status::failure(
                500,
                "InternalError",
                "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
            ),
        );
    }
    if let Some(budget) = budgets.first()
        && let Some(refusal) = refusal(budget, pod, &pods, &namespace)
    {
        return json_response(StatusCode::TOO_MANY_REQUESTS, refusal);
    }
    let node = pod["spec"]["nodeName"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let owner = pod["metadata"]["ownerReferences"][0]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    // The node goes in the log's detail: drains of several nodes run at once, and a reader
    // tells whose pod an eviction was by it.
    let detail = format!("nodeName={node}");
    state.store.node_changes().evict(&namespace, owner, node);
    state.store.events().record(
        "create",
        format!("pods/{namespace}/{name}/eviction"),
        &user_of(&caller),
        detail,
    );
    json_response(
        StatusCode::CREATED,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    )
}

/// Why `budget` forbids evicting `pod` now, as the apiserver's 429 `Status`, or `None`.
///
/// The disruption controller's arithmetic (`pkg/controller/disruption`): the expected pods are
/// those the budget selects; `desiredHealthy` is `minAvailable` (a percentage of the expected,
/// rounded up) or the expected less `maxUnavailable`; `disruptionsAllowed` the healthy (Ready)
/// less the desired. A pod that is not Ready may go while the budget is met
/// (`IfHealthyBudget`, the default unhealthy-pod policy).
fn refusal(budget: &Value, pod: &Value, pods: &[Value], namespace: &str) -> Option<Value> {
    let selected: Vec<&Value> = pods
        .iter()
        .filter(|p| p["metadata"]["namespace"] == namespace && p["spec"]["nodeName"].is_string())
        .filter(|p| selects(budget, p))
        .collect();
    let expected = selected.len() as i64;
    let healthy = selected.iter().filter(|p| ready(p)).count() as i64;
    let scaled = |value: &Value| match value {
        Value::Number(n) => n.as_i64().unwrap_or_default(),
        Value::String(percent) => {
            let percent: i64 = percent.trim_end_matches('%').parse().unwrap_or_default();
            (expected * percent + 99) / 100
        }
        _ => 0,
    };
    let spec = &budget["spec"];
    let desired = if spec.get("minAvailable").is_some() {
        scaled(&spec["minAvailable"])
    } else if spec.get("maxUnavailable").is_some() {
        (expected - scaled(&spec["maxUnavailable"])).max(0)
    } else {
        0
    };
    let always_allow = spec["unhealthyPodEvictionPolicy"] == "AlwaysAllow";
    if !ready(pod) && (always_allow || (healthy >= desired && desired > 0)) {
        return None;
    }
    if healthy - desired > 0 {
        return None;
    }
    let name = budget["metadata"]["name"].as_str().unwrap_or_default();
    let mut status = api_status::failure(
        429,
        "TooManyRequests",
        "Cannot evict pod as it would violate the pod's disruption budget.",
    );
    status["details"] = json!({
        "causes": [{
            "reason": "DisruptionBudget",
            "message": format!(
                "The disruption budget {name} needs {desired} healthy pods and has {healthy} currently"
            ),
        }],
    });
    Some(status)
}

/// Whether a budget's selector (`matchLabels` and `matchExpressions`) selects the pod.
fn selects(budget: &Value, pod: &Value) -> bool {
    let selector = &budget["spec"]["selector"];
    let labels = &pod["metadata"]["labels"];
    let by_labels = selector["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .all(|(key, value)| labels[key] == *value);
    let by_expressions = selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|expression| {
            let key = expression["key"].as_str().unwrap_or_default();
            let values = expression["values"].as_array().cloned().unwrap_or_default();
            match expression["operator"].as_str().unwrap_or_default() {
                "In" => values.contains(&labels[key]),
                "NotIn" => !values.contains(&labels[key]),
                "Exists" => labels.get(key).is_some(),
                "DoesNotExist" => labels.get(key).is_none(),
                _ => false,
            }
        });
    by_labels && by_expressions
}

fn ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// The kubelet of the Node `name`, if it is registered.
fn registered(state: &ApiState, name: &str) -> Option<Kubelet> {
    ready_kubelets(state)
        .into_iter()
        .find(|k| k.node_name == name)
}

fn node_not_found(name: &str) -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        objects::status_not_found("nodes", name),
    )
}

fn user_of(caller: &Caller) -> String {
    caller
        .0
        .as_ref()
        .map_or_else(|_| String::new(), |user| user.name.clone())
}

fn node_object(state: &ApiState, kubelet: &Kubelet) -> Value {
    let network_problem = state.store.derived().network_problem.clone();
    let changes = state.store.node_changes();
    node_with_changes(kubelet, network_problem.as_deref(), &changes)
}
