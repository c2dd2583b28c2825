//! Static pods as a node's kubelet reads them from its manifest directory, for the tests of
//! the nodes and of the pod judge (`sim::judge::pod`).

use serde_json::{Value, json};

use crate::apiserver_support::etcd_servers;
use crate::nodes_support::Cluster;

/// A static pod of `component` (`kube-apiserver`, `kube-scheduler`) on the host network, its
/// upstream image run with `flags`, `/etc/kubernetes/pki` mounted read-only from the host's
/// `pki_host_dir`.
pub fn static_pod(component: &str, flags: &[String], pki_host_dir: &str) -> Value {
    let command: Vec<&str> = std::iter::once(component)
        .chain(flags.iter().map(String::as_str))
        .collect();
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": component, "namespace": "kube-system"},
        "spec": {
            "hostNetwork": true,
            "containers": [{
                "name": component,
                "image": format!("registry.k8s.io/{component}:v1.32.3"),
                "command": command,
                "volumeMounts": [{"name": "pki", "mountPath": "/etc/kubernetes/pki", "readOnly": true}],
            }],
            "volumes": [{"name": "pki", "hostPath": {"path": pki_host_dir}}],
        },
    })
}

/// A static kube-apiserver pod as Typhoon's (`resources/static-manifests/kube-apiserver.yaml`),
/// its files under the host's `/etc/kubernetes/pki`.
pub fn static_apiserver_pod(cluster: &Cluster) -> String {
    let flags = [
        "--client-ca-file=/etc/kubernetes/pki/ca.crt".to_owned(),
        format!("--etcd-servers={}", etcd_servers(cluster)),
        "--secure-port=6443".to_owned(),
        "--tls-cert-file=/etc/kubernetes/pki/apiserver.crt".to_owned(),
        "--tls-private-key-file=/etc/kubernetes/pki/apiserver.key".to_owned(),
    ];
    static_pod("kube-apiserver", &flags, "/etc/kubernetes/pki").to_string()
}

/// A static kube-scheduler pod reading `/etc/kubernetes/pki/scheduler.kubeconfig`.
pub fn static_scheduler_pod() -> String {
    let flags = [
        "--kubeconfig=/etc/kubernetes/pki/scheduler.kubeconfig".to_owned(),
        "--leader-elect=true".to_owned(),
    ];
    static_pod("kube-scheduler", &flags, "/etc/kubernetes/pki").to_string()
}
