//! What every node runs beside the kubelet, and what the kubelets themselves may do: kube-proxy,
//! the pod checkpointer, the in-cluster kubeconfig of host-network components, and the kubelets'
//! RBAC.

use serde_json::{Value, json};
use specs::DesiredCluster;

use super::{
    CHECKPOINTER_IMAGE, CONTROLLER_SELECTOR, Manifest, binding, cluster_role_binding, host_path,
    image, labels, manifest, metadata, mount, role_binding, service_account,
};
use crate::assets::pki::{apiserver_names, apiserver_url};
use crate::ignition::{CONTAINERD_SOCKET, CONTROLLER_TAINT};

/// The group of the kubelets' shared client certificate (`tls/kubelet.crt`, O=system:nodes).
const KUBELETS_GROUP: &str = "system:nodes";

/// The node-level manifests, in the order bootkube creates them.
pub(super) fn manifests(cluster: &DesiredCluster) -> Vec<Manifest> {
    vec![
        // The kubelets authenticate with one certificate of CN `kubelet`, so the Node
        // authorizer (which knows only `system:node:<name>`) does not apply: RBAC grants
        // them what a kubelet does, as the modules' `kubelet-nodes-cluster-role-binding`.
        manifest(
            "manifests/kubelet-nodes-rbac.json",
            group_binding("system-nodes", "system:node", KUBELETS_GROUP),
        ),
        // A worker deletes its own Node when it shuts down (`delete-node.service`).
        manifest(
            "manifests/kubelet-delete-role.json",
            cluster_role(
                "kubelet-delete",
                json!([{"apiGroups": [""], "resources": ["nodes"], "verbs": ["delete"]}]),
            ),
        ),
        manifest(
            "manifests/kubelet-delete-rbac.json",
            group_binding("kubelet-delete", "kubelet-delete", KUBELETS_GROUP),
        ),
        manifest(
            "manifests/kubeconfig-in-cluster.json",
            kubeconfig_in_cluster(cluster),
        ),
        manifest(
            "manifests/pod-checkpointer-sa.json",
            service_account("pod-checkpointer"),
        ),
        // terraform-render-bootkube's pod-checkpointer rules: it reads its node's pods from
        // the kubelet (nodes/proxy) and the secrets and config maps of the pods it keeps.
        manifest(
            "manifests/pod-checkpointer-cluster-role.json",
            cluster_role(
                "pod-checkpointer",
                json!([{"apiGroups": [""], "resources": ["nodes", "nodes/proxy"], "verbs": ["get"]}]),
            ),
        ),
        manifest(
            "manifests/pod-checkpointer-cluster-rbac.json",
            cluster_role_binding("pod-checkpointer", "pod-checkpointer", "pod-checkpointer"),
        ),
        manifest(
            "manifests/pod-checkpointer-role.json",
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": metadata("pod-checkpointer"),
                "rules": [
                    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
                    {"apiGroups": [""], "resources": ["secrets", "configmaps"], "verbs": ["get"]},
                ],
            }),
        ),
        manifest(
            "manifests/pod-checkpointer-rbac.json",
            role_binding(
                "pod-checkpointer",
                "pod-checkpointer",
                &["pod-checkpointer"],
            ),
        ),
        manifest("manifests/pod-checkpointer.json", pod_checkpointer()),
    ]
}

fn cluster_role(name: &str, rules: Value) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name},
        "rules": rules,
    })
}

fn group_binding(name: &str, role: &str, group: &str) -> Value {
    binding(
        "ClusterRoleBinding",
        json!({"name": name}),
        "ClusterRole",
        role,
        vec![json!({"kind": "Group", "name": group, "apiGroup": "rbac.authorization.k8s.io"})],
    )
}

/// The kubeconfig of host-network components (kube-proxy, the pod checkpointer): they must reach
/// the apiserver before service IPs route, which kube-proxy itself sets up, so the server is the
/// private API name loko writes to Route53, as the modules had it; the credentials are the
/// pod's service account token.
fn kubeconfig_in_cluster(cluster: &DesiredCluster) -> Value {
    let (_, private) = apiserver_names(cluster);
    let server = apiserver_url(&private);
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n    server: {server}\n    certificate-authority: /var/run/secrets/kubernetes.io/serviceaccount/ca.crt\nusers:\n- name: service-account\n  user:\n    tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token\ncontexts:\n- name: default\n  context:\n    cluster: local\n    user: service-account\ncurrent-context: default\n"
    );
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata("kubeconfig-in-cluster"),
        "data": {"kubeconfig": kubeconfig},
    })
}

pub(super) fn kube_proxy(pod_cidr: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "kube-proxy", "namespace": "kube-system", "labels": labels("kube-proxy")},
        "spec": {
            "selector": {"matchLabels": labels("kube-proxy")},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": labels("kube-proxy")},
                "spec": {
                    "hostNetwork": true,
                    "priorityClassName": "system-node-critical",
                    "serviceAccountName": "kube-proxy",
                    "tolerations": [
                        {"effect": "NoSchedule", "operator": "Exists"},
                        {"effect": "NoExecute", "operator": "Exists"},
                    ],
                    "containers": [{
                        "name": "kube-proxy",
                        "image": image("kube-proxy"),
                        "command": [
                            "kube-proxy",
                            format!("--cluster-cidr={pod_cidr}"),
                            "--hostname-override=$(NODE_NAME)",
                            "--kubeconfig=/etc/kubernetes/kubeconfig",
                            "--proxy-mode=iptables",
                            "--healthz-bind-address=0.0.0.0:10256",
                        ],
                        "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
                        "livenessProbe": {
                            "httpGet": {"path": "/healthz", "port": 10256},
                            "initialDelaySeconds": 15,
                            "timeoutSeconds": 15,
                        },
                        "securityContext": {"privileged": true},
                        "volumeMounts": [
                            mount("kubeconfig", "/etc/kubernetes", true),
                            mount("lib-modules", "/lib/modules", true),
                            mount("xtables-lock", "/run/xtables.lock", false),
                        ],
                    }],
                    "volumes": [
                        {"name": "kubeconfig", "configMap": {"name": "kubeconfig-in-cluster"}},
                        host_path("lib-modules", "/lib/modules"),
                        {"name": "xtables-lock", "hostPath": {"path": "/run/xtables.lock", "type": "FileOrCreate"}},
                    ],
                },
            },
        },
    })
}

/// The pod checkpointer keeps the self-hosted control plane's pods on their controller while
/// the apiserver is down (a reboot of a single controller). It exits at start without
/// `NODE_NAME`, `POD_NAME` and `POD_NAMESPACE`; it asks the kubelet at `HOST_IP`; and it lists
/// pods over CRI at `--container-runtime-endpoint`, whose default (the dockershim socket) no
/// longer exists: containerd's socket is under the host's `/run`. It speaks CRI v1alpha2, which
/// containerd 1.x serves (`docs/assets.md`).
fn pod_checkpointer() -> Value {
    let field = |path: &str| json!({"fieldRef": {"fieldPath": path}});
    json!({
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "pod-checkpointer", "namespace": "kube-system", "labels": labels("pod-checkpointer")},
        "spec": {
            "selector": {"matchLabels": labels("pod-checkpointer")},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {
                "metadata": {
                    "labels": labels("pod-checkpointer"),
                    "annotations": {"checkpointer.alpha.coreos.com/checkpoint": "true"},
                },
                "spec": {
                    "hostNetwork": true,
                    "priorityClassName": "system-node-critical",
                    "serviceAccountName": "pod-checkpointer",
                    "nodeSelector": {CONTROLLER_SELECTOR: ""},
                    "tolerations": [controller_toleration()],
                    "containers": [{
                        "name": "pod-checkpointer",
                        "image": CHECKPOINTER_IMAGE,
                        "command": [
                            "/checkpoint",
                            "--lock-file=/var/run/lock/pod-checkpointer.lock",
                            "--kubeconfig=/etc/checkpointer/kubeconfig",
                            format!("--container-runtime-endpoint={CONTAINERD_SOCKET}"),
                        ],
                        "env": [
                            {"name": "NODE_NAME", "valueFrom": field("spec.nodeName")},
                            {"name": "POD_NAME", "valueFrom": field("metadata.name")},
                            {"name": "POD_NAMESPACE", "valueFrom": field("metadata.namespace")},
                            {"name": "HOST_IP", "valueFrom": field("status.hostIP")},
                        ],
                        "volumeMounts": [
                            mount("kubeconfig", "/etc/checkpointer", true),
                            mount("etc-kubernetes", "/etc/kubernetes", false),
                            // The host's /var/run is /run on Flatcar, as in the image:
                            // the containerd socket and the lock file live there.
                            mount("var-run", "/var/run", false),
                        ],
                    }],
                    "volumes": [
                        {"name": "kubeconfig", "configMap": {"name": "kubeconfig-in-cluster"}},
                        host_path("etc-kubernetes", "/etc/kubernetes"),
                        host_path("var-run", "/var/run"),
                    ],
                },
            },
        },
    })
}

/// Tolerates the taint controllers register with.
pub(super) fn controller_toleration() -> Value {
    let key = CONTROLLER_TAINT
        .split('=')
        .next()
        .unwrap_or(CONTROLLER_TAINT);
    json!({"key": key, "operator": "Exists", "effect": "NoSchedule"})
}
