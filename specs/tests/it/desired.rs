//! The desired cluster as a record in the journal, and the hardware reservations it needs.

use specs::{DESIRED_FORMAT, DesiredCluster, HardwareReservation, RecordError};

fn flannel() -> DesiredCluster {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/flannel.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
    specs::parse(&text, "flannel.yaml")
        .unwrap_or_else(|e| panic!("{e}"))
        .desired()
}

#[test]
fn a_record_reads_back_and_one_without_an_optional_field_or_a_format_still_reads() {
    let desired = flannel();
    let record = desired.to_record().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(record["format"], DESIRED_FORMAT);
    assert_eq!(
        DesiredCluster::from_record(&record).ok().as_ref(),
        Some(&desired)
    );

    // As an earlier loko wrote it: no format, and no `pool` on the nodes (an optional
    // field; a field added later must be one too).
    let mut old = record.clone();
    old.as_object_mut().map(|o| o.remove("format"));
    for node in old["nodes"].as_array_mut().into_iter().flatten() {
        node.as_object_mut().map(|o| o.remove("pool"));
    }
    let read = DesiredCluster::from_record(&old).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read.settings, desired.settings);
    assert!(read.nodes.iter().all(|n| n.pool.is_none()));

    let mut newer = record;
    newer["format"] = (DESIRED_FORMAT + 1).into();
    assert!(matches!(
        DesiredCluster::from_record(&newer),
        Err(RecordError::Newer { .. })
    ));
}

#[test]
fn reservations_needed_name_each_id_and_count_next_available_per_plan_and_facility() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/flannel.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
    let desired = specs::parse(&text, "flannel.yaml")
        .unwrap_or_else(|e| panic!("{e}"))
        .desired();
    let needs = desired.reservations_needed();
    let reserved = desired
        .nodes
        .iter()
        .filter(|n| n.reservation != HardwareReservation::None)
        .count();
    assert_eq!(
        needs.iter().map(|n| n.count as usize).sum::<usize>(),
        reserved
    );
    for need in needs.iter().filter(|n| n.id.is_some()) {
        assert_eq!(need.count, 1);
        let node = desired
            .node(need.node.as_deref().unwrap_or_default())
            .unwrap();
        assert_eq!(
            node.reservation,
            HardwareReservation::Id(need.id.clone().unwrap())
        );
    }
    let any: Vec<_> = needs.iter().filter(|n| n.id.is_none()).collect();
    assert!(!any.is_empty(), "flannel.yaml takes next-available ones");
    let mut keys: Vec<_> = any.iter().map(|n| (&n.plan, &n.facility)).collect();
    keys.dedup();
    assert_eq!(keys.len(), any.len(), "one need per plan and facility");
}
