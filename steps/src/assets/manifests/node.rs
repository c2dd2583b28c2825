//! What every node runs beside the kubelet, and what the kubelets themselves may do: kube-proxy,
//! the in-cluster kubeconfig of host-network components, and the kubelets' RBAC.

use serde_json::{Value, json};
use specs::DesiredCluster;

use super::objects::{
    Manifest, binding, daemon_set, host_path, image, manifest, metadata, mount, xtables_lock_volume,
};
use crate::assets::pki::{apiserver_names, apiserver_url};

/// The group of every kubelet's certificate (`system:node:<name>`, O=system:nodes).
const NODES_GROUP: &str = "system:nodes";
/// The group every bootstrap token authenticates in.
const BOOTSTRAPPERS_GROUP: &str = "system:bootstrappers";

/// The node-level manifests, in the order they are applied.
pub(super) fn manifests(cluster: &DesiredCluster) -> Vec<Manifest> {
    vec![
        // TLS bootstrap, as Typhoon v1.32.3's terraform-render-bootstrap
        // `resources/manifests/bootstrap-*-cluster-role-binding.yaml`: a bootstrapping kubelet
        // may create its CSR, which the controller-manager approves (nodeclient), and a
        // kubelet renews its own certificate (selfnodeclient). A kubelet is then
        // `system:node:<name>`, served by the Node authorizer: no binding of the group to
        // `system:node` (it would let every node read every Secret).
        manifest(
            "manifests/kubelet-bootstrap-rbac.json",
            group_binding(
                "bootstrap-node",
                "system:node-bootstrapper",
                BOOTSTRAPPERS_GROUP,
            ),
        ),
        manifest(
            "manifests/kubelet-bootstrap-approve-new-rbac.json",
            group_binding(
                "bootstrap-approve-new",
                "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
                BOOTSTRAPPERS_GROUP,
            ),
        ),
        manifest(
            "manifests/kubelet-bootstrap-approve-renew-rbac.json",
            group_binding(
                "bootstrap-approve-renew",
                "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
                NODES_GROUP,
            ),
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
            group_binding("kubelet-delete", "kubelet-delete", NODES_GROUP),
        ),
        manifest(
            "manifests/kubeconfig-in-cluster.json",
            kubeconfig_in_cluster(cluster),
        ),
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

/// The kubeconfig of host-network components (kube-proxy): they must reach
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
    daemon_set(
        "kube-proxy",
        Some(1),
        json!({
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
                xtables_lock_volume(),
            ],
        }),
    )
}
