//! The manifests bootkube applies: `bootstrap-manifests/` (the temporary control plane, static
//! pods) and `manifests/` (the self-hosted control plane, cluster DNS, kube-proxy, the pod
//! checkpointer and the network: calico with host protection, or flannel).
//!
//! Manifests are JSON (bootkube and kubectl read `.json` like `.yaml`), built with `json!` so
//! that quoting and nesting are right by construction and the output is deterministic. Their
//! test parses every object into its `k8s-openapi` type and requires the round trip to lose no
//! field, which catches a misspelled key.
//!
//! Differences from the 2019 modules (also in `docs/assets.md`): API groups of today (`apps/v1`,
//! `policy/v1`, `rbac.authorization.k8s.io/v1`, `apiextensions.k8s.io/v1`), images from
//! `registry.k8s.io` instead of the retired hyperkube, and Calico's custom resources declared by
//! minimal CRDs (the full schemas come with Calico's own operator on upgrade).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use base64::Engine as _;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use specs::{DesiredCluster, Networking};

use super::{AssetDir, AssetError, Sensitivity};

/// The Kubernetes release the control plane runs.
pub const KUBERNETES_VERSION: &str = "v1.32.3";
const COREDNS_IMAGE: &str = "registry.k8s.io/coredns/coredns:v1.11.4";
const CHECKPOINTER_IMAGE: &str =
    "quay.io/kinvolk/pod-checkpointer:83e25e5968391b9eb342042c435d1b3eeddb2be1";
const CALICO_IMAGE: &str = "quay.io/calico/node:v3.29.2";
const CALICO_CNI_IMAGE: &str = "quay.io/calico/cni:v3.29.2";
const FLANNEL_IMAGE: &str = "docker.io/flannel/flannel:v0.26.4";
const FLANNEL_CNI_IMAGE: &str = "docker.io/flannel/flannel-cni-plugin:v1.6.2-flannel1";

fn image(component: &str) -> String {
    format!("registry.k8s.io/{component}:{KUBERNETES_VERSION}")
}

/// What [`render_manifests`] wrote: each file and its SHA-256. No content, so no secret.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ManifestReport {
    pub files: BTreeMap<String, String>,
}

/// One manifest file.
struct Manifest {
    rel: String,
    object: Value,
}

fn manifest(rel: &str, object: Value) -> Manifest {
    Manifest {
        rel: rel.to_owned(),
        object,
    }
}

/// Reads a PEM file of the PKI as base64, for a Secret.
fn secret_data(dir: &AssetDir, rel: &str) -> Result<String, AssetError> {
    let bytes = dir.read(rel)?.ok_or_else(|| AssetError::Invalid {
        path: dir.path(rel),
        reason: "missing; the PKI step writes it".into(),
    })?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// Renders every manifest into `dir` (Secrets 0600, the rest 0644). Files of a networking
/// choice that is not the cluster's are not written.
pub fn render_manifests(
    dir: &AssetDir,
    cluster: &DesiredCluster,
) -> Result<ManifestReport, AssetError> {
    let manifests = build(dir, cluster)?;
    let mut report = ManifestReport::default();
    for m in manifests {
        let mut text =
            serde_json::to_string_pretty(&m.object).map_err(|e| AssetError::Generate {
                what: m.rel.clone(),
                reason: e.to_string(),
            })?;
        text.push('\n');
        let sensitivity = if m.object["kind"] == "Secret" {
            Sensitivity::Secret
        } else {
            Sensitivity::Public
        };
        dir.write(&m.rel, text.as_bytes(), sensitivity)?;
        let digest: String = Sha256::digest(text.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        report.files.insert(m.rel, digest);
    }
    Ok(report)
}

fn build(dir: &AssetDir, cluster: &DesiredCluster) -> Result<Vec<Manifest>, AssetError> {
    let s = &cluster.settings;
    let etcd_servers: Vec<String> = (0..s.controller_count)
        .map(|i| format!("https://{}-etcd{i}.{}:2379", s.cluster_name, s.dns_zone))
        .collect();
    let etcd_servers = etcd_servers.join(",");
    let controllers = s.controller_count.max(1);
    let replicas = controllers.max(2);
    let mut apiserver_secret = BTreeMap::new();
    for (key, rel) in [
        ("apiserver.crt", "tls/apiserver.crt"),
        ("apiserver.key", "tls/apiserver.key"),
        ("ca.crt", "tls/ca.crt"),
        ("etcd-client-ca.crt", "tls/etcd-client-ca.crt"),
        ("etcd-client.crt", "tls/etcd-client.crt"),
        ("etcd-client.key", "tls/etcd-client.key"),
        ("service-account.pub", "tls/service-account.pub"),
    ] {
        apiserver_secret.insert(key, secret_data(dir, rel)?);
    }
    let mut aggregation_flags = Vec::new();
    if s.enable_aggregation {
        for (key, rel) in [
            ("aggregation-ca.crt", "tls/aggregation-ca.crt"),
            ("aggregation-client.crt", "tls/aggregation-client.crt"),
            ("aggregation-client.key", "tls/aggregation-client.key"),
        ] {
            apiserver_secret.insert(key, secret_data(dir, rel)?);
        }
        aggregation_flags = vec![
            "--proxy-client-cert-file=/etc/kubernetes/secrets/aggregation-client.crt".to_owned(),
            "--proxy-client-key-file=/etc/kubernetes/secrets/aggregation-client.key".to_owned(),
            "--requestheader-client-ca-file=/etc/kubernetes/secrets/aggregation-ca.crt".to_owned(),
            "--requestheader-extra-headers-prefix=X-Remote-Extra-".to_owned(),
            "--requestheader-group-headers=X-Remote-Group".to_owned(),
            "--requestheader-username-headers=X-Remote-User".to_owned(),
        ];
    }
    let apiserver_flags = |secrets: &str| -> Vec<String> {
        let mut flags = vec![
            "--advertise-address=$(POD_IP)".to_owned(),
            "--allow-privileged=true".to_owned(),
            "--anonymous-auth=false".to_owned(),
            "--authorization-mode=Node,RBAC".to_owned(),
            format!("--client-ca-file={secrets}/ca.crt"),
            "--enable-admission-plugins=NodeRestriction".to_owned(),
            format!("--etcd-cafile={secrets}/etcd-client-ca.crt"),
            format!("--etcd-certfile={secrets}/etcd-client.crt"),
            format!("--etcd-keyfile={secrets}/etcd-client.key"),
            format!("--etcd-servers={etcd_servers}"),
            format!("--kubelet-client-certificate={secrets}/apiserver.crt"),
            format!("--kubelet-client-key={secrets}/apiserver.key"),
            "--secure-port=6443".to_owned(),
            format!("--service-account-key-file={secrets}/service-account.pub"),
            "--service-account-issuer=https://kubernetes.default.svc".to_owned(),
            format!("--service-account-signing-key-file={secrets}/service-account.key"),
            format!("--service-cluster-ip-range={}", s.service_cidr),
            format!("--tls-cert-file={secrets}/apiserver.crt"),
            format!("--tls-private-key-file={secrets}/apiserver.key"),
        ];
        flags.extend(
            aggregation_flags
                .iter()
                .map(|f| f.replace("/etc/kubernetes/secrets", secrets)),
        );
        flags
    };
    let mut cm_secret = BTreeMap::new();
    for (key, rel) in [
        ("ca.crt", "tls/ca.crt"),
        ("ca.key", "tls/ca.key"),
        ("service-account.key", "tls/service-account.key"),
    ] {
        cm_secret.insert(key, secret_data(dir, rel)?);
    }
    // The apiserver signs service-account tokens with the private key too.
    apiserver_secret.insert(
        "service-account.key",
        cm_secret["service-account.key"].clone(),
    );
    let controller_manager_flags = |secrets: &str, kubeconfig: Option<&str>| -> Vec<String> {
        let mut flags = vec![
            "--allocate-node-cidrs=true".to_owned(),
            format!("--cluster-cidr={}", s.pod_cidr),
            format!("--cluster-signing-cert-file={secrets}/ca.crt"),
            format!("--cluster-signing-key-file={secrets}/ca.key"),
            "--leader-elect=true".to_owned(),
            format!("--root-ca-file={secrets}/ca.crt"),
            format!("--service-account-private-key-file={secrets}/service-account.key"),
            format!("--service-cluster-ip-range={}", s.service_cidr),
            "--use-service-account-credentials=true".to_owned(),
        ];
        if let Some(k) = kubeconfig {
            flags.push(format!("--kubeconfig={k}"));
        }
        flags
    };

    let mut out = vec![
        // The temporary control plane bootkube runs as static pods.
        manifest(
            "bootstrap-manifests/bootstrap-apiserver.json",
            static_pod(
                "bootstrap-kube-apiserver",
                &image("kube-apiserver"),
                "kube-apiserver",
                apiserver_flags("/etc/kubernetes/secrets"),
            ),
        ),
        manifest(
            "bootstrap-manifests/bootstrap-controller-manager.json",
            static_pod(
                "bootstrap-kube-controller-manager",
                &image("kube-controller-manager"),
                "kube-controller-manager",
                controller_manager_flags(
                    "/etc/kubernetes/secrets",
                    Some("/etc/kubernetes/secrets/kubeconfig"),
                ),
            ),
        ),
        manifest(
            "bootstrap-manifests/bootstrap-scheduler.json",
            static_pod(
                "bootstrap-kube-scheduler",
                &image("kube-scheduler"),
                "kube-scheduler",
                vec![
                    "--kubeconfig=/etc/kubernetes/secrets/kubeconfig".to_owned(),
                    "--leader-elect=true".to_owned(),
                ],
            ),
        ),
        // The self-hosted control plane.
        manifest(
            "manifests/kube-apiserver-secret.json",
            secret("kube-apiserver", &apiserver_secret),
        ),
        manifest(
            "manifests/kube-apiserver.json",
            control_plane_daemonset(
                "kube-apiserver",
                &image("kube-apiserver"),
                apiserver_flags("/etc/kubernetes/secrets"),
            ),
        ),
        manifest(
            "manifests/kube-controller-manager-secret.json",
            secret("kube-controller-manager", &cm_secret),
        ),
        manifest(
            "manifests/kube-controller-manager-sa.json",
            service_account("kube-controller-manager"),
        ),
        manifest(
            "manifests/kube-controller-manager-rbac.json",
            cluster_role_binding(
                "kube-controller-manager",
                "system:kube-controller-manager",
                "kube-controller-manager",
            ),
        ),
        manifest(
            "manifests/kube-controller-manager.json",
            control_plane_deployment(
                "kube-controller-manager",
                &image("kube-controller-manager"),
                replicas,
                controller_manager_flags("/etc/kubernetes/secrets", None),
                true,
            ),
        ),
        manifest(
            "manifests/kube-controller-manager-pdb.json",
            pdb("kube-controller-manager"),
        ),
        manifest(
            "manifests/kube-scheduler-sa.json",
            service_account("kube-scheduler"),
        ),
        manifest(
            "manifests/kube-scheduler-rbac.json",
            cluster_role_binding("kube-scheduler", "system:kube-scheduler", "kube-scheduler"),
        ),
        manifest(
            "manifests/kube-scheduler.json",
            control_plane_deployment(
                "kube-scheduler",
                &image("kube-scheduler"),
                replicas,
                vec!["--leader-elect=true".to_owned()],
                false,
            ),
        ),
        manifest("manifests/kube-scheduler-pdb.json", pdb("kube-scheduler")),
        manifest(
            "manifests/kubeconfig-in-cluster.json",
            kubeconfig_in_cluster(),
        ),
        manifest(
            "manifests/kube-proxy-sa.json",
            service_account("kube-proxy"),
        ),
        manifest(
            "manifests/kube-proxy-rbac.json",
            cluster_role_binding("kube-proxy", "system:node-proxier", "kube-proxy"),
        ),
        manifest(
            "manifests/kube-proxy.json",
            kube_proxy(&s.pod_cidr.to_string()),
        ),
        manifest(
            "manifests/pod-checkpointer-sa.json",
            service_account("pod-checkpointer"),
        ),
        manifest("manifests/pod-checkpointer.json", pod_checkpointer()),
        manifest("manifests/coredns-sa.json", service_account("coredns")),
        manifest("manifests/coredns-role.json", coredns_cluster_role()),
        manifest(
            "manifests/coredns-rbac.json",
            cluster_role_binding("system:coredns", "system:coredns", "coredns"),
        ),
        manifest(
            "manifests/coredns-config.json",
            coredns_config(&s.cluster_domain_suffix),
        ),
        manifest("manifests/coredns.json", coredns_deployment(replicas)),
        manifest(
            "manifests/coredns-svc.json",
            coredns_service(cluster.dns_service_ip),
        ),
    ];
    match s.networking {
        Networking::Calico => out.extend(calico(cluster)),
        Networking::Flannel => out.extend(flannel(cluster)),
    }
    Ok(out)
}

fn metadata(name: &str) -> Value {
    json!({"name": name, "namespace": "kube-system"})
}

fn labels(name: &str) -> Value {
    json!({"k8s-app": name})
}

fn secret(name: &str, data: &BTreeMap<&str, String>) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(name),
        "type": "Opaque",
        "data": data,
    })
}

fn service_account(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata(name)})
}

fn cluster_role_binding(name: &str, role: &str, account: &str) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": "kube-system"}],
    })
}

fn pdb(name: &str) -> Value {
    json!({
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(name),
        "spec": {"minAvailable": 1, "selector": {"matchLabels": labels(name)}},
    })
}

fn host_path(name: &str, path: &str) -> Value {
    json!({"name": name, "hostPath": {"path": path}})
}

fn mount(name: &str, path: &str, read_only: bool) -> Value {
    json!({"name": name, "mountPath": path, "readOnly": read_only})
}

fn static_pod(name: &str, image: &str, command: &str, flags: Vec<String>) -> Value {
    let mut args = vec![command.to_owned()];
    args.extend(flags);
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata(name),
        "spec": {
            "hostNetwork": true,
            "containers": [{
                "name": command,
                "image": image,
                "command": args,
                "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
                "volumeMounts": [
                    mount("secrets", "/etc/kubernetes/secrets", true),
                    mount("ssl-certs-host", "/etc/ssl/certs", true),
                ],
            }],
            "volumes": [
                host_path("secrets", "/etc/kubernetes/bootstrap-secrets"),
                host_path("ssl-certs-host", "/usr/share/ca-certificates"),
            ],
        },
    })
}

fn controller_placement() -> Value {
    json!({
        "nodeSelector": {"node-role.kubernetes.io/master": ""},
        "tolerations": [{"key": "node-role.kubernetes.io/master", "operator": "Exists", "effect": "NoSchedule"}],
        "securityContext": {"runAsNonRoot": true, "runAsUser": 65534},
    })
}

fn control_plane_daemonset(name: &str, image: &str, flags: Vec<String>) -> Value {
    let mut command = vec![name.to_owned()];
    command.extend(flags);
    let mut spec = controller_placement();
    spec["hostNetwork"] = json!(true);
    spec["securityContext"] = json!({});
    spec["containers"] = json!([{
        "name": name,
        "image": image,
        "command": command,
        "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
        "volumeMounts": [
            mount("secrets", "/etc/kubernetes/secrets", true),
            mount("ssl-certs-host", "/etc/ssl/certs", true),
        ],
    }]);
    spec["volumes"] = json!([
        {"name": "secrets", "secret": {"secretName": name}},
        host_path("ssl-certs-host", "/usr/share/ca-certificates"),
    ]);
    json!({
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": "kube-system", "labels": labels(name)},
        "spec": {
            "selector": {"matchLabels": labels(name)},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {
                "metadata": {
                    "labels": labels(name),
                    "annotations": {"checkpointer.alpha.coreos.com/checkpoint": "true"},
                },
                "spec": spec,
            },
        },
    })
}

fn control_plane_deployment(
    name: &str,
    image: &str,
    replicas: u32,
    flags: Vec<String>,
    with_secrets: bool,
) -> Value {
    let mut command = vec![name.to_owned()];
    command.extend(flags);
    let mut container = json!({"name": name, "image": image, "command": command});
    let mut spec = controller_placement();
    spec["serviceAccountName"] = json!(name);
    if with_secrets {
        container["volumeMounts"] = json!([mount("secrets", "/etc/kubernetes/secrets", true)]);
        spec["volumes"] = json!([{"name": "secrets", "secret": {"secretName": name}}]);
    }
    spec["containers"] = json!([container]);
    spec["affinity"] = json!({"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
        "weight": 100,
        "podAffinityTerm": {
            "labelSelector": {"matchLabels": labels(name)},
            "topologyKey": "kubernetes.io/hostname",
        },
    }]}});
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "kube-system", "labels": labels(name)},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels(name)},
            "template": {"metadata": {"labels": labels(name)}, "spec": spec},
        },
    })
}

fn kubeconfig_in_cluster() -> Value {
    let kubeconfig = "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n    server: https://kubernetes.default.svc\n    certificate-authority: /var/run/secrets/kubernetes.io/serviceaccount/ca.crt\nusers:\n- name: service-account\n  user:\n    tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token\ncontexts:\n- context:\n    cluster: local\n    user: service-account\ncurrent-context: \"\"\n";
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata("kubeconfig-in-cluster"),
        "data": {"kubeconfig": kubeconfig},
    })
}

fn kube_proxy(pod_cidr: &str) -> Value {
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
                    "serviceAccountName": "kube-proxy",
                    "tolerations": [{"operator": "Exists"}],
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
                        "securityContext": {"privileged": true},
                        "volumeMounts": [
                            mount("kubeconfig", "/etc/kubernetes", true),
                            mount("lib-modules", "/lib/modules", true),
                        ],
                    }],
                    "volumes": [
                        {"name": "kubeconfig", "configMap": {"name": "kubeconfig-in-cluster"}},
                        host_path("lib-modules", "/lib/modules"),
                    ],
                },
            },
        },
    })
}

fn pod_checkpointer() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "pod-checkpointer", "namespace": "kube-system", "labels": labels("pod-checkpointer")},
        "spec": {
            "selector": {"matchLabels": labels("pod-checkpointer")},
            "template": {
                "metadata": {
                    "labels": labels("pod-checkpointer"),
                    "annotations": {"checkpointer.alpha.coreos.com/checkpoint": "true"},
                },
                "spec": {
                    "hostNetwork": true,
                    "serviceAccountName": "pod-checkpointer",
                    "nodeSelector": {"node-role.kubernetes.io/master": ""},
                    "tolerations": [{"key": "node-role.kubernetes.io/master", "operator": "Exists", "effect": "NoSchedule"}],
                    "containers": [{
                        "name": "pod-checkpointer",
                        "image": CHECKPOINTER_IMAGE,
                        "command": [
                            "/checkpoint",
                            "--lock-file=/var/run/lock/pod-checkpointer.lock",
                            "--kubeconfig=/etc/checkpointer/kubeconfig",
                        ],
                        "volumeMounts": [
                            mount("kubeconfig", "/etc/checkpointer", true),
                            mount("etc-kubernetes", "/etc/kubernetes", false),
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

fn coredns_cluster_role() -> Value {
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

fn coredns_config(domain: &str) -> Value {
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

fn coredns_deployment(replicas: u32) -> Value {
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

fn coredns_service(ip: Ipv4Addr) -> Value {
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

/// The kinds of Calico resources loko creates, declared by minimal CRDs.
pub const CALICO_KINDS: [(&str, &str); 4] = [
    ("FelixConfiguration", "felixconfigurations"),
    ("IPPool", "ippools"),
    ("HostEndpoint", "hostendpoints"),
    ("GlobalNetworkPolicy", "globalnetworkpolicies"),
];

fn calico_crd(kind: &str, plural: &str) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.crd.projectcalico.org")},
        "spec": {
            "group": "crd.projectcalico.org",
            "scope": "Cluster",
            "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase()},
            "versions": [{
                "name": "v1",
                "served": true,
                "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
            }],
        },
    })
}

fn calico(cluster: &DesiredCluster) -> Vec<Manifest> {
    let s = &cluster.settings;
    let can_reach = Ipv4Addr::from(u32::from(s.node_private_cidr.network()).saturating_add(1));
    let mut out: Vec<Manifest> = CALICO_KINDS
        .iter()
        .map(|(kind, plural)| {
            manifest(
                &format!("manifests/calico/crd-{plural}.json"),
                calico_crd(kind, plural),
            )
        })
        .collect();
    out.push(manifest(
        "manifests/calico/config.json",
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata("calico-config"),
            "data": {
                "veth_mtu": s.network_mtu.to_string(),
                "cni_network_config": json!({
                    "name": "k8s-pod-network",
                    "cniVersion": "0.3.1",
                    "plugins": [
                        {"type": "calico", "mtu": s.network_mtu, "ipam": {"type": "calico-ipam"},
                         "kubernetes": {"kubeconfig": "__KUBECONFIG_FILEPATH__"}},
                        {"type": "portmap", "snat": true, "capabilities": {"portMappings": true}},
                    ],
                }).to_string(),
            },
        }),
    ));
    out.push(manifest(
        "manifests/calico/sa.json",
        service_account("calico-node"),
    ));
    out.push(manifest(
        "manifests/calico/role.json",
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "calico-node"},
            "rules": [
                {"apiGroups": [""], "resources": ["pods", "nodes", "namespaces", "services", "endpoints", "configmaps", "serviceaccounts"], "verbs": ["get", "list", "watch"]},
                {"apiGroups": [""], "resources": ["nodes/status", "pods/status"], "verbs": ["patch", "update"]},
                {"apiGroups": ["crd.projectcalico.org"], "resources": ["*"], "verbs": ["create", "get", "list", "update", "watch"]},
                {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": ["get", "list", "watch"]},
            ],
        }),
    ));
    out.push(manifest(
        "manifests/calico/rbac.json",
        cluster_role_binding("calico-node", "calico-node", "calico-node"),
    ));
    out.push(manifest(
        "manifests/calico/ippool.json",
        json!({
            "apiVersion": "crd.projectcalico.org/v1",
            "kind": "IPPool",
            "metadata": {"name": "default-ipv4-ippool"},
            "spec": {"cidr": s.pod_cidr.to_string(), "ipipMode": "Always", "natOutgoing": true, "blockSize": 24},
        }),
    ));
    out.push(manifest(
        "manifests/calico/felix.json",
        json!({
            "apiVersion": "crd.projectcalico.org/v1",
            "kind": "FelixConfiguration",
            "metadata": {"name": "default"},
            "spec": {"usageReportingEnabled": s.enable_reporting, "logSeverityScreen": "Info"},
        }),
    ));
    // Host protection (kinvolk/lokomotive's calico-host-protection): SSH and the API only from
    // the management CIDRs, cluster traffic only from the cluster's own CIDRs.
    for node in cluster.controllers() {
        out.push(manifest(
            &format!("manifests/calico/hostendpoint-{}.json", node.hostname),
            json!({
                "apiVersion": "crd.projectcalico.org/v1",
                "kind": "HostEndpoint",
                "metadata": {
                    "name": format!("{}-bond0", node.hostname),
                    "labels": {"host-endpoint": "ingress", "nodetype": "controller"},
                },
                "spec": {"node": node.hostname, "interfaceName": "bond0"},
            }),
        ));
    }
    let management: Vec<String> = s.management_cidrs.iter().map(|c| c.to_string()).collect();
    let cluster_cidrs = vec![
        s.node_private_cidr.to_string(),
        s.pod_cidr.to_string(),
        s.service_cidr.to_string(),
    ];
    out.push(manifest(
        "manifests/calico/policy-management.json",
        json!({
            "apiVersion": "crd.projectcalico.org/v1",
            "kind": "GlobalNetworkPolicy",
            "metadata": {"name": "allow-management"},
            "spec": {
                "selector": "host-endpoint == 'ingress'",
                "order": 10,
                "ingress": [{"action": "Allow", "protocol": "TCP",
                             "source": {"nets": management},
                             "destination": {"ports": [22, 6443]}}],
            },
        }),
    ));
    out.push(manifest(
        "manifests/calico/policy-cluster.json",
        json!({
            "apiVersion": "crd.projectcalico.org/v1",
            "kind": "GlobalNetworkPolicy",
            "metadata": {"name": "allow-cluster"},
            "spec": {
                "selector": "host-endpoint == 'ingress'",
                "order": 20,
                "ingress": [{"action": "Allow", "source": {"nets": cluster_cidrs}}],
                "egress": [{"action": "Allow"}],
            },
        }),
    ));
    out.push(manifest(
        "manifests/calico/node.json",
        json!({
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "calico-node", "namespace": "kube-system", "labels": labels("calico-node")},
            "spec": {
                "selector": {"matchLabels": labels("calico-node")},
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
                "template": {
                    "metadata": {"labels": labels("calico-node")},
                    "spec": {
                        "hostNetwork": true,
                        "serviceAccountName": "calico-node",
                        "tolerations": [{"operator": "Exists"}],
                        "initContainers": [{
                            "name": "install-cni",
                            "image": CALICO_CNI_IMAGE,
                            "command": ["/opt/cni/bin/install"],
                            "env": [
                                {"name": "CNI_NETWORK_CONFIG", "valueFrom": {"configMapKeyRef": {"name": "calico-config", "key": "cni_network_config"}}},
                                {"name": "CNI_MTU", "valueFrom": {"configMapKeyRef": {"name": "calico-config", "key": "veth_mtu"}}},
                            ],
                            "volumeMounts": [mount("cni-bin-dir", "/host/opt/cni/bin", false), mount("cni-net-dir", "/host/etc/cni/net.d", false)],
                        }],
                        "containers": [{
                            "name": "calico-node",
                            "image": CALICO_IMAGE,
                            "env": [
                                {"name": "DATASTORE_TYPE", "value": "kubernetes"},
                                {"name": "NODENAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                                {"name": "CALICO_NETWORKING_BACKEND", "value": "bird"},
                                {"name": "CLUSTER_TYPE", "value": "k8s,bgp"},
                                {"name": "IP", "value": "autodetect"},
                                {"name": "IP_AUTODETECTION_METHOD", "value": format!("can-reach={can_reach}")},
                                {"name": "CALICO_IPV4POOL_CIDR", "value": s.pod_cidr.to_string()},
                                {"name": "CALICO_IPV4POOL_IPIP", "value": "Always"},
                                {"name": "FELIX_IPINIPMTU", "valueFrom": {"configMapKeyRef": {"name": "calico-config", "key": "veth_mtu"}}},
                                {"name": "FELIX_USAGEREPORTINGENABLED", "value": s.enable_reporting.to_string()},
                                {"name": "FELIX_DEFAULTENDPOINTTOHOSTACTION", "value": "ACCEPT"},
                            ],
                            "securityContext": {"privileged": true},
                            "volumeMounts": [
                                mount("lib-modules", "/lib/modules", true),
                                mount("var-run-calico", "/var/run/calico", false),
                                mount("var-lib-calico", "/var/lib/calico", false),
                            ],
                        }],
                        "volumes": [
                            host_path("lib-modules", "/lib/modules"),
                            host_path("var-run-calico", "/var/run/calico"),
                            host_path("var-lib-calico", "/var/lib/calico"),
                            host_path("cni-bin-dir", "/opt/cni/bin"),
                            host_path("cni-net-dir", "/etc/cni/net.d"),
                        ],
                    },
                },
            },
        }),
    ));
    out
}

fn flannel(cluster: &DesiredCluster) -> Vec<Manifest> {
    let s = &cluster.settings;
    let net_conf =
        json!({"Network": s.pod_cidr.to_string(), "Backend": {"Type": "vxlan", "Port": 4789}});
    let cni_conf = json!({
        "name": "cbr0",
        "cniVersion": "0.3.1",
        "plugins": [
            {"type": "flannel", "delegate": {"hairpinMode": true, "isDefaultGateway": true}},
            {"type": "portmap", "capabilities": {"portMappings": true}},
        ],
    });
    vec![
        manifest("manifests/flannel/sa.json", service_account("flannel")),
        manifest(
            "manifests/flannel/role.json",
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": "flannel"},
                "rules": [
                    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
                    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]},
                    {"apiGroups": [""], "resources": ["nodes/status"], "verbs": ["patch"]},
                ],
            }),
        ),
        manifest(
            "manifests/flannel/rbac.json",
            cluster_role_binding("flannel", "flannel", "flannel"),
        ),
        manifest(
            "manifests/flannel/config.json",
            json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": metadata("flannel-config"),
                "data": {"net-conf.json": net_conf.to_string(), "cni-conf.json": cni_conf.to_string()},
            }),
        ),
        manifest(
            "manifests/flannel/daemonset.json",
            json!({
                "apiVersion": "apps/v1",
                "kind": "DaemonSet",
                "metadata": {"name": "flannel", "namespace": "kube-system", "labels": labels("flannel")},
                "spec": {
                    "selector": {"matchLabels": labels("flannel")},
                    "template": {
                        "metadata": {"labels": labels("flannel")},
                        "spec": {
                            "hostNetwork": true,
                            "serviceAccountName": "flannel",
                            "tolerations": [{"operator": "Exists"}],
                            "initContainers": [{
                                "name": "install-cni",
                                "image": FLANNEL_CNI_IMAGE,
                                "command": ["cp", "-f", "/flannel", "/opt/cni/bin/flannel"],
                                "volumeMounts": [mount("cni-bin-dir", "/opt/cni/bin", false)],
                            }],
                            "containers": [{
                                "name": "flannel",
                                "image": FLANNEL_IMAGE,
                                "command": ["/opt/bin/flanneld", "--ip-masq", "--kube-subnet-mgr", "--iface=$(POD_IP)"],
                                "env": [
                                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                                    {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                                    {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                                ],
                                "securityContext": {"privileged": true},
                                "volumeMounts": [
                                    mount("flannel-config", "/etc/kube-flannel/", true),
                                    mount("run-flannel", "/run/flannel", false),
                                ],
                            }],
                            "volumes": [
                                {"name": "flannel-config", "configMap": {"name": "flannel-config"}},
                                host_path("run-flannel", "/run/flannel"),
                                host_path("cni-bin-dir", "/opt/cni/bin"),
                            ],
                        },
                    },
                },
            }),
        ),
    ]
}
