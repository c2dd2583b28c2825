//! TLS bootstrap against the apiserver emulator: a kubelet with only a bootstrap token registers
//! as `system:node:<name>` when every link of the chain is there (the token Secret, the
//! apiserver's `--enable-bootstrap-token-auth`, the bootstrappers' bindings, a controller-manager
//! that approves and signs with the cluster CA), and each missing link leaves it unregistered
//! with the reason its log would give.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use serde_json::json;
use sim::apiserver::{CsrController, Kubelet, KubeletRegistry, ObjectStore};
use sim::judge::rbac::Authorizers;

use crate::nodes_support::{Cluster, cluster, fresh_store, kubectl, start_apiserver_with, text};

const TOKEN_ID: &str = "abcdef";
const TOKEN_SECRET: &str = "0123456789abcdef";
const NODE: &str = "pallas-worker-0";

/// Typhoon v1.32.3's bootstrap bindings (terraform-render-bootstrap
/// resources/manifests/bootstrap-*-cluster-role-binding.yaml), by name.
fn binding(name: &str, role: &str, group: &str) -> serde_json::Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group}],
    })
}

fn token_secret(expiration: &str) -> serde_json::Value {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    json!({
        "apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
        "metadata": {"name": format!("bootstrap-token-{TOKEN_ID}"), "namespace": "kube-system"},
        "data": {
            "token-id": b64(TOKEN_ID),
            "token-secret": b64(TOKEN_SECRET),
            "usage-bootstrap-authentication": b64("true"),
            "expiration": b64(expiration),
        },
    })
}

/// The cluster's kubelet kubeconfig with the bootstrap token instead of a certificate.
fn bootstrap_kubeconfig(cluster: &Cluster) -> String {
    let mut document: serde_yaml::Value =
        serde_yaml::from_str(&cluster.kubelet_kubeconfig).expect("kubeconfig YAML");
    document["users"][0]["user"] = serde_yaml::to_value(BTreeMap::from([(
        "token",
        format!("{TOKEN_ID}.{TOKEN_SECRET}"),
    )]))
    .expect("user");
    serde_yaml::to_string(&document).expect("kubeconfig text")
}

/// What one case changes from a working chain.
#[derive(Default, Clone, Copy)]
struct Break {
    no_token_auth: bool,
    no_node_bootstrapper: bool,
    no_nodeclient: bool,
    expired: bool,
    no_controller_manager: bool,
    foreign_signer: bool,
    no_node_authorizer: bool,
    no_selfnodeclient: bool,
    no_rotation: bool,
}

/// Starts an apiserver with the chain as `broken` leaves it; whether the node is listed to the
/// admin, and the refusal the registry recorded.
async fn register(cluster: &Cluster, octet: u8, broken: Break) -> (bool, Option<String>) {
    let (listed, refusal, _) = register_and_renew(cluster, octet, broken).await;
    (listed, refusal)
}

/// [`register`], and why the registered kubelet's certificate would not be renewed.
async fn register_and_renew(
    cluster: &Cluster,
    octet: u8,
    broken: Break,
) -> (bool, Option<String>, Option<String>) {
    let store: Arc<ObjectStore> = fresh_store(cluster);
    let mut bindings = Vec::new();
    if !broken.no_selfnodeclient {
        bindings.push((
            "bootstrap-approve-renew",
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            "system:nodes",
        ));
    }
    if !broken.no_node_bootstrapper {
        bindings.push((
            "bootstrap-node",
            "system:node-bootstrapper",
            "system:bootstrappers",
        ));
    }
    if !broken.no_nodeclient {
        bindings.push((
            "bootstrap-approve-new",
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            "system:bootstrappers",
        ));
    }
    for (name, role, group) in bindings {
        store
            .create(binding(name, role, group))
            .expect("store a binding");
    }
    let expiration = if broken.expired {
        (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339()
    } else {
        (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339()
    };
    store
        .create(token_secret(&expiration))
        .expect("store the token");
    if !broken.no_controller_manager {
        let ca_pem = std::fs::read(cluster.assets.join(if broken.foreign_signer {
            "tls/apiserver.crt"
        } else {
            "tls/ca.crt"
        }))
        .expect("signer certificate");
        let (_, pem) = x509_parser::pem::parse_x509_pem(&ca_pem).expect("PEM");
        store.set_csr_controller(
            "pallas-controller-0",
            Some(CsrController {
                node: "pallas-controller-0".to_owned(),
                approving: true,
                signer: Ok(pem.contents),
            }),
        );
    }
    let registry = KubeletRegistry::default();
    registry.register(Kubelet {
        node_name: NODE.to_owned(),
        kubeconfig: Some(bootstrap_kubeconfig(cluster)),
        labels: BTreeMap::new(),
        internal_ip: Ipv4Addr::new(10, 0, 0, octet),
        external_ip: Ipv4Addr::new(127, 77, 3, octet),
        registered_at: chrono::Utc::now(),
        bootstrap: true,
        rotate_certificates: !broken.no_rotation,
        taints: Vec::new(),
        cluster_dns: Vec::new(),
        host_nameservers: Vec::new(),
        firewall: Default::default(),
    });
    let apiserver = start_apiserver_with(
        cluster,
        SocketAddr::from((Ipv4Addr::new(127, 77, 3, octet), 0)),
        registry.clone(),
        store,
        Authorizers {
            node: !broken.no_node_authorizer,
            node_restriction: true,
        },
        !broken.no_token_auth,
    )
    .await
    .expect("apiserver starts");
    let dir = cluster.assets.join("..");
    let output = kubectl(
        &dir,
        &cluster.admin_kubeconfig(),
        apiserver.local_addr(),
        &cluster.fqdn(),
        &["get", "nodes", "-o", "name"],
    )
    .await;
    assert!(output.status.success(), "{}", text(&output));
    let listed = String::from_utf8_lossy(&output.stdout).contains(NODE);
    (
        listed,
        registry.refusal(NODE),
        registry.renewal_problem(NODE),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubelet_registers_by_tls_bootstrap_only_when_every_link_is_there() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pallas = cluster(dir.path(), "pallas");
    // With the Node authorizer, no group is bound to system:node (as Typhoon v1.32.3 does).
    std::fs::remove_file(pallas.assets.join("manifests/kubelet-nodes.yaml")).expect("remove");

    let (listed, refusal, renewal) = register_and_renew(&pallas, 1, Break::default()).await;
    assert!(listed, "the whole chain registers the node: {refusal:?}");
    assert_eq!(refusal, None);
    assert_eq!(renewal, None, "and it renews its certificate");

    // A kubelet that cannot renew registers, and its certificate would expire unrenewed.
    for (octet, broken, expected) in [
        (
            20,
            Break {
                no_selfnodeclient: true,
                ..Break::default()
            },
            "certificatesigningrequests/selfnodeclient",
        ),
        (
            21,
            Break {
                no_rotation: true,
                ..Break::default()
            },
            "no --rotate-certificates",
        ),
    ] {
        let (listed, _, renewal) = register_and_renew(&pallas, octet, broken).await;
        assert!(listed, "{expected}: it registers");
        assert!(
            renewal.as_deref().is_some_and(|r| r.contains(expected)),
            "expected {expected:?} in {renewal:?}"
        );
    }

    let cases: [(Break, &str); 7] = [
        (
            Break {
                no_token_auth: true,
                ..Break::default()
            },
            "Unauthorized (kube-apiserver runs without --enable-bootstrap-token-auth",
        ),
        (
            Break {
                expired: true,
                ..Break::default()
            },
            "Unauthorized (the bootstrap token abcdef expired at",
        ),
        (
            Break {
                no_node_bootstrapper: true,
                ..Break::default()
            },
            "cannot create certificate signing request: certificatesigningrequests.certificates.k8s.io is forbidden: User \"system:bootstrap:abcdef\" cannot create resource",
        ),
        (
            Break {
                no_nodeclient: true,
                ..Break::default()
            },
            "certificate signing request for system:node:pallas-worker-0 is pending: the csrapproving controller approves a node's client certificate only if its requester may create certificatesigningrequests/nodeclient",
        ),
        (
            Break {
                no_controller_manager: true,
                ..Break::default()
            },
            "is pending: no kube-controller-manager runs the csrapproving controller",
        ),
        (
            Break {
                foreign_signer: true,
                ..Break::default()
            },
            "x509: certificate signed by unknown authority",
        ),
        (
            Break {
                no_node_authorizer: true,
                ..Break::default()
            },
            "nodes \"pallas-worker-0\" is forbidden: User \"system:node:pallas-worker-0\" cannot get resource \"nodes\"",
        ),
    ];
    for (octet, (broken, expected)) in (2..).zip(cases) {
        let (listed, refusal) = register(&pallas, octet, broken).await;
        assert!(!listed, "{expected}: the node must not register");
        let refusal = refusal.unwrap_or_default();
        assert!(
            refusal.contains(expected),
            "expected {expected:?} in {refusal:?}"
        );
    }
}
