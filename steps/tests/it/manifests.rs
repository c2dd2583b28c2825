//! Every manifest is a Kubernetes object its API accepts: parsed into its `k8s-openapi` type,
//! it serializes back to the same JSON (a field the type does not know is a typo, and the round
//! trip drops it). Calico's custom resources must be of a kind a shipped CRD declares, and each
//! CRD one the apiserver accepts.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use specs::DesiredCluster;
use steps::assets::AssetDir;
use steps::assets::manifests::render_manifests;
use steps::assets::pki::{PkiInputs, ensure_pki};

fn example(name: &str) -> DesiredCluster {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name);
    specs::load(&path).unwrap().desired()
}

fn rendered(cluster: &DesiredCluster) -> (tempfile::TempDir, AssetDir) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = AssetDir::create(tmp.path()).unwrap();
    ensure_pki(
        &dir,
        &PkiInputs::from_desired(cluster),
        std::time::SystemTime::now(),
    )
    .unwrap();
    render_manifests(&dir, cluster).unwrap();
    (tmp, dir)
}

fn round_trip<T: DeserializeOwned + Serialize>(file: &str, object: &Value) {
    let typed: T = serde_json::from_value(object.clone())
        .unwrap_or_else(|e| panic!("{file}: not a valid object: {e}"));
    let back = serde_json::to_value(&typed).unwrap();
    assert_eq!(
        &back, object,
        "{file}: the round trip lost or changed a field"
    );
}

fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn check_all(cluster: &DesiredCluster) -> Vec<Value> {
    let (_tmp, dir) = rendered(cluster);
    let mut objects = Vec::new();
    // Custom resources must be of a kind a rendered CRD declares in their group.
    let mut declared: BTreeSet<(String, String)> = BTreeSet::new();
    for path in files(&dir.path("manifests")) {
        let object: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        if object["kind"] == "CustomResourceDefinition" {
            for version in object["spec"]["versions"].as_array().unwrap() {
                declared.insert((
                    format!(
                        "{}/{}",
                        object["spec"]["group"].as_str().unwrap(),
                        version["name"].as_str().unwrap()
                    ),
                    object["spec"]["names"]["kind"].as_str().unwrap().to_owned(),
                ));
            }
        }
    }
    for sub in ["static-manifests", "manifests"] {
        for path in files(&dir.path(sub)) {
            let name = path.display().to_string();
            let object: Value = serde_json::from_slice(&std::fs::read(&path).unwrap())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let kind = object["kind"].as_str().unwrap_or_default().to_owned();
            let api = object["apiVersion"].as_str().unwrap_or_default().to_owned();
            match (api.as_str(), kind.as_str()) {
                ("v1", "Pod") => round_trip::<Pod>(&name, &object),
                ("v1", "Secret") => round_trip::<Secret>(&name, &object),
                ("v1", "ConfigMap") => round_trip::<ConfigMap>(&name, &object),
                ("v1", "Service") => round_trip::<Service>(&name, &object),
                ("v1", "ServiceAccount") => round_trip::<ServiceAccount>(&name, &object),
                ("apps/v1", "DaemonSet") => round_trip::<DaemonSet>(&name, &object),
                ("apps/v1", "Deployment") => round_trip::<Deployment>(&name, &object),
                ("policy/v1", "PodDisruptionBudget") => {
                    round_trip::<PodDisruptionBudget>(&name, &object)
                }
                ("rbac.authorization.k8s.io/v1", "ClusterRole") => {
                    round_trip::<ClusterRole>(&name, &object)
                }
                ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
                    round_trip::<ClusterRoleBinding>(&name, &object)
                }
                ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => {
                    round_trip::<CustomResourceDefinition>(&name, &object);
                    // The apiserver validates a CRD beyond its type (approval of a protected
                    // group, names, a structural schema): the simulator's judge says as it would.
                    if let Some(refusal) = sim::apiserver::definition_refusal(&object) {
                        panic!("{name}: the apiserver refuses it: {refusal}");
                    }
                }
                ("rbac.authorization.k8s.io/v1", "Role") => round_trip::<Role>(&name, &object),
                ("rbac.authorization.k8s.io/v1", "RoleBinding") => {
                    round_trip::<RoleBinding>(&name, &object)
                }
                (api, kind) if declared.contains(&(api.to_owned(), kind.to_owned())) => {
                    assert!(object["metadata"]["name"].is_string(), "{name}");
                    assert!(object["spec"].is_object(), "{name}");
                }
                other => panic!("{name}: unknown kind {other:?}"),
            }
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            let expected = if kind == "Secret" { 0o600 } else { 0o644 };
            assert_eq!(mode, expected, "{name}");
            objects.push(object);
        }
    }
    objects
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn env<'a>(container: &'a Value, name: &str) -> &'a Value {
    container["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .map(|e| &e["value"])
        .unwrap_or_else(|| panic!("no env {name}"))
}

#[test]
fn every_manifest_of_every_example_is_a_valid_object() {
    for name in ["tutorial.yaml", "hybrid.yaml", "flannel.yaml"] {
        let mut cluster = example(name);
        check_all(&cluster);
        cluster.settings.enable_aggregation = !cluster.settings.enable_aggregation;
        check_all(&cluster);
    }
}

#[test]
fn spec_values_land_where_they_should() {
    let mut cluster = example("hybrid.yaml");
    cluster.settings.enable_aggregation = true;
    cluster.settings.enable_reporting = true;
    let objects = check_all(&cluster);
    let s = &cluster.settings;
    let calico =
        &find(&objects, "DaemonSet", "calico-node")["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        env(calico, "CALICO_IPV4POOL_CIDR"),
        &Value::from(s.pod_cidr.to_string())
    );
    assert_eq!(env(calico, "FELIX_USAGEREPORTINGENABLED"), "true");
    let first = u32::from(s.node_private_cidr.network()) + 1;
    assert_eq!(
        env(calico, "IP_AUTODETECTION_METHOD"),
        &Value::from(format!("can-reach={}", std::net::Ipv4Addr::from(first)))
    );
    let config = find(&objects, "ConfigMap", "calico-config");
    assert_eq!(
        config["data"]["veth_mtu"],
        Value::from(s.network_mtu.to_string())
    );
    let apiserver =
        find(&objects, "Pod", "kube-apiserver")["spec"]["containers"][0]["command"].to_string();
    for i in 0..s.controller_count {
        assert!(apiserver.contains(&format!(
            "https://{}-etcd{i}.{}:2379",
            s.cluster_name, s.dns_zone
        )));
    }
    assert!(apiserver.contains("--proxy-client-cert-file"));
    assert!(apiserver.contains(&format!("--service-cluster-ip-range={}", s.service_cidr)));
    let controller_manager = find(&objects, "Pod", "kube-controller-manager")["spec"]["containers"]
        [0]["command"]
        .to_string();
    assert!(controller_manager.contains(&format!("--cluster-cidr={}", s.pod_cidr)));
    let dns = find(&objects, "Service", "coredns");
    assert_eq!(
        dns["spec"]["clusterIP"],
        Value::from(cluster.dns_service_ip.to_string())
    );
    let corefile = find(&objects, "ConfigMap", "coredns")["data"]["Corefile"]
        .as_str()
        .unwrap();
    assert!(corefile.contains(&format!("kubernetes {} ", s.cluster_domain_suffix)));
    let replicas = find(&objects, "Deployment", "coredns")["spec"]["replicas"].as_u64();
    assert_eq!(replicas, Some(u64::from(s.controller_count.max(2))));
    let hostendpoints = objects
        .iter()
        .filter(|o| o["kind"] == "HostEndpoint")
        .count();
    assert_eq!(hostendpoints, s.controller_count as usize);

    cluster.settings.enable_aggregation = false;
    let objects = check_all(&cluster);
    let apiserver = find(&objects, "Pod", "kube-apiserver").to_string();
    assert!(!apiserver.contains("proxy-client"));
}

#[test]
fn flannel_replaces_calico() {
    let cluster = example("flannel.yaml");
    let objects = check_all(&cluster);
    assert!(
        objects
            .iter()
            .all(|o| o["apiVersion"] != "crd.projectcalico.org/v1")
    );
    let config = find(&objects, "ConfigMap", "flannel-config");
    let net: Value =
        serde_json::from_str(config["data"]["net-conf.json"].as_str().unwrap()).unwrap();
    assert_eq!(
        net["Network"],
        Value::from(cluster.settings.pod_cidr.to_string())
    );
}

#[test]
fn rendering_is_deterministic() {
    let cluster = example("tutorial.yaml");
    let (_tmp, dir) = rendered(&cluster);
    let first = render_manifests(&dir, &cluster).unwrap();
    let second = render_manifests(&dir, &cluster).unwrap();
    assert_eq!(first, second);
    assert!(!first.files.is_empty());
}

/// An asset directory of a loko that ran bootkube holds the self-hosted control plane and
/// pod-checkpointer: rendering removes what it no longer writes, so the bootstrap step never
/// applies them again.
#[test]
fn files_of_an_older_rendering_are_removed() {
    let cluster = example("tutorial.yaml");
    let (_tmp, dir) = rendered(&cluster);
    for stale in [
        "bootstrap-manifests/bootstrap-apiserver.json",
        "manifests/kube-apiserver.json",
        "manifests/pod-checkpointer.json",
        "manifests/calico/old.json",
    ] {
        std::fs::create_dir_all(dir.path(stale).parent().unwrap()).unwrap();
        std::fs::write(dir.path(stale), "{}").unwrap();
    }
    let report = render_manifests(&dir, &cluster).unwrap();
    let mut left: Vec<String> = ["bootstrap-manifests", "static-manifests", "manifests"]
        .iter()
        .filter(|sub| dir.path(sub).is_dir())
        .flat_map(|sub| files(&dir.path(sub)))
        .map(|p| p.strip_prefix(dir.root()).unwrap().display().to_string())
        .collect();
    left.sort();
    let written: Vec<String> = report.files.keys().cloned().collect();
    assert_eq!(left, written);
    assert!(written.contains(&"static-manifests/kube-apiserver.json".to_owned()));
}
