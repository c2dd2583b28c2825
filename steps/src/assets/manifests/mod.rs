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

use base64::Engine as _;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use specs::{DesiredCluster, Networking};

use super::{AssetDir, AssetError, Sensitivity};

mod coredns;
mod network;
mod node;

use coredns::{coredns_cluster_role, coredns_config, coredns_deployment, coredns_service};
use network::{calico, flannel};

/// The Kubernetes release the control plane runs.
pub const KUBERNETES_VERSION: &str = "v1.32.3";
const COREDNS_IMAGE: &str = "registry.k8s.io/coredns/coredns:v1.11.4";
/// The checkpointer kinvolk/lokomotive pinned (`assets/terraform-modules/bootkube/variables.tf`);
/// its Makefile publishes `quay.io/kinvolk/checkpoint`.
const CHECKPOINTER_IMAGE: &str =
    "quay.io/kinvolk/checkpoint:43ec4b414e44f202e07bf43e57d2b5ffbcfd4415";
/// Calico's own manifest (v3.29.2 `manifests/calico.yaml`) names these.
const CALICO_IMAGE: &str = "docker.io/calico/node:v3.29.2";
const CALICO_CNI_IMAGE: &str = "docker.io/calico/cni:v3.29.2";
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
            // Nodes are reached on their private address first, as the modules had it: the
            // node name does not resolve, and the public address is firewalled.
            "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname".to_owned(),
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
        // The scheduler binds volumes too: the default binding of this role names the user
        // `system:kube-scheduler`, not the self-hosted scheduler's service account.
        manifest(
            "manifests/kube-scheduler-volume-scheduler-rbac.json",
            cluster_role_binding(
                "volume-scheduler",
                "system:volume-scheduler",
                "kube-scheduler",
            ),
        ),
        // Both read the client CA of requests the apiserver forwards; the default binding of
        // this Role names the users, not the service accounts.
        manifest(
            "manifests/extension-apiserver-authentication-reader.json",
            role_binding(
                "extension-apiserver-authentication-reader",
                "extension-apiserver-authentication-reader",
                &["kube-scheduler", "kube-controller-manager"],
            ),
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
            "manifests/kube-proxy-sa.json",
            service_account("kube-proxy"),
        ),
        manifest(
            "manifests/kube-proxy-rbac.json",
            cluster_role_binding("kube-proxy", "system:node-proxier", "kube-proxy"),
        ),
        manifest(
            "manifests/kube-proxy.json",
            node::kube_proxy(&s.pod_cidr.to_string()),
        ),
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
    out.extend(node::manifests(cluster));
    match s.networking {
        Networking::Calico => out.extend(calico(cluster)?),
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

/// A subject that is a service account of kube-system.
fn account(name: &str) -> Value {
    json!({"kind": "ServiceAccount", "name": name, "namespace": "kube-system"})
}

/// A ClusterRoleBinding (`metadata` is `{"name": …}`) or a RoleBinding of kube-system (`metadata`
/// from [`metadata`]) of `role` to `subjects`.
fn binding(
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

fn cluster_role_binding(name: &str, role: &str, service_account: &str) -> Value {
    binding(
        "ClusterRoleBinding",
        json!({"name": name}),
        "ClusterRole",
        role,
        vec![account(service_account)],
    )
}

/// Binds a Role of kube-system to service accounts of kube-system.
fn role_binding(name: &str, role: &str, accounts: &[&str]) -> Value {
    let subjects = accounts.iter().map(|a| account(a)).collect();
    binding("RoleBinding", metadata(name), "Role", role, subjects)
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

/// The label selecting controllers, which their kubelets set on themselves
/// (`steps::ignition`); the taint they register with is tolerated here.
const CONTROLLER_SELECTOR: &str = crate::ignition::CONTROLLER_LABEL;

fn controller_placement() -> Value {
    json!({
        "nodeSelector": {CONTROLLER_SELECTOR: ""},
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
