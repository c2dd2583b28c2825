//! Golden: the inputs digest of every step of the tutorial's DAG.
//!
//! A step whose own inputs digest changes runs again on every existing cluster (a changed
//! device digest would reconcile every device). So a digest may change only on purpose: when
//! it does, this test fails, and `UPDATE_GOLDEN=1 cargo nextest run -p steps dag_digests`
//! rewrites `golden/tutorial-dag-digests.json` for the commit that explains why. The PKI
//! step is left out: its inputs hold the renewal window of the current time. The DAG is that of
//! a cluster whose devices all exist, built by a run at the epoch: while a node has none, the
//! kubeconfigs step's inputs hold the bootstrap token's window of the current time (checked
//! below), else that of the latest building run.

use std::collections::BTreeMap;
use std::path::Path;

use steps::cluster::apply_dag;
use steps::history::History;
use steps::step_name::StepName;

#[test]
fn every_step_inputs_digest_of_the_tutorial_is_pinned() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let spec = root.join("../examples/tutorial.yaml");
    let text = std::fs::read_to_string(&spec).unwrap();
    let desired = specs::parse(&text, "tutorial.yaml").unwrap().desired();
    let built = History {
        recorded: desired
            .nodes
            .iter()
            .map(|node| StepName::Device(node.hostname.to_string()).id())
            .collect(),
        last_built_at_ms: Some(0),
        ..History::default()
    };
    let dag = apply_dag(&desired, &built, &[]).unwrap();
    // With nodes to boot the kubeconfigs step differs (it may issue a new bootstrap token).
    let first = apply_dag(&desired, &History::default(), &[]).unwrap();
    let kubeconfigs = |dag: &engine::Dag| {
        dag.declared()
            .find(|step| *step.id() == StepName::Kubeconfigs.id())
            .map(|step| step.inputs().to_hex())
    };
    assert_ne!(kubeconfigs(&dag), kubeconfigs(&first));
    let digests: BTreeMap<String, serde_json::Value> = dag
        .declared()
        .filter(|step| *step.id() != StepName::Pki.id())
        .map(|step| {
            (
                step.id().to_string(),
                serde_json::json!({"kind": step.kind().as_str(), "inputs": step.inputs().to_hex()}),
            )
        })
        .collect();
    let golden = root.join("tests/golden/tutorial-dag-digests.json");
    let now = serde_json::to_string_pretty(&digests).unwrap() + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &now).unwrap();
    }
    let pinned = std::fs::read_to_string(&golden).unwrap();
    assert_eq!(
        now, pinned,
        "step digests changed: every existing cluster would rerun these steps"
    );
}
