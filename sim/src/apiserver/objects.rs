//! The Kubernetes API objects the emulator returns, shaped as kubectl expects them.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::kubelet::Kubelet;
use crate::judge::api_status;

/// The Kubernetes version the emulator claims (the tutorial's era).
const KUBERNETES_VERSION: &str = "v1.18.20";

pub(super) fn version() -> Value {
    json!({
        "major": "1",
        "minor": "18",
        "gitVersion": KUBERNETES_VERSION,
        "gitCommit": "1f3e19b7beb1cc0110255668c4238ed63dadb7ad",
        "gitTreeState": "clean",
        "buildDate": "2021-06-16T12:51:17Z",
        "goVersion": "go1.13.15",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

pub(super) fn api_versions(addr: SocketAddr) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": addr.to_string()}]
    })
}

pub(super) fn api_groups() -> Value {
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []})
}

pub(super) fn core_v1_resources() -> Value {
    json!({
        "kind": "APIResourceList",
        "groupVersion": "v1",
        "resources": [{
            "name": "nodes",
            "singularName": "node",
            "namespaced": false,
            "kind": "Node",
            "verbs": ["delete", "get", "list", "patch"],
            "shortNames": ["no"]
        }, {
            "name": "pods",
            "singularName": "pod",
            "namespaced": true,
            "kind": "Pod",
            "verbs": ["get", "list"],
            "shortNames": ["po"]
        }, {
            // kubectl drain evicts through policy/v1 when discovery lists it.
            "name": "pods/eviction",
            "singularName": "",
            "namespaced": true,
            "group": "policy",
            "version": "v1",
            "kind": "Eviction",
            "verbs": ["create"]
        }]
    })
}

/// Labels a kubelet registers: its `--node-labels` plus the ones every kubelet sets.
pub(super) fn node_labels(kubelet: &Kubelet) -> BTreeMap<String, String> {
    let mut labels = kubelet.labels.clone();
    for (key, value) in [
        ("kubernetes.io/hostname", kubelet.node_name.as_str()),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", "amd64"),
        ("beta.kubernetes.io/os", "linux"),
        ("beta.kubernetes.io/arch", "amd64"),
    ] {
        labels.insert(key.to_owned(), value.to_owned());
    }
    labels
}

/// A Node as its kubelet reports it; `network_problem` makes it NotReady, saying why.
pub(super) fn node(kubelet: &Kubelet, network_problem: Option<&str>) -> Value {
    let ready = match network_problem {
        None => json!({
            "status": "True",
            "reason": "KubeletReady",
            "message": "kubelet is posting ready status",
        }),
        // The kubelet's own wording when the runtime's network is not ready.
        Some(problem) => json!({
            "status": "False",
            "reason": "KubeletNotReady",
            "message": format!(
                "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:{problem}"
            ),
        }),
    };
    let since = kubelet
        .registered_at
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    json!({
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": {
            "name": kubelet.node_name,
            "uid": format!("sim-node-{}", kubelet.node_name),
            "resourceVersion": "1",
            "creationTimestamp": since,
            "labels": node_labels(kubelet),
        },
        "spec": {"taints": kubelet.taints.iter().map(|taint| json!({
            "key": taint.key, "value": taint.value, "effect": taint.effect,
        })).collect::<Vec<_>>()},
        "status": {
            "conditions": [{
                "type": "Ready",
                "status": ready["status"],
                "reason": ready["reason"],
                "message": ready["message"],
                "lastHeartbeatTime": now,
                "lastTransitionTime": since,
            }],
            "addresses": [
                {"type": "InternalIP", "address": kubelet.internal_ip.to_string()},
                {"type": "ExternalIP", "address": kubelet.external_ip.to_string()},
                {"type": "Hostname", "address": kubelet.node_name},
            ],
            "nodeInfo": {
                "kubeletVersion": KUBERNETES_VERSION,
                "kubeProxyVersion": KUBERNETES_VERSION,
                "operatingSystem": "linux",
                "architecture": "amd64",
                "osImage": "Flatcar Container Linux by Kinvolk (emulated)",
                "kernelVersion": "5.4.0",
                "containerRuntimeVersion": "docker://19.3.12",
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
            },
        },
    })
}

pub(super) fn node_list(nodes: Vec<Value>) -> Value {
    list("NodeList", nodes)
}

/// The server-side table `kubectl get nodes` prints (NAME, STATUS, ROLES, AGE, VERSION).
pub(super) fn node_table(nodes: &[Value], now_reference: DateTime<Utc>) -> Value {
    let rows: Vec<Value> = nodes
        .iter()
        .map(|node| {
            let labels = node.pointer("/metadata/labels").and_then(Value::as_object);
            let mut roles: Vec<&str> = labels
                .into_iter()
                .flatten()
                .filter_map(|(key, _)| key.strip_prefix("node-role.kubernetes.io/"))
                .filter(|role| !role.is_empty())
                .collect();
            roles.sort_unstable();
            let roles = if roles.is_empty() {
                "<none>".to_owned()
            } else {
                roles.join(",")
            };
            let created = node
                .pointer("/metadata/creationTimestamp")
                .and_then(Value::as_str)
                .and_then(|time| DateTime::parse_from_rfc3339(time).ok())
                .map_or(now_reference, |time| time.with_timezone(&Utc));
            let ready = node
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            json!({
                "cells": [
                    node.pointer("/metadata/name").cloned().unwrap_or(Value::Null),
                    if ready { "Ready" } else { "NotReady" },
                    roles,
                    age(Utc::now() - created),
                    KUBERNETES_VERSION,
                ],
                "object": node,
            })
        })
        .collect();
    table(
        &[
            ("Name", "string", "name", "Name of the node"),
            ("Status", "string", "", "Ready status"),
            ("Roles", "string", "", "Node roles"),
            ("Age", "string", "", "Time since creation"),
            ("Version", "string", "", "Kubelet version"),
        ],
        rows,
    )
}

fn age(elapsed: chrono::TimeDelta) -> String {
    let seconds = elapsed.num_seconds().max(0);
    match seconds {
        0..120 => format!("{seconds}s"),
        120..7200 => format!("{}m", seconds / 60),
        7200..172_800 => format!("{}h", seconds / 3600),
        _ => format!("{}d", seconds / 86_400),
    }
}

/// A list of pods.
pub(super) fn pod_list(pods: Vec<Value>) -> Value {
    list("PodList", pods)
}

/// A v1 list of `kind` (`NodeList`, `PodList`).
fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({
        "kind": kind,
        "apiVersion": "v1",
        "metadata": {"resourceVersion": "1"},
        "items": items,
    })
}

/// A server-side `Table` (meta.k8s.io/v1) of `rows`, with columns of (name, type, format,
/// description), as kubectl asks for one.
fn table(columns: &[(&str, &str, &str, &str)], rows: Vec<Value>) -> Value {
    let column_definitions: Vec<Value> = columns
        .iter()
        .map(|(name, kind, format, description)| {
            json!({
                "name": name,
                "type": kind,
                "format": format,
                "description": description,
                "priority": 0,
            })
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": "1"},
        "columnDefinitions": column_definitions,
        "rows": rows,
    })
}

/// The server-side table `kubectl get pods` prints (NAME, READY, STATUS, RESTARTS, AGE).
pub(super) fn pod_table(pods: &[Value], now: DateTime<Utc>) -> Value {
    let rows: Vec<Value> = pods
        .iter()
        .map(|pod| {
            let statuses = pod["status"]["containerStatuses"].as_array();
            let total = pod["spec"]["containers"].as_array().map_or(0, Vec::len);
            let ready = statuses
                .into_iter()
                .flatten()
                .filter(|s| s["ready"] == true)
                .count();
            let restarts: u64 = statuses
                .into_iter()
                .flatten()
                .filter_map(|s| s["restartCount"].as_u64())
                .sum();
            let status = statuses
                .into_iter()
                .flatten()
                .find_map(|s| s["state"]["waiting"]["reason"].as_str())
                .or_else(|| pod["status"]["phase"].as_str())
                .unwrap_or("Unknown");
            let created = pod["metadata"]["creationTimestamp"]
                .as_str()
                .and_then(|time| DateTime::parse_from_rfc3339(time).ok())
                .map_or(now, |time| time.with_timezone(&Utc));
            json!({
                "cells": [
                    pod["metadata"]["name"],
                    format!("{ready}/{total}"),
                    status,
                    restarts,
                    age(now - created),
                ],
                "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": pod["metadata"]},
            })
        })
        .collect();
    table(
        &[
            ("Name", "string", "name", "Name of the pod"),
            ("Ready", "string", "", "Ready containers"),
            (
                "Status",
                "string",
                "",
                "The aggregate status of the containers",
            ),
            ("Restarts", "integer", "", "Restarts of the containers"),
            ("Age", "string", "", "Time since creation"),
        ],
        rows,
    )
}

/// Equality-based label selectors (`k=v`, `k==v`, `k!=v`, `k`, `!k`, comma-joined).
pub(super) fn selector_matches(selector: &str, labels: &BTreeMap<String, String>) -> bool {
    selector
        .split(',')
        .map(str::trim)
        .filter(|requirement| !requirement.is_empty())
        .all(|requirement| {
            if let Some((key, value)) = requirement.split_once("!=") {
                labels.get(key.trim()).map(String::as_str) != Some(value.trim())
            } else if let Some((key, value)) = requirement
                .split_once("==")
                .or_else(|| requirement.split_once('='))
            {
                labels.get(key.trim()).map(String::as_str) == Some(value.trim())
            } else if let Some(key) = requirement.strip_prefix('!') {
                !labels.contains_key(key.trim())
            } else {
                labels.contains_key(requirement)
            }
        })
}

pub(super) fn status_not_found(resource: &str, name: &str) -> Value {
    let mut status =
        api_status::failure(404, "NotFound", &format!("{resource} \"{name}\" not found"));
    status["details"] = json!({"name": name, "kind": resource});
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_match_like_kubernetes_equality_selectors() {
        let labels: BTreeMap<String, String> = [
            ("node-role.kubernetes.io/master".to_owned(), String::new()),
            ("pool".to_owned(), "a".to_owned()),
        ]
        .into();
        assert!(selector_matches("", &labels));
        assert!(selector_matches("node-role.kubernetes.io/master", &labels));
        assert!(selector_matches(
            "pool=a,node-role.kubernetes.io/master",
            &labels
        ));
        assert!(!selector_matches("pool=b", &labels));
        assert!(selector_matches("pool!=b", &labels));
        assert!(!selector_matches("!pool", &labels));
    }
}
