//! The apiserver emulator against the real kubectl: client certificates of the cluster CA only,
//! and only kubelets configured for this cluster are listed.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};

use sim::apiserver::{Apiserver, Kubelet, KubeletRegistry, Taint};

use crate::nodes_support::{cluster, cluster_rsa, kubectl, start_apiserver, text};

fn kubelet(name: &str, kubeconfig: &str, octet: u8) -> Kubelet {
    Kubelet {
        node_name: name.to_owned(),
        kubeconfig: Some(kubeconfig.to_owned()),
        labels: BTreeMap::from([("node-role.kubernetes.io/master".to_owned(), String::new())]),
        internal_ip: Ipv4Addr::new(10, 0, 0, octet),
        external_ip: Ipv4Addr::new(127, 77, 1, octet),
        registered_at: chrono::Utc::now(),
        taints: Taint::parse_list("node-role.kubernetes.io/controller=:NoSchedule"),
        cluster_dns: vec!["10.3.0.10".to_owned()],
        host_nameservers: vec!["147.75.207.207".to_owned()],
        firewall: Default::default(),
        bootstrap: false,
        rotate_certificates: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_lists_only_this_clusters_ready_nodes_and_rejects_foreign_clients() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ours = cluster(&dir.path().join("ours"), "mercury");
    let theirs = cluster(&dir.path().join("theirs"), "venus");
    let registry = KubeletRegistry::default();
    registry.register(kubelet("mercury-controller-0", &ours.kubelet_kubeconfig, 1));
    registry.register(kubelet("venus-controller-0", &theirs.kubelet_kubeconfig, 2));
    let mut wrong_ca = ours.kubelet_kubeconfig.clone();
    // Same server name but the other cluster's CA: must not be admitted either.
    let theirs_ca = theirs
        .kubelet_kubeconfig
        .lines()
        .find(|l| l.contains("certificate-authority-data"));
    let ours_ca = ours
        .kubelet_kubeconfig
        .lines()
        .find(|l| l.contains("certificate-authority-data"));
    if let (Some(theirs_ca), Some(ours_ca)) = (theirs_ca, ours_ca) {
        wrong_ca = wrong_ca.replace(ours_ca, theirs_ca);
    }
    registry.register(kubelet("mercury-impostor", &wrong_ca, 3));

    let listen = SocketAddr::from((Ipv4Addr::new(127, 77, 1, 1), 0));
    let apiserver = start_apiserver(&ours, listen, registry.clone())
        .await
        .expect("apiserver starts from the assets");
    let addr = apiserver.local_addr();

    let output = kubectl(
        dir.path(),
        &ours.admin_kubeconfig(),
        addr,
        &ours.fqdn(),
        &["get", "nodes"],
    )
    .await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", text(&output));
    assert!(stdout.contains("mercury-controller-0"), "{}", text(&output));
    assert!(stdout.contains("Ready"), "{}", text(&output));
    assert!(
        stdout.contains("master"),
        "roles come from --node-labels: {}",
        text(&output)
    );
    assert!(!stdout.contains("venus"), "{}", text(&output));
    assert!(!stdout.contains("impostor"), "{}", text(&output));

    let output = kubectl(
        dir.path(),
        &ours.admin_kubeconfig(),
        addr,
        &ours.fqdn(),
        &["get", "node", "mercury-controller-0", "-o", "json"],
    )
    .await;
    assert!(output.status.success(), "{}", text(&output));
    let node: serde_json::Value = serde_json::from_slice(&output.stdout).expect("node JSON");
    assert_eq!(
        node["metadata"]["labels"]["kubernetes.io/hostname"],
        "mercury-controller-0"
    );
    assert_eq!(
        node["metadata"]["labels"]["node-role.kubernetes.io/master"],
        ""
    );
    assert_eq!(node["status"]["conditions"][0]["type"], "Ready");
    assert_eq!(node["status"]["conditions"][0]["status"], "True");

    let output = kubectl(
        dir.path(),
        &ours.admin_kubeconfig(),
        addr,
        &ours.fqdn(),
        &["get", "node", "venus-controller-0"],
    )
    .await;
    assert!(!output.status.success(), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("not found"),
        "{}",
        text(&output)
    );

    // An admin of another cluster has a certificate from another CA: the handshake fails.
    let output = kubectl(
        dir.path(),
        &theirs.admin_kubeconfig(),
        addr,
        &ours.fqdn(),
        &["--insecure-skip-tls-verify", "get", "nodes"],
    )
    .await;
    assert!(!output.status.success(), "{}", text(&output));
    assert!(!String::from_utf8_lossy(&output.stdout).contains("mercury-controller-0"));

    registry.unregister("mercury-controller-0");
    let output = kubectl(
        dir.path(),
        &ours.admin_kubeconfig(),
        addr,
        &ours.fqdn(),
        &["get", "nodes", "-o", "name"],
    )
    .await;
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        !String::from_utf8_lossy(&output.stdout).contains("mercury-controller-0"),
        "{}",
        text(&output)
    );
}

#[tokio::test]
async fn missing_assets_are_named_in_the_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ours = cluster(dir.path(), "mars");
    std::fs::remove_file(ours.assets.join("tls/apiserver.key")).expect("remove key");
    let error = start_apiserver(
        &ours,
        SocketAddr::from((Ipv4Addr::new(127, 77, 1, 9), 0)),
        KubeletRegistry::default(),
    )
    .await
    .expect_err("no key, no apiserver");
    assert!(error.to_string().contains("tls/apiserver.key"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsa_pkcs1_assets_as_terraform_wrote_them_work_with_kubectl() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rsa = cluster_rsa(dir.path(), "pluto");
    let registry = KubeletRegistry::default();
    registry.register(kubelet("pluto-controller-0", &rsa.kubelet_kubeconfig, 1));
    let listen = SocketAddr::from((Ipv4Addr::new(127, 77, 1, 2), 0));
    let apiserver = start_apiserver(&rsa, listen, registry)
        .await
        .expect("apiserver starts from RSA assets");
    let output = kubectl(
        dir.path(),
        &rsa.admin_kubeconfig(),
        apiserver.local_addr(),
        &rsa.fqdn(),
        &["get", "nodes", "-o", "name"],
    )
    .await;
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "node/pluto-controller-0\n"
    );
}

/// Starts an apiserver emulator for `ours` with one registered kubelet.
async fn start_with_kubelet(ours: &crate::nodes_support::Cluster, octet: u8) -> Apiserver {
    let registry = KubeletRegistry::default();
    registry.register(kubelet(
        &format!("{}-controller-0", ours.name),
        &ours.kubelet_kubeconfig,
        1,
    ));
    start_apiserver(
        ours,
        SocketAddr::from((Ipv4Addr::new(127, 77, 2, octet), 0)),
        registry,
    )
    .await
    .expect("apiserver starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_authorized_by_the_client_certificate_through_rbac() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ours = cluster(dir.path(), "ceres");
    let apiserver = start_with_kubelet(&ours, 1).await;
    let kubelet_kubeconfig = dir.path().join("kubelet.kubeconfig");
    std::fs::write(&kubelet_kubeconfig, &ours.kubelet_kubeconfig).expect("write kubeconfig");
    let kubectl_as = |kubeconfig: std::path::PathBuf, args: &'static [&'static str]| {
        let (dir, addr, fqdn) = (dir.path().to_owned(), apiserver.local_addr(), ours.fqdn());
        async move { kubectl(&dir, &kubeconfig, addr, &fqdn, args).await }
    };

    // system:node lets the kubelet (CN=kubelet, O=system:nodes) read nodes, not namespaces.
    let output = kubectl_as(kubelet_kubeconfig.clone(), &["get", "nodes", "-o", "name"]).await;
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "node/ceres-controller-0\n"
    );
    let output = kubectl_as(
        kubelet_kubeconfig.clone(),
        &["get", "--raw", "/api/v1/namespaces/kube-system"],
    )
    .await;
    assert!(!output.status.success(), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains(
            "namespaces \"kube-system\" is forbidden: User \"kubelet\" cannot get resource \"namespaces\" in API group \"\" at the cluster scope"
        ),
        "{}",
        text(&output)
    );

    // Without the binding of the kubelets' group, the kubelet may not even list nodes.
    std::fs::remove_file(ours.assets.join("manifests/kubelet-nodes.yaml")).expect("remove");
    drop(apiserver);
    let apiserver = start_with_kubelet(&ours, 2).await;
    let output = kubectl(
        dir.path(),
        &kubelet_kubeconfig,
        apiserver.local_addr(),
        &ours.fqdn(),
        &["get", "nodes"],
    )
    .await;
    assert!(!output.status.success(), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains(
            "nodes is forbidden: User \"kubelet\" cannot list resource \"nodes\" in API group \"\" at the cluster scope"
        ),
        "{}",
        text(&output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubelet_whose_identity_may_not_register_never_appears() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ours = cluster(dir.path(), "vesta");
    std::fs::remove_file(ours.assets.join("manifests/kubelet-nodes.yaml")).expect("remove");
    let apiserver = start_with_kubelet(&ours, 3).await;
    let output = kubectl(
        dir.path(),
        &ours.admin_kubeconfig(),
        apiserver.local_addr(),
        &ours.fqdn(),
        &["get", "nodes", "-o", "name"],
    )
    .await;
    assert!(
        output.status.success(),
        "the admin may list: {}",
        text(&output)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "",
        "{}",
        text(&output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_are_not_ready_when_the_network_account_lacks_a_right_and_say_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ours = cluster(dir.path(), "pallas");
    // flannel patches its node's status (NetworkUnavailable); this role forgets it.
    let flannel = crate::nodes_support::FLANNEL.replace(
        "- {apiGroups: [''], resources: [nodes/status], verbs: [patch]}\n",
        "",
    );
    assert_ne!(flannel, crate::nodes_support::FLANNEL);
    std::fs::write(ours.assets.join("manifests/network/flannel.yaml"), flannel).expect("write");
    let apiserver = start_with_kubelet(&ours, 4).await;
    let get = |args: &'static [&'static str]| {
        let (dir, addr, fqdn) = (dir.path().to_owned(), apiserver.local_addr(), ours.fqdn());
        let admin = ours.admin_kubeconfig();
        async move { kubectl(&dir, &admin, addr, &fqdn, args).await }
    };
    let output = get(&["get", "nodes"]).await;
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("NotReady"),
        "{}",
        text(&output)
    );
    let output = get(&["get", "node", "pallas-controller-0", "-o", "json"]).await;
    assert!(output.status.success(), "{}", text(&output));
    let node: serde_json::Value = serde_json::from_slice(&output.stdout).expect("node JSON");
    let ready = &node["status"]["conditions"][0];
    assert_eq!(ready["type"], "Ready");
    assert_eq!(ready["status"], "False");
    assert!(
        ready["message"]
            .as_str()
            .unwrap_or_default()
            .ends_with("flannel: ServiceAccount kube-system/flannel cannot patch nodes/status"),
        "{ready}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_are_not_ready_without_a_network_daemonset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ours = cluster(dir.path(), "hygiea");
    std::fs::remove_file(ours.assets.join("manifests/network/flannel.yaml")).expect("remove");
    let apiserver = start_with_kubelet(&ours, 5).await;
    let output = kubectl(
        dir.path(),
        &ours.admin_kubeconfig(),
        apiserver.local_addr(),
        &ours.fqdn(),
        &[
            "get",
            "node",
            "hygiea-controller-0",
            "-o",
            "jsonpath={.status.conditions[0].message}",
        ],
    )
    .await;
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("cni plugin not initialized"),
        "{}",
        text(&output)
    );
}

/// CoreDNS as Typhoon v1.32.3 renders it (`poseidon/terraform-render-bootstrap@1e4b00ea`
/// `resources/coredns/`: ServiceAccount, ClusterRole, binding, ConfigMap, Service and the
/// Deployment's fields that decide where it runs and what it resolves with), with
/// `DNS_POLICY` where the Deployment's `dnsPolicy` goes.
const COREDNS: &str = "apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: 'system:coredns'}
rules:
- {apiGroups: [''], resources: [endpoints, services, pods, namespaces], verbs: [list, watch]}
- {apiGroups: [discovery.k8s.io], resources: [endpointslices], verbs: [list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: 'system:coredns'}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: 'system:coredns'}
subjects: [{kind: ServiceAccount, name: coredns, namespace: kube-system}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  Corefile: |
    .:53 {
        errors
        health {
          lameduck 5s
        }
        ready
        log . {
            class error
        }
        kubernetes cluster.local in-addr.arpa ip6.arpa {
            pods insecure
            fallthrough in-addr.arpa ip6.arpa
        }
        prometheus :9153
        forward . /etc/resolv.conf
        cache 30
        loop
        reload
        loadbalance
    }
---
apiVersion: v1
kind: Service
metadata: {name: coredns, namespace: kube-system}
spec:
  selector: {k8s-app: coredns}
  clusterIP: 10.3.0.10
  ports:
  - {name: dns, port: 53, protocol: UDP}
  - {name: dns-tcp, port: 53, protocol: TCP}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: coredns, namespace: kube-system}
spec:
  replicas: 2
  selector:
    matchLabels: {tier: control-plane, k8s-app: coredns}
  template:
    metadata:
      labels: {tier: control-plane, k8s-app: coredns}
    spec:
      serviceAccountName: coredns
      tolerations:
      - {key: node-role.kubernetes.io/controller, effect: NoSchedule}
      containers:
      - name: coredns
        image: registry.k8s.io/coredns/coredns:v1.11.4
        args: ['-conf', '/etc/coredns/Corefile']
        volumeMounts:
        - {name: config, mountPath: /etc/coredns, readOnly: true}
      DNS_POLICY
      volumes:
      - name: config
        configMap:
          name: coredns
          items:
          - {key: Corefile, path: Corefile}
";

/// `kubectl get pods -A` and the pods' JSON from an apiserver of `ours` whose manifests hold
/// CoreDNS with `dns_policy` (a line of its pod spec, or nothing).
async fn coredns_pods(
    dir: &std::path::Path,
    name: &str,
    dns_policy: &str,
    octet: u8,
) -> (String, Vec<serde_json::Value>) {
    let ours = cluster(dir, name);
    std::fs::write(
        ours.assets.join("manifests/coredns.yaml"),
        COREDNS.replace("DNS_POLICY", dns_policy),
    )
    .expect("write");
    let apiserver = start_with_kubelet(&ours, octet).await;
    let get = |args: &'static [&'static str]| {
        let (dir, addr, fqdn) = (dir.to_owned(), apiserver.local_addr(), ours.fqdn());
        let admin = ours.admin_kubeconfig();
        async move { kubectl(&dir, &admin, addr, &fqdn, args).await }
    };
    let table = get(&["get", "pods", "-A"]).await;
    assert!(table.status.success(), "{}", text(&table));
    let output = get(&["get", "pods", "-n", "kube-system", "-o", "json"]).await;
    assert!(output.status.success(), "{}", text(&output));
    let list: serde_json::Value = serde_json::from_slice(&output.stdout).expect("pod list");
    let pods = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|pod| pod["metadata"]["labels"]["k8s-app"] == "coredns")
        .cloned()
        .collect();
    (String::from_utf8_lossy(&table.stdout).into_owned(), pods)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coredns_of_the_cluster_first_policy_forwards_to_itself_and_crash_loops() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (table, pods) = coredns_pods(dir.path(), "juno", "", 6).await;
    assert_eq!(pods.len(), 2, "{table}");
    assert!(table.contains("CrashLoopBackOff"), "{table}");
    for pod in &pods {
        let status = &pod["status"]["containerStatuses"][0];
        assert_eq!(status["ready"], false, "{pod}");
        assert_eq!(
            status["state"]["waiting"]["reason"], "CrashLoopBackOff",
            "{pod}"
        );
        let last = status["lastState"]["terminated"]["message"]
            .as_str()
            .unwrap_or_default();
        assert!(
            last.contains("plugin/loop: Loop (")
                && last.contains("-> :53) detected for zone \".\""),
            "{pod}"
        );
        assert_eq!(pod["spec"]["nodeName"], "juno-controller-0");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coredns_of_the_default_policy_forwards_to_the_nodes_resolvers_and_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (table, pods) = coredns_pods(dir.path(), "metis", "dnsPolicy: Default", 7).await;
    assert_eq!(pods.len(), 2, "{table}");
    assert!(!table.contains("CrashLoopBackOff"), "{table}");
    for pod in &pods {
        assert_eq!(pod["status"]["phase"], "Running", "{pod}");
        assert_eq!(
            pod["status"]["containerStatuses"][0]["ready"], true,
            "{pod}"
        );
    }
    // Without the controllers' toleration nothing fits the one (tainted) node.
    let dir = tempfile::tempdir().expect("tempdir");
    let untolerated = "dnsPolicy: Default\n      tolerations: []";
    let (table, pods) = coredns_pods(dir.path(), "iris", untolerated, 8).await;
    assert!(table.contains("Pending"), "{table}");
    assert!(
        pods[0]["status"]["conditions"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("1 node(s) had untolerated taint {node-role.kubernetes.io/controller: }"),
        "{}",
        pods[0]
    );
}
