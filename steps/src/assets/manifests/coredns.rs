//! Cluster DNS: CoreDNS with its ServiceAccount, ClusterRole, Corefile and Service, as Typhoon
//! v1.32.3 renders them (`poseidon/terraform-render-bootstrap@1e4b00ea` `resources/coredns/`);
//! `docs/assets.md` lists the differences kept.

use std::net::Ipv4Addr;

use serde_json::{Value, json};

use super::objects::{COREDNS_IMAGE, labels, metadata, mount};

/// CoreDNS's ClusterRole: coredns/deployment's for Kubernetes 1.32. Typhoon's adds `get` of
/// nodes, which CoreDNS 1.11.4 never makes (`GetNodeByName` has no caller in its plugins).
pub(super) fn coredns_cluster_role() -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "system:coredns"},
        "rules": [
            {"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"], "verbs": ["list", "watch"]},
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
        ],
    })
}

pub(super) fn coredns_config(domain: &str) -> Value {
    let corefile = format!(
        ".:53 {{\n    errors\n    health {{\n        lameduck 5s\n    }}\n    ready\n    log . {{\n        class error\n    }}\n    kubernetes {domain} in-addr.arpa ip6.arpa {{\n        pods insecure\n        fallthrough in-addr.arpa ip6.arpa\n    }}\n    prometheus :9153\n    forward . /etc/resolv.conf\n    cache 30\n    loop\n    reload\n    loadbalance\n}}\n"
    );
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata("coredns"),
        "data": {"Corefile": corefile},
    })
}

/// CoreDNS's Deployment, as Typhoon v1.32.3 renders it (`poseidon/terraform-render-bootstrap`
/// `resources/coredns/deployment.yaml`), but for the selector (immutable in `apps/v1`, so a
/// cluster applied before keeps `k8s-app: coredns` only) and the controllers' taint (loko's
/// kubelets register `node-role.kubernetes.io/master`, Lokomotive's name).
///
/// `dnsPolicy: Default`: the pod's resolv.conf is then the node's, the upstream servers that
/// `forward . /etc/resolv.conf` must reach. With the default `ClusterFirst` it would name the
/// cluster DNS Service, CoreDNS itself: its `loop` plugin sees its own probe come back and
/// halts the process (`plugin/loop` README, CoreDNS v1.11.4), so CoreDNS crash-loops.
pub(super) fn coredns_deployment(replicas: u32) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "coredns", "namespace": "kube-system", "labels": coredns_labels()},
        "spec": {
            "replicas": replicas,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "selector": {"matchLabels": labels("coredns")},
            "template": {
                "metadata": {"labels": {"tier": "control-plane", "k8s-app": "coredns"}},
                "spec": {
                    // Controllers first, one replica per node: DNS outlives a lost worker.
                    "affinity": {
                        "nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
                            "weight": 100,
                            "preference": {"matchExpressions": [{"key": "node.kubernetes.io/controller", "operator": "Exists"}]},
                        }]},
                        "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
                            "weight": 100,
                            "podAffinityTerm": {
                                "labelSelector": {"matchExpressions": [
                                    {"key": "tier", "operator": "In", "values": ["control-plane"]},
                                    {"key": "k8s-app", "operator": "In", "values": ["coredns"]},
                                ]},
                                "topologyKey": "kubernetes.io/hostname",
                            },
                        }]},
                    },
                    "priorityClassName": "system-cluster-critical",
                    "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                    "serviceAccountName": "coredns",
                    "tolerations": [{"key": "node-role.kubernetes.io/master", "effect": "NoSchedule"}],
                    "containers": [{
                        "name": "coredns",
                        "image": COREDNS_IMAGE,
                        "resources": {
                            "limits": {"memory": "170Mi"},
                            "requests": {"cpu": "100m", "memory": "70Mi"},
                        },
                        "args": ["-conf", "/etc/coredns/Corefile"],
                        "volumeMounts": [mount("config", "/etc/coredns", true)],
                        "ports": [
                            {"name": "dns", "protocol": "UDP", "containerPort": 53},
                            {"name": "dns-tcp", "protocol": "TCP", "containerPort": 53},
                            {"name": "metrics", "protocol": "TCP", "containerPort": 9153},
                        ],
                        "livenessProbe": {
                            "httpGet": {"path": "/health", "port": 8080, "scheme": "HTTP"},
                            "initialDelaySeconds": 60,
                            "timeoutSeconds": 5,
                            "successThreshold": 1,
                            "failureThreshold": 5,
                        },
                        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181, "scheme": "HTTP"}},
                        // The image runs as nonroot with the file capability
                        // cap_net_bind_service on /coredns (coredns v1.11.4 Dockerfile): with
                        // every capability dropped, binding :53 needs this one added back.
                        "securityContext": {
                            "allowPrivilegeEscalation": false,
                            "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["all"]},
                            "readOnlyRootFilesystem": true,
                        },
                    }],
                    "dnsPolicy": "Default",
                    "volumes": [{"name": "config", "configMap": {"name": "coredns", "items": [{"key": "Corefile", "path": "Corefile"}]}}],
                },
            },
        },
    })
}

/// The labels of CoreDNS's Deployment and Service, as Typhoon's.
fn coredns_labels() -> Value {
    json!({"k8s-app": "coredns", "kubernetes.io/name": "CoreDNS"})
}

pub(super) fn coredns_service(ip: Ipv4Addr) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "coredns",
            "namespace": "kube-system",
            "labels": coredns_labels(),
            "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9153"},
        },
        "spec": {
            "selector": labels("coredns"),
            "clusterIP": ip.to_string(),
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP"},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
            ],
        },
    })
}
