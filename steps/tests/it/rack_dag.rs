//! A rack's DAG: each node gets a `machine/<host>` step after its Ignition, and every step that
//! reads a node's addresses (DNS, SSH, the bootstrap, readiness) depends on it, not on a device.

use std::path::Path;

use steps::cluster::apply_dag;
use steps::history::History;
use steps::step_name::StepName;

#[test]
fn a_rack_builds_machine_steps_that_the_address_readers_follow() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/rack.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
    let spec = specs::parse(&text, "rack.yaml").unwrap_or_else(|e| panic!("{e}"));
    let desired = spec.desired();
    let dag = apply_dag(&desired, &History::default(), &[]).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<StepName> = dag.steps().map(|s| StepName::from(s.id())).collect();
    assert!(
        !names.iter().any(|n| matches!(n, StepName::Device(_))),
        "{names:?}"
    );
    for node in &desired.nodes {
        let machine = StepName::Machine(node.hostname.clone()).id();
        let def = dag
            .steps()
            .find(|s| s.id() == &machine)
            .unwrap_or_else(|| panic!("no {machine} in {names:?}"));
        assert_eq!(def.kind().to_string(), "machine");
        assert!(
            def.deps()
                .contains(&StepName::Ignition(node.hostname.clone()).id())
        );
    }
    let controller = desired.controllers().next().expect("a controller");
    let machine = StepName::Machine(controller.hostname.clone()).id();
    for reader in [
        StepName::Dns,
        StepName::EtcdSecrets(controller.hostname.clone()),
        StepName::ControlPlane(controller.hostname.clone()),
        StepName::Bootstrap,
        StepName::Ready,
    ] {
        let id = reader.id();
        let def = dag.steps().find(|s| s.id() == &id).expect("step");
        assert!(def.deps().contains(&machine), "{id} after {:?}", def.deps());
    }
}
