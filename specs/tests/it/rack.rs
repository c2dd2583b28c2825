//! `provider: redfish`: the rack example means what it says, and a rack spec's mistakes are
//! named by field and machine.

use std::net::Ipv4Addr;
use std::path::Path;

use specs::{MachineRole, Provider};

fn example(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name);
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn bad(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/specs/bad")
        .join(name);
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn the_rack_example_lists_three_controllers_and_a_pool_of_two() {
    let spec = specs::parse(&example("rack.yaml"), "rack.yaml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(spec.provider, Provider::Redfish);
    assert_eq!(spec.project_id, None);
    assert_eq!(spec.facility, None);
    assert_eq!(spec.controller_count, 3, "the controllers listed");
    assert_eq!(spec.worker_pools[0].count, 2, "the pool's machines listed");
    let b2 = &spec.machines[4];
    assert_eq!(b2.name.as_str(), "rack-b2");
    assert_eq!(
        b2.role,
        MachineRole::Worker(spec.worker_pools[0].pool_name.clone())
    );
    assert_eq!(b2.mac.to_string(), "52:54:00:b1:00:02");
    assert_eq!(b2.bmc.url, "https://10.0.9.22");
    assert_eq!(
        b2.bmc.system, "/redfish/v1/Systems/1",
        "an id is written out"
    );
    assert_eq!(b2.install_disk, "/dev/nvme0n1");
    assert_eq!(b2.private_ipv4, Ipv4Addr::new(10, 10, 0, 22));
    let desired = spec.desired();
    assert_eq!(desired.nodes.len(), 5);
    assert!(desired.nodes.iter().all(|n| n.facility.is_none()));
    assert!(desired.reservations_needed().is_empty());
    assert!(desired.settings.packet_project().is_err());
}

#[test]
fn a_packet_spec_says_nothing_of_providers_or_machines() {
    let spec =
        specs::parse(&example("tutorial.yaml"), "tutorial.yaml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(spec.provider, Provider::Packet);
    assert!(spec.machines.is_empty());
    // The recorded desired cluster keeps the layout earlier journals have.
    let record = serde_json::to_value(spec.desired()).unwrap_or_default();
    assert_eq!(
        record["settings"]["project_id"],
        "93fa1e81-0f3c-4b2e-9d8a-2c6e5f0a1b2c"
    );
    assert_eq!(record["nodes"][0]["facility"], "ams1");
    let spec_json = serde_json::to_value(&spec).unwrap_or_default();
    assert!(spec_json.get("provider").is_none() && spec_json.get("machines").is_none());
}

#[test]
fn a_password_in_a_bmc_url_is_never_echoed() {
    let text = bad("86-rack-bmc-url-credentials.yaml");
    let errors = specs::parse(&text, "rack.yaml").expect_err("refused");
    let shown = errors.to_string();
    assert!(
        shown.contains("machine c1: the BMC's URL holds credentials"),
        "{shown}"
    );
    assert!(!shown.contains("hunter2"), "{shown}");
}

#[test]
fn the_schema_knows_the_rack() {
    let schema = specs::json_schema();
    assert!(schema["properties"].get("provider").is_some());
    assert!(schema["properties"].get("machines").is_some());
    assert!(schema.pointer("/$defs/Machine/properties/mac").is_some());
}

#[test]
fn each_node_is_named_by_its_machine_and_indexed_at_its_place_in_its_role() {
    let mut spec =
        specs::parse(&example("rack.yaml"), "rack.yaml").unwrap_or_else(|e| panic!("{e}"));
    // Listed out of order: a worker first, the second controller before the first.
    spec.machines.swap(0, 3);
    spec.machines.swap(1, 2);
    let names: Vec<&str> = spec.machines.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        ["rack-b1", "rack-a3", "rack-a2", "rack-a1", "rack-b2"]
    );
    let desired = spec.desired();
    let by_node: Vec<(&str, u32, &str)> = desired
        .nodes
        .iter()
        .map(|n| {
            let machine = n.machine.as_ref().map_or("none", |m| m.name.as_str());
            (n.hostname.as_str(), n.index, machine)
        })
        .collect();
    // Controller i is the i-th listed controller (etcd member i); a node is named by its
    // machine, as Typhoon's bare-metal nodes are.
    assert_eq!(
        by_node,
        [
            ("rack-a3", 0, "rack-a3"),
            ("rack-a2", 1, "rack-a2"),
            ("rack-a1", 2, "rack-a1"),
            ("rack-b1", 0, "rack-b1"),
            ("rack-b2", 1, "rack-b2"),
        ]
    );
}

#[test]
fn a_record_without_machines_reads_and_a_packet_node_records_none() {
    let spec = specs::parse(&example("rack.yaml"), "rack.yaml").unwrap_or_else(|e| panic!("{e}"));
    let mut record = serde_json::to_value(spec.desired()).unwrap_or_default();
    for node in record["nodes"].as_array_mut().into_iter().flatten() {
        assert!(
            node["machine"].is_object(),
            "a rack's node records its machine"
        );
        node.as_object_mut().map(|n| n.remove("machine"));
    }
    let read: specs::DesiredCluster =
        serde_json::from_value(record).unwrap_or_else(|e| panic!("{e}"));
    assert!(read.nodes.iter().all(|n| n.machine.is_none()));
    let packet =
        specs::parse(&example("tutorial.yaml"), "tutorial.yaml").unwrap_or_else(|e| panic!("{e}"));
    let record = serde_json::to_value(packet.desired()).unwrap_or_default();
    assert!(
        record["nodes"][0].get("machine").is_none(),
        "a Packet node's record has no machine field"
    );
}

#[test]
fn the_rack_example_names_its_boot_server_and_packet_refuses_one() {
    let spec = specs::parse(&example("rack.yaml"), "rack.yaml").unwrap_or_else(|e| panic!("{e}"));
    let boot = spec.boot_server.unwrap_or_else(|| panic!("no boot_server"));
    assert_eq!(boot.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(boot.url.as_deref(), Some("http://10.0.9.1:8080"));
    assert_eq!(boot.mirror, specs::DEFAULT_FLATCAR_MIRROR);
    assert!(boot.kernel_args.is_empty());
    packet_refuses_boot_server("{ listen: \"10.0.9.1:8080\" }");
}

/// The tutorial (Packet) with `boot_server` written as `value` is refused, naming the field.
fn packet_refuses_boot_server(value: &str) {
    let tutorial = format!("{}\nboot_server: {value}\n", example("tutorial.yaml"));
    let errors = specs::parse(&tutorial, "tutorial.yaml").expect_err("refused");
    assert!(
        errors
            .to_string()
            .contains("`boot_server` does not belong here"),
        "{errors}"
    );
}

#[test]
fn boot_server_retire_is_power_off_unless_wipe_and_nothing_else() {
    let rack = example("rack.yaml");
    let spec = specs::parse(&rack, "rack.yaml").unwrap_or_else(|e| panic!("{e}"));
    let boot = spec.boot_server.unwrap_or_else(|| panic!("no boot_server"));
    assert_eq!(boot.retire, specs::RetirePolicy::PowerOff);
    let with = |retire: &str| {
        rack.replace(
            "  url: \"http://10.0.9.1:8080\"\n",
            &format!("  url: \"http://10.0.9.1:8080\"\n  retire: {retire}\n"),
        )
    };
    let wipe = specs::parse(&with("wipe"), "rack.yaml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        wipe.boot_server.map(|b| b.retire),
        Some(specs::RetirePolicy::Wipe)
    );
    let errors = specs::parse(&with("poweroff"), "rack.yaml").expect_err("refused");
    assert!(
        errors.to_string().contains(
            "boot_server.retire: must be one of power-off, wipe (got \"poweroff\"); did you mean \"power-off\"?"
        ),
        "{errors}"
    );
    // Packet deletes its devices: a retire policy of a boot server is refused with the server.
    packet_refuses_boot_server("{ listen: \"10.0.9.1:8080\", retire: wipe }");
}
