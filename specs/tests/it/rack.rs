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
