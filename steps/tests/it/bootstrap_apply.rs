//! The bootstrap's applies against the simulator's apiserver, which refuses what a real one
//! refuses: one refused object does not keep the others out, and the step's error names every
//! refused object with the apiserver's reason.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use engine::StepError;
use serde_json::Value;
use sim::apiserver::{Apiserver, ApiserverConfig, KubeletRegistry, ObjectStore};
use steps::assets::AssetDir;
use steps::assets::manifests::render_manifests;
use steps::assets::pki::{PkiInputs, ensure_pki};
use steps::bootstrap::{Applied, apply_all, objects};
use steps::readiness::admin_client;

/// The tutorial's assets, rendered under `root`; the apiserver's name.
fn tutorial_assets(root: &Path) -> (AssetDir, String) {
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/tutorial.yaml");
    let cluster = specs::load(&spec).unwrap().desired();
    let dir = AssetDir::create(root).unwrap();
    ensure_pki(
        &dir,
        &PkiInputs::from_desired(&cluster),
        std::time::SystemTime::now(),
    )
    .unwrap();
    render_manifests(&dir, &cluster).unwrap();
    let settings = &cluster.settings;
    let api_name = format!(
        "{}.{}",
        settings.cluster_name.as_str(),
        settings.dns_zone.as_str()
    );
    (dir, api_name)
}

/// The simulator's apiserver serving with the cluster's certificates, and its objects.
async fn apiserver(dir: &AssetDir, store_file: &Path, octet: u8) -> (Apiserver, Arc<ObjectStore>) {
    let store = Arc::new(ObjectStore::open(store_file.to_owned()).unwrap());
    let config = ApiserverConfig {
        listen: SocketAddr::from((Ipv4Addr::new(127, 78, 0, octet), 0)),
        tls_cert: dir.path("tls/apiserver.crt"),
        tls_key: dir.path("tls/apiserver.key"),
        client_ca: dir.path("tls/ca.crt"),
        authorizers: Default::default(),
        bootstrap_token_auth: false,
    };
    let apiserver = Apiserver::start(&config, Arc::clone(&store), KubeletRegistry::default())
        .await
        .unwrap();
    (apiserver, store)
}

fn edit(dir: &AssetDir, rel: &str, change: impl FnOnce(&mut Value)) {
    let path = dir.path(rel);
    let mut object: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    change(&mut object);
    std::fs::write(&path, object.to_string()).unwrap();
}

async fn apply(
    dir: &AssetDir,
    api_name: &str,
    apiserver: &Apiserver,
) -> (Vec<Applied>, Result<(), StepError>) {
    let objects = objects(dir.root(), &dir.path("manifests")).unwrap();
    let addr = apiserver.local_addr();
    let client = admin_client(dir.root(), api_name, &[addr]).unwrap();
    let base = format!("https://{api_name}:{}", addr.port());
    let result = apply_all(&client, &base, &objects).await;
    (objects, result)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_other_object_is_applied_and_every_refused_one_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, api_name) = tutorial_assets(&tmp.path().join("assets"));
    // Two refusals a real apiserver makes: a protected group's CRD without its approval, and a
    // CRD whose name is not <plural>.<group>.
    edit(
        &dir,
        "manifests/calico/crd-adminnetworkpolicies.json",
        |crd| {
            crd["metadata"]
                .as_object_mut()
                .unwrap()
                .remove("annotations");
        },
    );
    edit(&dir, "manifests/calico/crd-tiers.json", |crd| {
        crd["metadata"]["name"] = "tier.crd.projectcalico.org".into();
    });
    let (apiserver, store) = apiserver(&dir, &tmp.path().join("etcd.json"), 1).await;
    let (objects, result) = apply(&dir, &api_name, &apiserver).await;

    let Err(StepError::Permanent { message }) = result else {
        panic!("a 422 is permanent: {result:?}");
    };
    assert!(
        message.starts_with(&format!(
            "2 of {} objects of manifests/ refused: ",
            objects.len()
        )),
        "{message}"
    );
    for expected in [
        "applying CustomResourceDefinition adminnetworkpolicies.policy.networking.k8s.io (manifests/calico/crd-adminnetworkpolicies.json): 422 Unprocessable Entity: CustomResourceDefinition.apiextensions.k8s.io \"adminnetworkpolicies.policy.networking.k8s.io\" is invalid: metadata.annotations[api-approved.kubernetes.io]: Required value: protected groups must have approval annotation \"api-approved.kubernetes.io\", see https://github.com/kubernetes/enhancements/pull/1111",
        "applying CustomResourceDefinition tier.crd.projectcalico.org (manifests/calico/crd-tiers.json): 422 Unprocessable Entity: CustomResourceDefinition.apiextensions.k8s.io \"tier.crd.projectcalico.org\" is invalid: metadata.name: Invalid value: \"tier.crd.projectcalico.org\": must be spec.names.plural+\".\"+spec.group",
    ] {
        assert!(message.contains(expected), "{expected}\nnot in\n{message}");
    }
    // Everything else is in: the kubelets' bootstrap binding, kube-proxy, Calico, CoreDNS.
    let stored: Vec<&Applied> = objects
        .iter()
        .filter(|o| store.get(&o.path).is_some())
        .collect();
    assert_eq!(stored.len(), objects.len() - 2);
    for name in [
        "ClusterRoleBinding bootstrap-node",
        "DaemonSet kube-system/kube-proxy",
        "DaemonSet kube-system/calico-node",
        "Deployment kube-system/coredns",
        "IPPool default-ipv4-ippool",
    ] {
        assert!(
            stored.iter().any(|o| o.name == name),
            "{name} not applied: {:?}",
            stored.iter().map(|o| &o.name).collect::<Vec<_>>()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_resources_whose_definition_is_not_served_keep_the_step_retryable() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, api_name) = tutorial_assets(&tmp.path().join("assets"));
    let (apiserver, store) = apiserver(&dir, &tmp.path().join("etcd.json"), 2).await;
    // Applied alone, without the CRD files: the apiserver does not serve IPPools (404).
    let mut objects = objects(dir.root(), &dir.path("manifests")).unwrap();
    objects.retain(|o| !o.definition);
    let addr = apiserver.local_addr();
    let client = admin_client(dir.root(), &api_name, &[addr]).unwrap();
    let base = format!("https://{api_name}:{}", addr.port());
    let result = apply_all(&client, &base, &objects).await;
    let Err(StepError::Retryable { message, .. }) = result else {
        panic!("a 404 is retryable: {result:?}");
    };
    assert!(
        message.contains("applying IPPool default-ipv4-ippool (manifests/calico/ippool.json): 404"),
        "{message}"
    );
    assert!(
        store
            .get("/apis/apps/v1/namespaces/kube-system/daemonsets/kube-proxy")
            .is_some()
    );
}
