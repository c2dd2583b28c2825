//! The change classifier on every change the tutorial supports and on the ones it does not.

use specs::{DesiredCluster, classify};

const BASE: &str = r#"
cluster_name: supernova
dns_zone: packet.example.com
dns_zone_id: Z3PAABBCFAKEC0
ssh_keys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILBFOv+5Cf+zeH4Q+2jCR/BWmqn9Sf8bJT/mazdZk9Jl core@loko-example-1"]
asset_dir: /var/lib/loko/supernova
project_id: 93fa1e81-0f3c-4b2e-9d8a-2c6e5f0a1b2c
facility: ams1
management_cidrs: [0.0.0.0/0]
node_private_cidr: 10.128.156.0/25
controller_count: 1
controller_type: t1.small.x86
os_channel: stable
networking: calico
network_mtu: 1480
pod_cidr: 10.2.0.0/16
service_cidr: 10.3.0.0/16
cluster_domain_suffix: cluster.local
enable_reporting: false
enable_aggregation: false
certs_validity_period_hours: 8760
worker_pools:
  - pool_name: helium
    count: 2
    type: t1.small.x86
    labels: "node.supernova.io/role=backend"
    os_channel: stable
    setup_raid: false
  - pool_name: neon
    count: 3
    type: c1.small.x86
"#;

/// The desired cluster of BASE with each `(from, to)` text replaced once.
fn desired(edits: &[(&str, &str)]) -> DesiredCluster {
    let mut text = BASE.to_owned();
    for (from, to) in edits {
        assert!(text.contains(from), "{from:?} is not in the base spec");
        text = text.replacen(from, to, 1);
    }
    specs::parse(&text, "spec.yaml")
        .unwrap_or_else(|e| panic!("{e}"))
        .desired()
}

/// Each `(from, to, path)`: replacing `from` with `to` in the spec is refused at `path`.
fn assert_each_refused_at(cases: &[(&str, &str, &str)]) {
    for (from, to, path) in cases {
        let paths = refused_paths(&[(from, to)]);
        assert!(
            paths.iter().any(|p| p == path),
            "{from} -> {to}: refused {paths:?}, expected {path}"
        );
    }
}

fn refused_paths(edits: &[(&str, &str)]) -> Vec<String> {
    let errors = classify(&desired(&[]), &desired(edits)).expect_err("refused");
    errors.changes.iter().map(|c| c.path.clone()).collect()
}

#[test]
fn the_same_spec_changes_nothing() {
    let changes = classify(&desired(&[]), &desired(&[])).expect("supported");
    assert!(changes.is_empty());
}

#[test]
fn endpoints_and_asset_dir_are_not_cluster_changes() {
    let next = desired(&[(
        "asset_dir: /var/lib/loko/supernova",
        "asset_dir: /srv/supernova\nendpoints: {packet_api_url: \"http://127.0.0.1:8080\"}",
    )]);
    assert!(
        classify(&desired(&[]), &next)
            .expect("supported")
            .is_empty()
    );
}

#[test]
fn adding_a_pool_creates_its_nodes() {
    let next = desired(&[(
        "    type: c1.small.x86\n",
        "    type: c1.small.x86\n  - pool_name: argon\n    count: 2\n    type: t1.small.x86\n",
    )]);
    let changes = classify(&desired(&[]), &next).expect("supported");
    assert_eq!(
        changes
            .pools_added
            .iter()
            .map(|p| p.as_str())
            .collect::<Vec<_>>(),
        ["argon"]
    );
    assert_eq!(
        changes.nodes_to_create,
        ["supernova-argon-worker-0", "supernova-argon-worker-1"]
    );
    assert!(changes.nodes_to_delete.is_empty());
}

#[test]
fn scaling_up_creates_the_next_indexes() {
    let changes =
        classify(&desired(&[]), &desired(&[("count: 2", "count: 4")])).expect("supported");
    assert_eq!(changes.pools_scaled.len(), 1);
    let scaled = &changes.pools_scaled[0];
    assert_eq!(
        (scaled.pool.as_str(), scaled.from, scaled.to),
        ("helium", 2, 4)
    );
    assert_eq!(
        changes.nodes_to_create,
        ["supernova-helium-worker-2", "supernova-helium-worker-3"]
    );
    assert!(changes.nodes_to_delete.is_empty());
}

#[test]
fn scaling_down_deletes_the_highest_indexes_first() {
    let changes =
        classify(&desired(&[]), &desired(&[("count: 3", "count: 1")])).expect("supported");
    assert_eq!(
        changes.nodes_to_delete,
        ["supernova-neon-worker-2", "supernova-neon-worker-1"]
    );
    assert_eq!(
        changes.pools_scaled[0].nodes_removed,
        changes.nodes_to_delete
    );
    assert!(changes.nodes_to_create.is_empty());
}

#[test]
fn a_pool_can_be_scaled_to_zero_while_others_have_workers() {
    let changes =
        classify(&desired(&[]), &desired(&[("count: 2", "count: 0")])).expect("supported");
    assert_eq!(
        changes.nodes_to_delete,
        ["supernova-helium-worker-1", "supernova-helium-worker-0"]
    );
    // And back up again from 0.
    let back = classify(&desired(&[("count: 2", "count: 0")]), &desired(&[])).expect("supported");
    assert_eq!(
        back.nodes_to_create,
        ["supernova-helium-worker-0", "supernova-helium-worker-1"]
    );
}

#[test]
fn changing_a_pool_type_deletes_then_recreates_its_nodes() {
    let next = desired(&[("    type: t1.small.x86\n", "    type: c1.small.x86\n")]);
    let changes = classify(&desired(&[]), &next).expect("supported");
    assert_eq!(changes.pools_retyped.len(), 1);
    let retyped = &changes.pools_retyped[0];
    assert_eq!(
        (retyped.from.as_str(), retyped.to.as_str()),
        ("t1.small.x86", "c1.small.x86")
    );
    assert_eq!(
        changes.nodes_to_delete,
        ["supernova-helium-worker-1", "supernova-helium-worker-0"]
    );
    assert_eq!(
        changes.nodes_to_create,
        ["supernova-helium-worker-0", "supernova-helium-worker-1"]
    );
    assert!(changes.pools_scaled.is_empty());
}

#[test]
fn changing_type_and_count_recreates_at_the_new_count() {
    let next = desired(&[
        ("    type: t1.small.x86\n", "    type: c1.small.x86\n"),
        ("count: 2", "count: 3"),
    ]);
    let changes = classify(&desired(&[]), &next).expect("supported");
    assert_eq!(
        changes.nodes_to_delete,
        ["supernova-helium-worker-1", "supernova-helium-worker-0"]
    );
    assert_eq!(
        changes.nodes_to_create,
        [
            "supernova-helium-worker-0",
            "supernova-helium-worker-1",
            "supernova-helium-worker-2"
        ]
    );
    assert_eq!(changes.pools_scaled.len(), 1);
}

#[test]
fn new_nodes_may_get_reservations() {
    let next = desired(&[(
        "count: 2",
        "count: 3\n    reservation_ids: {worker-2: next-available}",
    )]);
    let changes = classify(&desired(&[]), &next).expect("supported");
    assert_eq!(changes.nodes_to_create, ["supernova-helium-worker-2"]);
}

#[test]
fn a_retyped_pool_may_change_its_reservations() {
    let next = desired(&[(
        "    type: t1.small.x86\n",
        "    type: c1.small.x86\n    reservation_ids_default: next-available\n",
    )]);
    assert!(classify(&desired(&[]), &next).is_ok());
}

#[test]
fn every_cluster_wide_change_is_refused_naming_the_field() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "cluster_name: supernova",
            "cluster_name: nova",
            "cluster_name",
        ),
        (
            "dns_zone: packet.example.com",
            "dns_zone: k8s.example.com",
            "dns_zone",
        ),
        (
            "dns_zone_id: Z3PAABBCFAKEC0",
            "dns_zone_id: Z9OTHER",
            "dns_zone_id",
        ),
        ("project_id: 93fa1e81", "project_id: 03fa1e81", "project_id"),
        ("facility: ams1", "facility: ewr1", "facility"),
        (
            "ssh_keys: [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILBFOv+5Cf+zeH4Q+2jCR/BWmqn9Sf8bJT/mazdZk9Jl core@loko-example-1\"]",
            "ssh_keys: [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH0C8DRL3qiQe6DvOTdZRlr3rIBMVPCgZr0N+8UFnJjL core@loko-example-2\"]",
            "ssh_keys",
        ),
        (
            "management_cidrs: [0.0.0.0/0]",
            "management_cidrs: [10.0.0.0/8]",
            "management_cidrs",
        ),
        (
            "node_private_cidr: 10.128.156.0/25",
            "node_private_cidr: 10.128.157.0/25",
            "node_private_cidr",
        ),
        (
            "controller_count: 1",
            "controller_count: 3",
            "controller_count",
        ),
        (
            "controller_type: t1.small.x86",
            "controller_type: c1.small.x86",
            "controller_type",
        ),
        (
            "os_channel: stable\nnetworking",
            "os_channel: beta\nnetworking",
            "os_channel",
        ),
        (
            "controller_type: t1.small.x86",
            "controller_type: t1.small.x86\nipxe_script_url: https://example.com/packet.ipxe",
            "ipxe_script_url",
        ),
        ("networking: calico", "networking: flannel", "networking"),
        ("network_mtu: 1480", "network_mtu: 8981", "network_mtu"),
        (
            "pod_cidr: 10.2.0.0/16",
            "pod_cidr: 10.22.0.0/16",
            "pod_cidr",
        ),
        (
            "service_cidr: 10.3.0.0/16",
            "service_cidr: 10.3.0.0/24",
            "service_cidr",
        ),
        (
            "cluster_domain_suffix: cluster.local",
            "cluster_domain_suffix: k8s.example.com",
            "cluster_domain_suffix",
        ),
        (
            "enable_reporting: false",
            "enable_reporting: true",
            "enable_reporting",
        ),
        (
            "enable_aggregation: false",
            "enable_aggregation: true",
            "enable_aggregation",
        ),
        (
            "certs_validity_period_hours: 8760",
            "certs_validity_period_hours: 17520",
            "certs_validity_period_hours",
        ),
        (
            "node_private_cidr: 10.128.156.0/25",
            "node_private_cidr: 10.128.156.0/25\nreservation_ids_default: next-available",
            "reservation_ids (supernova-controller-0)",
        ),
    ];
    assert_each_refused_at(cases);
}

#[test]
fn every_pool_setting_change_other_than_count_and_type_is_refused() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "labels: \"node.supernova.io/role=backend\"",
            "labels: \"node.supernova.io/role=frontend\"",
            "worker_pools[0].labels",
        ),
        (
            "    setup_raid: false",
            "    setup_raid: false\n    taints: \"a=b:NoSchedule\"",
            "worker_pools[0].taints",
        ),
        (
            "    os_channel: stable",
            "    os_channel: beta",
            "worker_pools[0].os_channel",
        ),
        (
            "    setup_raid: false",
            "    setup_raid: true",
            "worker_pools[0].setup_raid",
        ),
        (
            "    setup_raid: false",
            "    ipxe_script_url: https://example.com/packet.ipxe",
            "worker_pools[0].ipxe_script_url",
        ),
        (
            "    type: c1.small.x86",
            "    type: c1.small.x86\n    setup_raid_ssd: true",
            "worker_pools[1].setup_raid",
        ),
        (
            "    type: c1.small.x86",
            "    type: c2.large.arm\n    os_arch: arm64",
            "worker_pools[1].os_arch",
        ),
        (
            "    type: c1.small.x86",
            "    type: c1.small.x86\n    reservation_ids: {worker-1: next-available}",
            "worker_pools[1].reservation_ids (supernova-neon-worker-1)",
        ),
    ];
    assert_each_refused_at(cases);
}

#[test]
fn removing_a_pool_is_refused_with_a_hint_to_scale_it_to_zero() {
    let next = desired(&[(
        "  - pool_name: neon\n    count: 3\n    type: c1.small.x86\n",
        "",
    )]);
    let refused = classify(&desired(&[]), &next).expect_err("refused");
    assert_eq!(refused.changes.len(), 1);
    assert_eq!(refused.changes[0].path, "worker_pools");
    assert!(refused.changes[0].reason.contains("count: 0"), "{refused}");
    // Renaming is removing one pool and adding another.
    assert!(
        refused_paths(&[("pool_name: neon", "pool_name: argon")])
            .contains(&"worker_pools".to_owned())
    );
}

#[test]
fn every_refused_change_is_listed_at_once_with_old_and_new_values() {
    let refused = classify(
        &desired(&[]),
        &desired(&[
            ("network_mtu: 1480", "network_mtu: 8981"),
            (
                "os_channel: stable\n    setup",
                "os_channel: beta\n    setup",
            ),
            ("count: 2", "count: 5"),
        ]),
    )
    .expect_err("refused");
    let text = refused.to_string();
    assert_eq!(refused.changes.len(), 2, "{text}");
    assert!(text.contains("network_mtu: 1480 -> 8981"), "{text}");
    assert!(
        text.contains("worker_pools[0].os_channel: \"stable\" -> \"beta\""),
        "{text}"
    );
}

#[test]
fn a_cluster_without_workers_is_refused() {
    let previous = desired(&[]);
    let mut next = previous.clone();
    for pool in &mut next.pools {
        pool.count = 0;
    }
    next.nodes.retain(|n| n.pool.is_none());
    let refused = classify(&previous, &next).expect_err("refused");
    assert!(
        refused
            .changes
            .iter()
            .any(|c| c.reason.contains("total of workers")),
        "{refused}"
    );
}
