//! Cluster DNS: CoreDNS with its ServiceAccount, ClusterRole, Corefile and Service.

use std::net::Ipv4Addr;

use serde_json::{Value, json};

use super::{COREDNS_IMAGE, labels, metadata, mount};

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
        ".:53 {{\n    errors\n    health {{\n        lameduck 5s\n    }}\n    ready\n    kubernetes {domain} in-addr.arpa ip6.arpa {{\n        pods insecure\n        fallthrough in-addr.arpa ip6.arpa\n    }}\n    prometheus :9153\n    forward . /etc/resolv.conf\n    cache 30\n    loop\n    reload\n    loadbalance\n}}\n"
    );
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata("coredns"),
        "data": {"Corefile": corefile},
    })
}

pub(super) fn coredns_deployment(replicas: u32) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "coredns", "namespace": "kube-system", "labels": labels("coredns")},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels("coredns")},
            "template": {
                "metadata": {"labels": labels("coredns")},
                "spec": {
                    "serviceAccountName": "coredns",
                    "tolerations": [{"key": "node-role.kubernetes.io/master", "effect": "NoSchedule"}],
                    "containers": [{
                        "name": "coredns",
                        "image": COREDNS_IMAGE,
                        "args": ["-conf", "/etc/coredns/Corefile"],
                        "ports": [
                            {"name": "dns", "protocol": "UDP", "containerPort": 53},
                            {"name": "dns-tcp", "protocol": "TCP", "containerPort": 53},
                            {"name": "metrics", "protocol": "TCP", "containerPort": 9153},
                        ],
                        "livenessProbe": {"httpGet": {"path": "/health", "port": 8080, "scheme": "HTTP"}},
                        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181, "scheme": "HTTP"}},
                        "volumeMounts": [mount("config", "/etc/coredns", true)],
                    }],
                    "volumes": [{"name": "config", "configMap": {"name": "coredns", "items": [{"key": "Corefile", "path": "Corefile"}]}}],
                },
            },
        },
    })
}

pub(super) fn coredns_service(ip: Ipv4Addr) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "coredns", "namespace": "kube-system", "labels": labels("coredns")},
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
