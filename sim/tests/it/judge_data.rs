//! The judge's data (`sim/data/`) agrees with the reference facts it was copied from
//! (`shared/reference/upstream`, beside the repository clone; `LOKO_REFERENCE_DIR` names another
//! place). Without that directory the comparison is skipped with a note: the data files carry
//! their sources themselves.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;
use sim::judge::data::{Facts, KUBERNETES_FLAGS_JSON};

fn reference_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("LOKO_REFERENCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/reference/upstream")
        });
    if dir.is_dir() {
        Some(dir)
    } else {
        println!(
            "note: {} is absent; the comparison of sim/data with the reference data is skipped",
            dir.display()
        );
        None
    }
}

fn read(dir: &std::path::Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn strings(value: &Value) -> BTreeSet<String> {
    value
        .as_array()
        .expect("an array")
        .iter()
        .map(|v| v.as_str().expect("a string").to_owned())
        .collect()
}

#[test]
fn kubernetes_flag_sets_are_the_reference_copies() {
    let Some(dir) = reference_dir() else { return };
    let reference: Value =
        serde_json::from_str(&read(&dir, "kubernetes-v1.32-flags.json")).expect("JSON");
    let ours: Value = serde_json::from_str(KUBERNETES_FLAGS_JSON).expect("JSON");
    for component in [
        "kubelet",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kube-proxy",
    ] {
        assert_eq!(
            strings(&ours["components"][component]["flags"]),
            strings(&reference[component]["union_of_covered_flags"]),
            "{component}: sim/data/kubernetes-v1.32-flags.json differs from the reference"
        );
    }
    let facts = Facts::load().expect("data");
    for removed in reference["removed_by_1_32_used_in_2019_templates"]
        .as_array()
        .expect("array")
    {
        let component = removed["component"].as_str().expect("component");
        let Some(spec) = facts.components.get(component) else {
            continue;
        };
        let flag = removed["flag"]
            .as_str()
            .expect("flag")
            .trim_start_matches('-');
        assert!(spec.removed.contains_key(flag), "{component} --{flag}");
        assert!(
            !spec.accepts(None, flag),
            "{component} accepts removed --{flag}"
        );
    }
}

#[test]
fn the_label_rule_is_the_reference_rule() {
    let Some(dir) = reference_dir() else { return };
    let text = read(&dir, "kubelet-node-label-rule.md");
    let block = text
        .split("```json")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the rule's JSON block");
    let reference: Value = serde_json::from_str(block).expect("JSON");
    let rule = Facts::load().expect("data").label_rule;
    assert_eq!(
        rule.allowed_keys,
        strings(&reference["allowed_exact_keys (KubeletLabels(), sorted)"])
    );
    assert_eq!(
        rule.allowed_namespaces
            .iter()
            .cloned()
            .collect::<BTreeSet<_>>(),
        strings(&reference["allowed_namespaces (KubeletLabelNamespaces(), sorted)"])
    );
    assert!(text.contains(&rule.kubelet_error));
}

#[test]
fn image_and_program_facts_are_stated_by_the_reference() {
    let Some(dir) = reference_dir() else { return };
    let images = read(&dir, "images.md");
    let facts = Facts::load().expect("data");
    for image in &facts.images {
        if let Some(quote) = &image.reference_quote {
            assert!(
                images.contains(quote.as_str()),
                "{:?}: {quote:?} not in images.md",
                image.repositories
            );
        }
    }
    let checkpointer = &facts.components["pod-checkpointer"];
    for flag in &checkpointer.flags {
        assert!(images.contains(&format!("`--{flag}`")), "--{flag}");
    }
    for env in &checkpointer.required_env {
        assert!(images.contains(&format!("`{env}`")), "{env}");
    }
    for version in &checkpointer.cri_api_versions {
        assert!(images.contains(&format!("runtime.{version}")), "{version}");
    }
    for flag in &facts.components["bootkube"].subcommands["start"] {
        assert!(
            images.contains(&format!("`--{flag}`")),
            "bootkube start --{flag}"
        );
    }
    let templates = [
        "lokomotive/lokomotive-kubernetes/packet/flatcar-linux/kubernetes/cl/controller.yaml.tmpl",
        "lokomotive/lokomotive-kubernetes/packet/flatcar-linux/kubernetes/workers/cl/worker.yaml.tmpl",
    ];
    for producer in &facts.flatcar.environment_file_producers {
        for template in templates {
            let text = read(&dir, template);
            for line in [
                format!("Requires={}", producer.unit),
                format!("After={}", producer.unit),
                format!("EnvironmentFile={}", producer.path),
            ] {
                assert!(text.contains(&line), "{template}: {line}");
            }
        }
    }
}
