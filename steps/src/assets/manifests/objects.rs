//! The pieces every manifest is built from: the images, the [`Manifest`] file and the
//! kube-system objects' common shapes. Apart from `mod.rs` so that the files that render the
//! manifests (`coredns.rs`, `network.rs`, `node.rs`) import them without importing their parent.

use serde_json::{Value, json};

/// The Kubernetes release the control plane runs.
pub const KUBERNETES_VERSION: &str = "v1.32.3";

pub(super) const COREDNS_IMAGE: &str = "registry.k8s.io/coredns/coredns:v1.11.4";
/// Calico's own manifest (v3.29.2 `manifests/calico.yaml`) names these.
pub(super) const CALICO_IMAGE: &str = "docker.io/calico/node:v3.29.2";
pub(super) const CALICO_CNI_IMAGE: &str = "docker.io/calico/cni:v3.29.2";
pub(super) const CALICO_KUBE_CONTROLLERS_IMAGE: &str = "docker.io/calico/kube-controllers:v3.29.2";
pub(super) const FLANNEL_IMAGE: &str = "docker.io/flannel/flannel:v0.26.4";
pub(super) const FLANNEL_CNI_IMAGE: &str = "docker.io/flannel/flannel-cni-plugin:v1.6.2-flannel1";

pub(super) fn image(component: &str) -> String {
    format!("registry.k8s.io/{component}:{KUBERNETES_VERSION}")
}

/// One manifest file.
pub(super) struct Manifest {
    pub(super) rel: String,
    pub(super) object: Value,
}

pub(super) fn manifest(rel: &str, object: Value) -> Manifest {
    Manifest {
        rel: rel.to_owned(),
        object,
    }
}

pub(super) fn metadata(name: &str) -> Value {
    json!({"name": name, "namespace": "kube-system"})
}

pub(super) fn labels(name: &str) -> Value {
    json!({"k8s-app": name})
}

/// A DaemonSet of kube-system named `name`, running `pod` (a PodSpec) on every node it
/// tolerates. Its pods carry the one label that selects them, so the selector always matches
/// the template (the apiserver refuses a DaemonSet where it does not). `max_unavailable`: the
/// rolling update's pace, where the upstream manifest sets one.
pub(super) fn daemon_set(name: &str, max_unavailable: Option<u32>, pod: Value) -> Value {
    let mut spec = json!({
        "selector": {"matchLabels": labels(name)},
        "template": {"metadata": {"labels": labels(name)}, "spec": pod},
    });
    if let Some(n) = max_unavailable {
        spec["updateStrategy"] =
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": n}});
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": "kube-system", "labels": labels(name)},
        "spec": spec,
    })
}

pub(super) fn service_account(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata(name)})
}

/// A subject that is a service account of kube-system.
pub(super) fn account(name: &str) -> Value {
    json!({"kind": "ServiceAccount", "name": name, "namespace": "kube-system"})
}

/// A ClusterRoleBinding (`metadata` is `{"name": …}`) or a RoleBinding of kube-system (`metadata`
/// from [`metadata`]) of `role` to `subjects`.
pub(super) fn binding(
    kind: &str,
    metadata: Value,
    role_kind: &str,
    role: &str,
    subjects: Vec<Value>,
) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": metadata,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
        "subjects": subjects,
    })
}

pub(super) fn cluster_role_binding(name: &str, role: &str, service_account: &str) -> Value {
    binding(
        "ClusterRoleBinding",
        json!({"name": name}),
        "ClusterRole",
        role,
        vec![account(service_account)],
    )
}

pub(super) fn host_path(name: &str, path: &str) -> Value {
    json!({"name": name, "hostPath": {"path": path}})
}

/// The host's iptables lock (`/run/xtables.lock`, created empty if missing), for the volumes of
/// a pod whose program writes iptables rules: mounted at the same path, it serializes them
/// with the kubelet's, kube-proxy's and the network's writes.
pub(super) fn xtables_lock_volume() -> Value {
    json!({"name": "xtables-lock", "hostPath": {"path": "/run/xtables.lock", "type": "FileOrCreate"}})
}

pub(super) fn mount(name: &str, path: &str, read_only: bool) -> Value {
    json!({"name": name, "mountPath": path, "readOnly": read_only})
}
