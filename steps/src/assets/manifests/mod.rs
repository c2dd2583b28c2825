//! The manifests of the cluster: `static-manifests/` (the static control plane every
//! controller's kubelet runs from `/etc/kubernetes/manifests`, see [`PKI_DIR`]) and
//! `manifests/` (what the bootstrap step applies through the API once the apiserver answers:
//! cluster DNS, kube-proxy, the kubelets' RBAC and the network: calico with host protection, or
//! flannel).
//!
//! Manifests are JSON (the kubelet and the apiserver read JSON as YAML), built with `json!` so
//! that quoting and nesting are right by construction and the output is deterministic. Their
//! test parses every object into its `k8s-openapi` type and requires the round trip to lose no
//! field, which catches a misspelled key.
//!
//! Differences from the 2019 modules (also in `docs/assets.md`): API groups of today (`apps/v1`,
//! `policy/v1`, `rbac.authorization.k8s.io/v1`, `apiextensions.k8s.io/v1`), images from
//! `registry.k8s.io` instead of the retired hyperkube, and Calico's custom resources declared by
//! minimal CRDs (the full schemas come with Calico's own operator on upgrade).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use specs::{DesiredCluster, Networking};

use super::{AssetDir, AssetError, Sensitivity};

mod coredns;
mod network;
mod node;
mod objects;

use coredns::{coredns_cluster_role, coredns_config, coredns_deployment, coredns_service};
use network::{calico, flannel};
pub use objects::KUBERNETES_VERSION;
use objects::{Manifest, cluster_role_binding, host_path, image, manifest, mount, service_account};

/// The version of what this module renders, part of the manifests step's inputs. The step's
/// other inputs are the spec's settings, so without it a cluster built by an older loko would
/// keep the files that loko rendered, and apply them again, after an upgrade that fixed them
/// (2: the AdminNetworkPolicy CRD's approval annotation, which a real apiserver requires;
/// CoreDNS's `dnsPolicy: Default`; calico-kube-controllers; Calico's policies under the names
/// libcalico-go gives them and Felix's failsafe ports narrowed; TLS bootstrap's flags and RBAC).
/// Raise it with every change that existing clusters must get: their next run renders the
/// manifests again, copies the static control plane again and applies the manifests again.
pub const RENDERING: u32 = 2;
/// What [`render_manifests`] wrote: each file and its SHA-256. No content, so no secret.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
pub struct ManifestReport {
    pub files: BTreeMap<String, String>,
}

/// Renders every manifest into `dir` (Secrets 0600, the rest 0644). Files of a networking
/// choice that is not the cluster's are not written.
pub fn render_manifests(
    dir: &AssetDir,
    cluster: &DesiredCluster,
) -> Result<ManifestReport, AssetError> {
    let manifests = build(cluster)?;
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
    prune(dir, &report)?;
    Ok(report)
}

/// The directories whose files only [`render_manifests`] writes. `bootstrap-manifests/` is
/// bootkube's, from before the static control plane.
const OWNED_DIRS: [&str; 3] = ["manifests", "static-manifests", "bootstrap-manifests"];

/// Removes the files of [`OWNED_DIRS`] that this rendering did not write: an asset directory of
/// an older loko holds the self-hosted control plane and pod-checkpointer, which the bootstrap
/// step must not apply again.
fn prune(dir: &AssetDir, report: &ManifestReport) -> Result<(), AssetError> {
    fn walk(dir: &AssetDir, rel: &str, report: &ManifestReport) -> Result<(), AssetError> {
        let path = dir.path(rel);
        let io = |source| AssetError::Io {
            path: path.clone(),
            source,
        };
        let entries = match std::fs::read_dir(&path) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io)?;
            let child = format!("{rel}/{}", entry.file_name().to_string_lossy());
            if entry.file_type().map_err(io)?.is_dir() {
                walk(dir, &child, report)?;
            } else if !report.files.contains_key(&child) {
                dir.remove(&child)?;
            }
        }
        Ok(())
    }
    for top in OWNED_DIRS {
        walk(dir, top, report)?;
    }
    Ok(())
}

/// A workload of `manifests/` that must run before the cluster is usable, named as `kubectl get
/// pods -n kube-system` shows its pods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Workload {
    /// A DaemonSet of kube-system, whose pod must run on every node.
    EveryNode {
        /// The DaemonSet's name (its pods' owner).
        name: &'static str,
    },
    /// A Deployment of kube-system, `replicas` of whose pods (labelled `k8s-app: <name>`) must
    /// be ready.
    Replicas {
        /// The Deployment's name and its pods' `k8s-app` label.
        name: &'static str,
        /// How many.
        replicas: u32,
    },
}

/// What the readiness step waits for: the network's DaemonSet, kube-proxy and CoreDNS.
pub fn workloads(cluster: &DesiredCluster) -> Vec<Workload> {
    let network = match cluster.settings.networking {
        Networking::Calico => "calico-node",
        Networking::Flannel => "flannel",
    };
    vec![
        Workload::EveryNode { name: network },
        Workload::EveryNode { name: "kube-proxy" },
        Workload::Replicas {
            name: "coredns",
            replicas: coredns_replicas(cluster),
        },
    ]
}

/// CoreDNS's replicas: one per controller, at least two (Typhoon's `max(2, controllers)`).
fn coredns_replicas(cluster: &DesiredCluster) -> u32 {
    cluster.settings.controller_count.max(2)
}

fn build(cluster: &DesiredCluster) -> Result<Vec<Manifest>, AssetError> {
    let s = &cluster.settings;
    let replicas = coredns_replicas(cluster);
    let mut out = static_pods(cluster);
    out.extend([
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
    ]);
    out.extend(node::manifests(cluster));
    match s.networking {
        Networking::Calico => out.extend(calico(cluster)?),
        Networking::Flannel => out.extend(flannel(cluster)),
    }
    Ok(out)
}

/// Where each controller keeps the static control plane's certificates, keys and kubeconfigs
/// (the control-plane step copies them there; keys 0600, the directory 0700).
pub const PKI_DIR: &str = "/etc/kubernetes/pki";

/// The static control plane: kube-apiserver, kube-controller-manager and kube-scheduler as
/// static pods of every controller's kubelet (`--pod-manifest-path`), Typhoon's layout since
/// v1.16 (`poseidon/terraform-render-bootstrap@0f1f16c6` `resources/static-manifests/`), with
/// the files in [`PKI_DIR`] instead of `bootstrap-secrets`. The kubelet restarts them from disk
/// after a reboot, with no apiserver and no checkpointer: a lone controller comes back alone.
fn static_pods(cluster: &DesiredCluster) -> Vec<Manifest> {
    let s = &cluster.settings;
    let pki = |file: &str| format!("{PKI_DIR}/{file}");
    let etcd_servers: Vec<String> = (0..s.controller_count)
        .map(|i| format!("https://{}:2379", cluster.etcd_host(i)))
        .collect();
    let mut apiserver = vec![
        // The node's private address (the kubelet's --node-ip): host-network pods have it.
        "--advertise-address=$(POD_IP)".to_owned(),
        "--allow-privileged=true".to_owned(),
        "--anonymous-auth=false".to_owned(),
        "--authorization-mode=Node,RBAC".to_owned(),
        format!("--client-ca-file={}", pki("ca.crt")),
        "--enable-admission-plugins=NodeRestriction".to_owned(),
        // Kubelets authenticate with the bootstrap token until they have a certificate.
        "--enable-bootstrap-token-auth=true".to_owned(),
        format!("--etcd-cafile={}", pki("etcd-client-ca.crt")),
        format!("--etcd-certfile={}", pki("etcd-client.crt")),
        format!("--etcd-keyfile={}", pki("etcd-client.key")),
        format!("--etcd-servers={}", etcd_servers.join(",")),
        format!("--kubelet-client-certificate={}", pki("apiserver.crt")),
        format!("--kubelet-client-key={}", pki("apiserver.key")),
        // Nodes are reached on their private address first, as the modules had it: the
        // node name does not resolve, and the public address is firewalled.
        "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname".to_owned(),
        "--secure-port=6443".to_owned(),
        format!("--service-account-key-file={}", pki("service-account.pub")),
        "--service-account-issuer=https://kubernetes.default.svc".to_owned(),
        format!(
            "--service-account-signing-key-file={}",
            pki("service-account.key")
        ),
        format!("--service-cluster-ip-range={}", s.service_cidr),
        format!("--tls-cert-file={}", pki("apiserver.crt")),
        format!("--tls-private-key-file={}", pki("apiserver.key")),
    ];
    if s.enable_aggregation {
        apiserver.extend([
            format!("--proxy-client-cert-file={}", pki("aggregation-client.crt")),
            format!("--proxy-client-key-file={}", pki("aggregation-client.key")),
            format!(
                "--requestheader-client-ca-file={}",
                pki("aggregation-ca.crt")
            ),
            "--requestheader-extra-headers-prefix=X-Remote-Extra-".to_owned(),
            "--requestheader-group-headers=X-Remote-Group".to_owned(),
            "--requestheader-username-headers=X-Remote-User".to_owned(),
        ]);
    }
    let controller_manager = vec![
        "--allocate-node-cidrs=true".to_owned(),
        format!("--cluster-cidr={}", s.pod_cidr),
        // csrsigning issues the kubelets' certificates with the cluster CA; its default
        // duration (a year) is kept: a kubelet renews at about 80 % of it, and one powered off
        // longer than the duration cannot come back once its bootstrap token expired.
        format!("--cluster-signing-cert-file={}", pki("ca.crt")),
        format!("--cluster-signing-key-file={}", pki("ca.key")),
        // csrapproving and csrsigning run by default; tokencleaner deletes expired bootstrap
        // token Secrets, as Typhoon v1.32.3 runs it.
        "--controllers=*,tokencleaner".to_owned(),
        format!("--kubeconfig={}", pki("kube-controller-manager.kubeconfig")),
        "--leader-elect=true".to_owned(),
        format!("--root-ca-file={}", pki("ca.crt")),
        format!(
            "--service-account-private-key-file={}",
            pki("service-account.key")
        ),
        format!("--service-cluster-ip-range={}", s.service_cidr),
        "--use-service-account-credentials=true".to_owned(),
    ];
    let scheduler = vec![
        format!("--kubeconfig={}", pki("kube-scheduler.kubeconfig")),
        "--leader-elect=true".to_owned(),
    ];
    vec![
        manifest(
            "static-manifests/kube-apiserver.json",
            static_pod("kube-apiserver", apiserver),
        ),
        manifest(
            "static-manifests/kube-controller-manager.json",
            static_pod("kube-controller-manager", controller_manager),
        ),
        manifest(
            "static-manifests/kube-scheduler.json",
            static_pod("kube-scheduler", scheduler),
        ),
    ]
}

/// One component of the static control plane: its image's binary with `flags`, on the host's
/// network, reading [`PKI_DIR`] (read-only) and the host's CA bundle.
fn static_pod(component: &str, flags: Vec<String>) -> Value {
    let mut command = vec![component.to_owned()];
    command.extend(flags);
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": component,
            "namespace": "kube-system",
            "labels": {"k8s-app": component, "tier": "control-plane"},
        },
        "spec": {
            "hostNetwork": true,
            "priorityClassName": "system-node-critical",
            "containers": [{
                "name": component,
                "image": image(component),
                "command": command,
                "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
                "volumeMounts": [
                    mount("pki", PKI_DIR, true),
                    mount("ssl-certs-host", "/etc/ssl/certs", true),
                ],
            }],
            "volumes": [
                host_path("pki", PKI_DIR),
                host_path("ssl-certs-host", "/usr/share/ca-certificates"),
            ],
        },
    })
}
