//! The apiserver emulator judges what is applied to it as the real apiserver does: a
//! CustomResourceDefinition by apiextensions' validation, a custom resource by its definition's
//! schema, each refusal in the apiserver's words.

use std::net::{Ipv4Addr, SocketAddr};

use serde_json::{Value, json};
use sim::apiserver::KubeletRegistry;

use crate::apiserver_support::start_apiserver;
use crate::nodes_support::{Cluster, cluster, server_side_apply};

/// Server-side applies `object` at `path` as the admin: (HTTP status, the answer's JSON).
fn apply(cluster: &Cluster, addr: SocketAddr, path: &str, object: &Value) -> (u16, Value) {
    let (code, body) = server_side_apply(cluster, addr, path, object);
    (code, serde_json::from_str(&body).unwrap_or(Value::Null))
}

const CRDS: &str = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";

/// Calico v3.29.2's AdminNetworkPolicy CRD, its schema cut to what the test applies.
fn admin_network_policies(annotation: Option<&str>) -> Value {
    let mut crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "adminnetworkpolicies.policy.networking.k8s.io"},
        "spec": {"group": "policy.networking.k8s.io", "scope": "Cluster",
            "names": {"kind": "AdminNetworkPolicy", "listKind": "AdminNetworkPolicyList",
                      "plural": "adminnetworkpolicies", "singular": "adminnetworkpolicy"},
            "versions": [{"name": "v1alpha1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "required": ["priority", "subject"], "properties": {
                        "priority": {"type": "integer"},
                        "subject": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "ingress": {"type": "array", "items": {"type": "object", "properties": {
                            "action": {"type": "string", "enum": ["Allow", "Deny", "Pass"]},
                        }}},
                    }},
                }}}}]},
    });
    if let Some(annotation) = annotation {
        crd["metadata"]["annotations"] = json!({"api-approved.kubernetes.io": annotation});
    }
    crd
}

async fn started(dir: &std::path::Path, octet: u8) -> (Cluster, sim::apiserver::Apiserver) {
    let ours = cluster(dir, "vesta");
    let listen = SocketAddr::from((Ipv4Addr::new(127, 77, 3, octet), 0));
    let apiserver = start_apiserver(&ours, listen, KubeletRegistry::default())
        .await
        .expect("apiserver starts");
    (ours, apiserver)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crd_of_a_protected_group_needs_its_approval_annotation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ours, apiserver) = started(dir.path(), 1).await;
    let addr = apiserver.local_addr();
    let path = format!("{CRDS}/adminnetworkpolicies.policy.networking.k8s.io");

    let (code, status) = apply(&ours, addr, &path, &admin_network_policies(None));
    assert_eq!(code, 422, "{status}");
    assert_eq!(status["reason"], "Invalid", "{status}");
    assert_eq!(
        status["message"],
        "CustomResourceDefinition.apiextensions.k8s.io \"adminnetworkpolicies.policy.networking.k8s.io\" is invalid: metadata.annotations[api-approved.kubernetes.io]: Required value: protected groups must have approval annotation \"api-approved.kubernetes.io\", see https://github.com/kubernetes/enhancements/pull/1111",
    );
    // Refused means not stored: its resources are not served.
    let (code, _) = apply(
        &ours,
        addr,
        "/apis/policy.networking.k8s.io/v1alpha1/adminnetworkpolicies/a",
        &json!({"apiVersion": "policy.networking.k8s.io/v1alpha1", "kind": "AdminNetworkPolicy", "metadata": {"name": "a"}}),
    );
    assert_eq!(code, 404);

    let (code, status) = apply(
        &ours,
        addr,
        &path,
        &admin_network_policies(Some("unapproved, testing")),
    );
    assert_eq!(code, 201, "{status}");
    let upstream = "https://github.com/kubernetes-sigs/network-policy-api/pull/30";
    let (code, status) = apply(&ours, addr, &path, &admin_network_policies(Some(upstream)));
    assert_eq!(code, 200, "{status}");

    let mut wrong = admin_network_policies(Some(upstream));
    wrong["metadata"]["name"] = json!("anps.policy.networking.k8s.io");
    let (code, status) = apply(
        &ours,
        addr,
        &format!("{CRDS}/anps.policy.networking.k8s.io"),
        &wrong,
    );
    assert_eq!(code, 422, "{status}");
    assert_eq!(
        status["message"],
        "CustomResourceDefinition.apiextensions.k8s.io \"anps.policy.networking.k8s.io\" is invalid: metadata.name: Invalid value: \"anps.policy.networking.k8s.io\": must be spec.names.plural+\".\"+spec.group",
    );
    let mut loose = admin_network_policies(Some(upstream));
    loose["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
        ["priority"] = json!({"description": "no type"});
    let (code, status) = apply(&ours, addr, &path, &loose);
    assert_eq!(code, 422, "{status}");
    assert!(
        status["message"].as_str().unwrap_or_default().ends_with(
            "is invalid: spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[priority].type: Required value: must not be empty for specified object fields"
        ),
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_resource_is_judged_by_its_definitions_schema() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ours, apiserver) = started(dir.path(), 2).await;
    let addr = apiserver.local_addr();
    let upstream = "https://github.com/kubernetes-sigs/network-policy-api/pull/30";
    let (code, status) = apply(
        &ours,
        addr,
        &format!("{CRDS}/adminnetworkpolicies.policy.networking.k8s.io"),
        &admin_network_policies(Some(upstream)),
    );
    assert_eq!(code, 201, "{status}");
    let path = "/apis/policy.networking.k8s.io/v1alpha1/adminnetworkpolicies/a";
    let policy = |spec: Value| {
        json!({"apiVersion": "policy.networking.k8s.io/v1alpha1", "kind": "AdminNetworkPolicy",
               "metadata": {"name": "a"}, "spec": spec})
    };

    let fits = policy(json!({"priority": 10, "subject": {"namespaces": {}},
                             "ingress": [{"action": "Deny"}]}));
    let (code, status) = apply(&ours, addr, path, &fits);
    assert_eq!(code, 201, "{status}");

    let (code, status) = apply(
        &ours,
        addr,
        path,
        &policy(json!({"priority": 10, "ingress": [{"action": "Drop"}]})),
    );
    assert_eq!(code, 422, "{status}");
    assert_eq!(
        status["message"],
        "AdminNetworkPolicy.policy.networking.k8s.io \"a\" is invalid: [spec.ingress[0].action: Unsupported value: \"Drop\": supported values: \"Allow\", \"Deny\", \"Pass\", spec.subject: Required value]",
    );

    let (code, status) = apply(
        &ours,
        addr,
        path,
        &policy(json!({"priority": "high", "subject": {}, "tier": 1})),
    );
    assert_eq!(code, 500, "{status}");
    let message = status["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("failed to create typed patch object (/a; policy.networking.k8s.io/v1alpha1, Kind=AdminNetworkPolicy): errors:"),
        "{message}"
    );
    assert!(
        message.contains(".spec.priority: expected numeric (int or float), got string"),
        "{message}"
    );
    assert!(
        message.contains(".spec.tier: field not declared in schema"),
        "{message}"
    );
}
