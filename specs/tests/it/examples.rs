//! Every example spec is valid, and the tutorial's means what the tutorial says.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use specs::{HardwareReservation, Networking, OsArch, OsImage, RaidSetup, RecordTarget, Role};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
}

fn load(name: &str) -> specs::Spec {
    specs::load(&example(name)).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_example_is_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("examples directory")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .filter_map(|path| path.file_name().and_then(|n| n.to_str()).map(str::to_owned))
        .collect();
    names.sort();
    for name in &names {
        load(name);
    }
    for name in ["flannel.yaml", "hybrid.yaml", "tutorial.yaml"] {
        assert!(
            names.iter().any(|n| n == name),
            "{name} missing from examples/"
        );
    }
}

#[test]
fn the_tutorial_cluster() {
    let spec = load("tutorial.yaml");
    // Defaults of the tutorial's tables.
    assert_eq!(spec.networking, Networking::Calico);
    assert_eq!(spec.network_mtu, 1480);
    assert_eq!(spec.certs_validity_period_hours, 8760);
    assert_eq!(spec.cluster_domain_suffix, "cluster.local");
    assert_eq!(spec.os.os_version, "current");
    assert!(!spec.enable_aggregation && !spec.enable_reporting);
    assert!(spec.worker_pools[0].setup_raid_ssd_fs);
    // A relative asset_dir is relative to the spec file.
    assert_eq!(spec.asset_dir, example("assets/supernova"));

    let desired = spec.desired();
    let hostnames: Vec<&str> = desired.nodes.iter().map(|n| n.hostname.as_str()).collect();
    assert_eq!(
        hostnames,
        [
            "supernova-controller-0",
            "supernova-helium-worker-0",
            "supernova-helium-worker-1"
        ]
    );
    let worker = &desired.nodes[1];
    assert_eq!(worker.role, Role::Worker);
    assert_eq!(worker.plan.as_str(), "t1.small.x86");
    assert_eq!(worker.facility.as_ref().map(|f| f.as_str()), Some("ams1"));
    assert_eq!(
        worker
            .labels
            .get("node.supernova.io/role")
            .map(String::as_str),
        Some("backend")
    );
    assert_eq!(worker.os.packet_operating_system(), "flatcar_stable");
    assert_eq!(worker.reservation, HardwareReservation::None);
    let records: Vec<&str> = desired
        .dns_records
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(
        records,
        [
            "supernova.packet.example.com",
            "supernova-private.packet.example.com",
            "supernova-etcd0.packet.example.com"
        ]
    );
    assert_eq!(
        desired.dns_records[2].target,
        RecordTarget::ControllerPrivateIpv4 { index: 0 }
    );
    assert_eq!(desired.dns_service_ip, Ipv4Addr::new(10, 3, 0, 10));
    assert_eq!(desired.apiserver_service_ip, Ipv4Addr::new(10, 3, 0, 1));
}

#[test]
fn the_hybrid_cluster() {
    let desired = load("hybrid.yaml").desired();
    assert_eq!(desired.controllers().count(), 3);
    assert_eq!(desired.dns_records.len(), 5);
    let arm = desired.node("hydra-arm-worker-1").expect("arm worker");
    assert_eq!(arm.os.arch(), OsArch::Arm64);
    assert_eq!(arm.os.packet_operating_system(), "custom_ipxe");
    assert!(
        matches!(&arm.os, OsImage::Ipxe { script_url, .. } if script_url.ends_with("arm64-usr/packet.ipxe"))
    );
    assert_eq!(arm.taints[0].to_string(), "arch=arm64:NoSchedule");
    let x86 = desired.node("hydra-x86-worker-0").expect("x86 worker");
    assert_eq!(x86.os.arch(), OsArch::Amd64);
}

#[test]
fn the_flannel_cluster() {
    let spec = load("flannel.yaml");
    let desired = spec.desired();
    assert_eq!(desired.dns_service_ip, Ipv4Addr::new(10, 23, 0, 10));
    let reservation = |h: &str| desired.node(h).map(|n| n.reservation.clone());
    assert_eq!(
        reservation("lattice-controller-0"),
        Some(HardwareReservation::Id(
            "55555f20-a1fb-55bd-1e11-11af11d11111".into()
        ))
    );
    assert_eq!(
        reservation("lattice-general-worker-2"),
        Some(HardwareReservation::NextAvailable)
    );
    assert_eq!(
        reservation("lattice-storage-worker-1"),
        Some(HardwareReservation::Id(
            "77777f20-c3fb-77bd-3e33-33af33d33333".into()
        ))
    );
    assert_eq!(
        reservation("lattice-archive-worker-0"),
        Some(HardwareReservation::None)
    );
    assert_eq!(
        desired.node("lattice-storage-worker-0").map(|n| n.raid),
        Some(RaidSetup::Ssd { filesystem: true })
    );
    assert_eq!(
        desired.node("lattice-archive-worker-0").map(|n| n.raid),
        Some(RaidSetup::Hdd)
    );
    let taints: Vec<String> = desired
        .node("lattice-storage-worker-0")
        .map(|n| n.taints.iter().map(ToString::to_string).collect())
        .unwrap_or_default();
    assert_eq!(
        taints,
        ["storage=ssd:NoSchedule", "dedicated:PreferNoSchedule"]
    );
}

#[test]
fn the_desired_cluster_round_trips_through_json_with_a_stable_digest() {
    for name in ["tutorial.yaml", "hybrid.yaml", "flannel.yaml"] {
        let desired = load(name).desired();
        let json = serde_json::to_string(&desired).expect("serializes");
        let back: specs::DesiredCluster = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, desired);
        assert_eq!(back.digest(), desired.digest());
        assert_eq!(desired.digest().len(), 64);
    }
    assert_ne!(
        load("tutorial.yaml").desired().digest(),
        load("hybrid.yaml").desired().digest()
    );
}

#[test]
fn the_recorded_spec_is_the_input_format() {
    // The spec serializes back to YAML-compatible JSON that parses to the same spec.
    let spec = load("flannel.yaml");
    let json = serde_json::to_string(&spec).expect("serializes");
    let again = specs::parse(&json, &example("flannel.yaml").display().to_string())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again, spec);
}

#[test]
fn the_json_schema_describes_every_field() {
    let schema = specs::json_schema();
    let properties = schema["properties"].as_object().expect("properties");
    for field in [
        "cluster_name",
        "controller_type",
        "os_channel",
        "reservation_ids",
        "reservation_ids_default",
        "worker_pools",
        "endpoints",
    ] {
        assert!(properties.contains_key(field), "{field} missing");
    }
    let required: Vec<&str> = schema["required"]
        .as_array()
        .expect("required")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    for field in [
        "cluster_name",
        "ssh_keys",
        "asset_dir",
        "management_cidrs",
        "node_private_cidr",
        "worker_pools",
    ] {
        assert!(
            required.contains(&field),
            "{field} not required: {required:?}"
        );
    }
    assert!(!required.contains(&"controller_count"));
    // A Route53 zone, or (a rack's) api_address.
    assert_eq!(
        schema["oneOf"][0]["required"],
        serde_json::json!(["dns_zone", "dns_zone_id"])
    );
    assert_eq!(
        schema["oneOf"][1]["required"],
        serde_json::json!(["api_address", "provider"])
    );
    // Packet's project and facility are required unless the provider is redfish.
    assert_eq!(
        schema["else"]["required"],
        serde_json::json!(["project_id", "facility"])
    );
    assert_eq!(schema["then"]["required"], serde_json::json!(["machines"]));
    assert_eq!(schema["properties"]["network_mtu"]["default"], 1480);
    let pool = &schema["$defs"]["WorkerPool"]["properties"];
    for field in [
        "pool_name",
        "count",
        "type",
        "labels",
        "taints",
        "setup_raid_ssd_fs",
        "service_cidr",
        "os_arch",
    ] {
        assert!(pool.get(field).is_some(), "pool field {field} missing");
    }
    assert_eq!(schema["additionalProperties"], false);
}
