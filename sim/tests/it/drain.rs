//! A drain through the apiserver emulator: evictions judged by PodDisruptionBudgets as
//! `pkg/registry/core/pod/storage/eviction.go` judges them, and the real `kubectl drain`
//! (cordon, list the node's pods, evict, wait until they are gone) against it.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};

use sim::apiserver::{Kubelet, KubeletRegistry, Taint};

use crate::nodes_support::{
    self, Cluster, cluster, kubectl, server_side_apply, start_apiserver, text,
};

/// A Deployment of `replicas` pods that fit every test node, and a budget over its pods.
fn web(replicas: u32, budget: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: default}}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      tolerations:
      - {{key: node-role.kubernetes.io/controller, effect: NoSchedule}}
      containers:
      - {{name: web, image: nginx}}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {{name: web, namespace: default}}
spec:
  {budget}
  selector:
    matchLabels: {{app: web}}
"
    )
}

fn kubelet(cluster: &Cluster, name: &str, octet: u8) -> Kubelet {
    Kubelet {
        node_name: name.to_owned(),
        kubeconfig: Some(cluster.kubelet_kubeconfig.clone()),
        labels: BTreeMap::new(),
        internal_ip: Ipv4Addr::new(10, 0, 0, octet),
        external_ip: Ipv4Addr::new(127, 77, 9, octet),
        registered_at: chrono::Utc::now(),
        taints: Taint::parse_list(""),
        cluster_dns: vec!["10.3.0.10".to_owned()],
        host_nameservers: vec!["147.75.207.207".to_owned()],
        firewall: Default::default(),
        bootstrap: false,
        rotate_certificates: false,
    }
}

/// `admin_request` of JSON, its answer parsed (`null` when it is not JSON).
fn admin_request(
    cluster: &Cluster,
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, serde_json::Value) {
    let (code, body) =
        nodes_support::admin_request(cluster, addr, method, "application/json", path, body);
    (
        code,
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
    )
}

fn web_pods(cluster: &Cluster, addr: SocketAddr, node: Option<&str>) -> Vec<serde_json::Value> {
    let path = match node {
        Some(node) => {
            format!("/api/v1/namespaces/default/pods?fieldSelector=spec.nodeName%3D{node}")
        }
        None => "/api/v1/namespaces/default/pods".to_owned(),
    };
    let (code, list) = admin_request(cluster, addr, "GET", &path, "");
    assert_eq!(code, 200, "{list}");
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|pod| pod["metadata"]["labels"]["app"] == "web")
        .cloned()
        .collect()
}

fn eviction(pod: &str) -> String {
    serde_json::json!({
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": pod, "namespace": "default"},
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eviction_a_budget_forbids_is_429_until_another_pod_is_ready() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ours = cluster(dir.path(), "vesta");
    std::fs::write(
        ours.assets.join("manifests/web.yaml"),
        web(2, "minAvailable: 2"),
    )
    .expect("write");
    let registry = KubeletRegistry::default();
    registry.register(kubelet(&ours, "vesta-worker-0", 1));
    let addr = SocketAddr::from((Ipv4Addr::new(127, 77, 9, 1), 0));
    let apiserver = start_apiserver(&ours, addr, registry)
        .await
        .expect("starts");
    let addr = apiserver.local_addr();

    let pods = web_pods(&ours, addr, Some("vesta-worker-0"));
    assert_eq!(pods.len(), 2, "{pods:?}");
    let victim = pods[0]["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_owned();
    let path = format!("/api/v1/namespaces/default/pods/{victim}/eviction");
    let (code, status) = admin_request(&ours, addr, "POST", &path, &eviction(&victim));
    assert_eq!(code, 429, "{status}");
    assert_eq!(
        status["message"],
        "Cannot evict pod as it would violate the pod's disruption budget."
    );
    assert_eq!(status["details"]["causes"][0]["reason"], "DisruptionBudget");
    assert_eq!(
        status["details"]["causes"][0]["message"],
        "The disruption budget web needs 2 healthy pods and has 2 currently"
    );
    assert_eq!(
        web_pods(&ours, addr, None).len(),
        2,
        "a refused eviction evicts nothing"
    );

    // A third replica, ready: the budget of two allows one disruption.
    let object: serde_json::Value =
        serde_yaml::from_str(web(3, "minAvailable: 2").split("---").next().expect("doc"))
            .expect("yaml");
    let (code, body) = server_side_apply(
        &ours,
        addr,
        "/apis/apps/v1/namespaces/default/deployments/web",
        &object,
    );
    assert_eq!(code, 200, "{body}");
    let (code, status) = admin_request(&ours, addr, "POST", &path, &eviction(&victim));
    assert_eq!(code, 201, "{status}");
    let (code, _) = admin_request(
        &ours,
        addr,
        "GET",
        &format!("/api/v1/namespaces/default/pods/{victim}"),
        "",
    );
    assert_eq!(code, 404, "the evicted pod is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_drain_cordons_evicts_and_the_node_can_be_deleted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ours = cluster(dir.path(), "pallas");
    std::fs::write(
        ours.assets.join("manifests/web.yaml"),
        web(2, "maxUnavailable: 1"),
    )
    .expect("write");
    let registry = KubeletRegistry::default();
    registry.register(kubelet(&ours, "pallas-worker-0", 2));
    registry.register(kubelet(&ours, "pallas-worker-1", 3));
    let addr = SocketAddr::from((Ipv4Addr::new(127, 77, 9, 2), 0));
    let apiserver = start_apiserver(&ours, addr, registry)
        .await
        .expect("starts");
    let addr = apiserver.local_addr();
    assert_eq!(web_pods(&ours, addr, Some("pallas-worker-1")).len(), 1);

    let run = |args: &'static [&'static str]| {
        let (dir, fqdn, admin) = (dir.path().to_owned(), ours.fqdn(), ours.admin_kubeconfig());
        async move { kubectl(&dir, &admin, addr, &fqdn, args).await }
    };
    let drained = run(&[
        "drain",
        "pallas-worker-1",
        "--ignore-daemonsets",
        "--timeout=60s",
    ])
    .await;
    assert!(drained.status.success(), "{}", text(&drained));
    assert!(
        String::from_utf8_lossy(&drained.stdout).contains("evicted"),
        "{}",
        text(&drained)
    );
    assert!(web_pods(&ours, addr, Some("pallas-worker-1")).is_empty());
    let elsewhere = web_pods(&ours, addr, Some("pallas-worker-0"));
    assert_eq!(
        elsewhere.len(),
        2,
        "rescheduled on the schedulable node: {elsewhere:?}"
    );
    let unschedulable = run(&[
        "get",
        "node",
        "pallas-worker-1",
        "-o",
        "jsonpath={.spec.unschedulable}",
    ])
    .await;
    assert_eq!(String::from_utf8_lossy(&unschedulable.stdout), "true");

    let deleted = run(&["delete", "node", "pallas-worker-1"]).await;
    assert!(deleted.status.success(), "{}", text(&deleted));
    let nodes = run(&["get", "nodes", "-o", "name"]).await;
    assert_eq!(
        String::from_utf8_lossy(&nodes.stdout),
        "node/pallas-worker-0\n",
        "{}",
        text(&nodes)
    );
}
