//! The judge's copies in `sim/data/` agree with the upstream reference in
//! `shared/reference/upstream/` wherever both hold the same fact.

use std::path::PathBuf;

use serde_json::Value;
use sim::judge::rbac::{Policy, ResourceRequest, UserInfo, data_objects};

fn data(rel: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The reference directory, or `None` (with a note) where this checkout has none beside it.
fn reference() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/reference/upstream");
    if dir.is_dir() {
        Some(dir)
    } else {
        println!(
            "NOTE: {} is absent; the comparison with the upstream reference is skipped",
            dir.display()
        );
        None
    }
}

/// The documents of a YAML text, past a reference header.
fn yaml_objects(text: &str) -> Vec<Value> {
    use serde::Deserialize as _;
    serde_yaml::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).expect("YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

#[test]
fn calico_rbac_and_crds_are_the_references_bytes() {
    let Some(reference) = reference() else { return };
    for file in ["calico-v3.29.2-rbac.yaml", "calico-v3.29-crds.txt"] {
        let ours = if file.ends_with(".txt") {
            data(file)
        } else {
            data(&format!("rbac/{file}"))
        };
        let theirs = std::fs::read_to_string(reference.join(file)).expect("reference file");
        assert_eq!(ours, theirs, "{file} differs from the reference");
    }
}

#[test]
fn pod_checkpointer_roles_are_terraform_render_bootkubes() {
    let Some(reference) = reference() else { return };
    let manifests = reference.join("lokomotive/terraform-render-bootkube/resources/manifests");
    let mut theirs = Vec::new();
    for file in [
        "pod-checkpointer-cluster-role.yaml",
        "pod-checkpointer-role.yaml",
    ] {
        let text = std::fs::read_to_string(manifests.join(file)).expect("reference file");
        theirs.extend(yaml_objects(&text));
    }
    // The PodSecurityPolicy role is left out on purpose (the API is gone since v1.25).
    theirs.retain(|o| o["metadata"]["name"] != "pod-checkpointer-psp");
    let ours = data_objects("pod-checkpointer-rbac.yaml").expect("our copy");
    assert_eq!(ours, theirs);
}

#[test]
fn upstream_kubelet_binding_is_what_makes_system_node_apply() {
    // terraform-render-bootkube bound the kubelets' group to system:node; the bootstrap policy
    // alone does not. Both facts must hold in the data for the judge to be right.
    let Some(reference) = reference() else { return };
    let text = std::fs::read_to_string(reference.join(
        "lokomotive/terraform-render-bootkube/resources/manifests/kubelet-nodes-cluster-role-binding.yaml",
    ))
    .expect("reference file");
    let kubelet = UserInfo::authenticated("kubelet", &["system:nodes"]);
    let register = ResourceRequest::new("create", "", "nodes").into();
    let mut policy = Policy::bootstrap().expect("bootstrap policy");
    assert!(!policy.authorize(&kubelet, &register).is_allowed());
    for object in yaml_objects(&text) {
        policy
            .add_object(&object, "reference")
            .expect("RBAC object");
    }
    assert!(policy.authorize(&kubelet, &register).is_allowed());
}
