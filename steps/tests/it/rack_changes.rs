//! A rack's machines between runs: another MAC or install disk replaces the node, another
//! address is refused naming the machine and field, a moved BMC changes nothing.

use std::path::Path;

use steps::changes;
use steps::history::History;
use steps::step_name::StepName;

fn rack() -> specs::Spec {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/rack.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
    specs::parse(&text, "rack.yaml").unwrap_or_else(|e| panic!("{e}"))
}

/// A history whose last run built `previous` completely.
fn built(previous: &specs::DesiredCluster) -> History {
    History {
        previous: Some(previous.clone()),
        known_nodes: previous.nodes.iter().map(|n| n.hostname.clone()).collect(),
        recorded: previous
            .nodes
            .iter()
            .map(|n| StepName::Device(n.hostname.to_string()).id())
            .chain([StepName::Dns.id()])
            .collect(),
        ..History::default()
    }
}

#[test]
fn a_new_mac_or_install_disk_replaces_the_node_and_a_moved_bmc_changes_nothing() {
    let spec = rack();
    let history = built(&spec.desired());
    let mut moved = spec.clone();
    moved.machines[3].bmc.url = "https://10.0.9.99".into();
    moved.machines[3].bmc.system = "/redfish/v1/Systems/7".into();
    let changes = changes::changes(&moved.desired(), &history).unwrap_or_else(|e| panic!("{e}"));
    assert!(changes.replace.is_empty(), "{changes:?}");

    let mut swapped = spec.clone();
    swapped.machines[3].mac = specs::MacAddress::parse("52:54:00:b1:00:09").unwrap();
    swapped.machines[4].install_disk = "/dev/sdb".into();
    let changes = changes::changes(&swapped.desired(), &history).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(changes.replace, ["rack-b1", "rack-b2"]);
    assert_eq!(
        changes.drain, changes.replace,
        "replaced workers are drained first"
    );
}

#[test]
fn a_machine_removed_from_the_middle_of_its_pool_takes_only_its_node() {
    let spec = rack();
    let history = built(&spec.desired());
    let mut fewer = spec.clone();
    fewer.machines.remove(3);
    let changes = changes::changes(&fewer.desired(), &history).unwrap_or_else(|e| panic!("{e}"));
    assert!(changes.replace.is_empty(), "no machine moves: {changes:?}");
    assert_eq!(changes.delete, ["rack-b1"]);
}

#[test]
fn a_controller_s_machine_is_not_replaced_nor_reordered_and_a_mac_does_not_change_nodes() {
    let spec = rack();
    let history = built(&spec.desired());
    let refused = |edit: &dyn Fn(&mut specs::Spec)| {
        let mut edited = spec.clone();
        edit(&mut edited);
        changes::changes(&edited.desired(), &history)
            .expect_err("refused")
            .to_string()
    };
    let text =
        refused(&|s| s.machines[0].mac = specs::MacAddress::parse("52:54:00:a1:00:09").unwrap());
    assert!(text.contains("machines[rack-a1].mac"), "{text}");
    assert!(text.contains("etcd member's data is on its disk"), "{text}");
    let text = refused(&|s| s.machines.swap(0, 1));
    assert!(text.contains("machines[rack-a1].role"), "{text}");
    assert!(text.contains("keep their order"), "{text}");
    // rack-b2's MAC listed under a new name: node rack-b2 would be retired while the new
    // node boots the same machine.
    let text = refused(&|s| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/rack.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        let renamed = text.replace("name: rack-b2", "name: rack-b9");
        s.machines = specs::parse(&renamed, "rack.yaml").unwrap().machines;
    });
    assert!(text.contains("machines[rack-b9].mac"), "{text}");
    assert!(text.contains("was node rack-b2's machine"), "{text}");
}

#[test]
fn a_machine_with_another_address_is_refused_naming_it_and_the_field() {
    let spec = rack();
    let history = built(&spec.desired());
    let mut renumbered = spec.clone();
    renumbered.machines[1].public_ipv4 = "10.0.1.99".parse().unwrap();
    let refused = changes::changes(&renumbered.desired(), &history).expect_err("refused");
    let text = refused.to_string();
    assert!(
        text.contains("machines[rack-a2].public_ipv4: \"10.0.1.12\" -> \"10.0.1.99\""),
        "{text}"
    );
    assert!(text.contains("certificates"), "{text}");
}
