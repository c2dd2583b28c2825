//! The Packet model's unit tests.

use super::*;
use crate::faults::DeviceFaults;

fn timings() -> Timings {
    Timings::default()
}

fn cloud() -> (PacketCloud, Uuid, DateTime<Utc>) {
    let now = Utc::now();
    let mut cloud = PacketCloud::default();
    let project = new_id();
    cloud.ensure_project(project, "p", None, now);
    (cloud, project, now)
}

fn input(hostname: &str) -> CreateDevice {
    CreateDevice {
        hostname: Some(hostname.to_owned()),
        plan: Some("c3.small.x86".to_owned()),
        operating_system: Some("flatcar_stable".to_owned()),
        metro: Some("sv".to_owned()),
        ..CreateDevice::default()
    }
}

#[test]
fn machines_boot_ahead_in_creation_order_and_stay_up_until_deleted() {
    let (mut cloud, project, now) = cloud();
    let t = timings();
    let faults = DeviceFaults::default();
    let mut ids = Vec::new();
    for (i, host) in ["c0", "w0", "w1"].into_iter().enumerate() {
        let at = now + chrono::Duration::seconds(i as i64);
        ids.push(
            cloud
                .create_device(project, input(host), &faults, 0.5, at, &t)
                .unwrap(),
        );
    }
    let started = |changes: &[NodeChange]| -> Vec<Uuid> {
        changes
            .iter()
            .filter_map(|c| match c {
                NodeChange::Start(d) => Some(d.id),
                NodeChange::Stop(_) => None,
            })
            .collect()
    };
    let lead = chrono::Duration::seconds(20);
    let before = cloud.devices[&ids[0]].active_at(&t) - chrono::Duration::seconds(15);
    // Not yet due: nothing for a request's sync.
    assert!(
        cloud
            .node_changes(before, before + lead, usize::MAX, &t)
            .is_empty()
    );
    // Ahead: the first created first, at most a batch at a time.
    let first = cloud.node_changes(before + lead, before + lead, 2, &t);
    assert_eq!(started(&first), ids[..2].to_vec());
    let rest = cloud.node_changes(before + lead, before + lead, 2, &t);
    assert_eq!(started(&rest), ids[2..].to_vec());
    // Still provisioning, but running ahead: a request's sync keeps them.
    assert_eq!(
        cloud.devices[&ids[0]].status(before, &t),
        Status::Provisioning
    );
    assert!(
        cloud
            .node_changes(before, before + lead, usize::MAX, &t)
            .is_empty()
    );
    // Deleted: stopped at once.
    cloud
        .delete_device(&ids[1].to_string(), before, &t)
        .unwrap();
    let changes = cloud.node_changes(before, before + lead, usize::MAX, &t);
    assert!(matches!(changes.as_slice(), [NodeChange::Stop(id)] if *id == ids[1]));
}

#[test]
fn states_follow_the_clock() {
    let (mut cloud, project, now) = cloud();
    let t = timings();
    let id = cloud
        .create_device(project, input("a"), &DeviceFaults::default(), 0.5, now, &t)
        .unwrap();
    let d = &cloud.devices[&id];
    assert_eq!(d.status(now, &t), Status::Queued);
    assert_eq!(d.status(now + t.queued(), &t), Status::Provisioning);
    assert_eq!(
        d.status(now + t.queued() + t.provisioning(), &t),
        Status::Active
    );
    cloud.delete_device(&id.to_string(), now, &t).unwrap();
    let d = &cloud.devices[&id];
    assert_eq!(d.status(now, &t), Status::Deprovisioning);
    assert_eq!(d.status(now + t.deprovisioning(), &t), Status::Gone);
}

#[test]
fn addresses_are_distinct_loopback_and_private() {
    let (mut cloud, project, now) = cloud();
    let t = timings();
    let mut seen = BTreeSet::new();
    for i in 0..5 {
        let id = cloud
            .create_device(
                project,
                input(&format!("n{i}")),
                &DeviceFaults::default(),
                0.5,
                now,
                &t,
            )
            .unwrap();
        let d = &cloud.devices[&id];
        assert!(d.public_ipv4.is_loopback() && d.public_ipv4 != Ipv4Addr::LOCALHOST);
        assert!(d.private_ipv4.is_private());
        assert!(seen.insert(d.public_ipv4) && seen.insert(d.private_ipv4));
    }
}

#[test]
fn a_seeded_private_block_gives_its_addresses_and_reuses_a_gone_devices() {
    let now = Utc::now();
    let t = timings();
    let mut cloud = PacketCloud::default();
    let project = new_id();
    // A /29 holds four /31s.
    let block = PrivateBlock::new(Ipv4Addr::new(10, 128, 156, 0), 29).unwrap();
    cloud.ensure_project(project, "p", Some(block), now);
    let faults = DeviceFaults::default();
    let mut ids = Vec::new();
    for i in 0..4 {
        let id = cloud
            .create_device(project, input(&format!("n{i}")), &faults, 0.5, now, &t)
            .unwrap();
        ids.push(id);
    }
    let private: Vec<String> = ids
        .iter()
        .map(|id| cloud.devices[id].private_ipv4.to_string())
        .collect();
    assert_eq!(
        private,
        [
            "10.128.156.1",
            "10.128.156.3",
            "10.128.156.5",
            "10.128.156.7"
        ]
    );
    let full = cloud
        .create_device(project, input("n4"), &faults, 0.5, now, &t)
        .unwrap_err();
    assert!(format!("{full:?}").contains("10.128.156.0/29"), "{full:?}");
    cloud.delete_device(&ids[1].to_string(), now, &t).unwrap();
    // Still deprovisioning: its address is held.
    assert!(
        cloud
            .create_device(project, input("n4"), &faults, 0.5, now, &t)
            .is_err()
    );
    let later = now + t.deprovisioning();
    let id = cloud
        .create_device(project, input("n4"), &faults, 0.5, later, &t)
        .unwrap();
    assert_eq!(
        cloud.devices[&id].private_ipv4,
        Ipv4Addr::new(10, 128, 156, 3)
    );
}

#[test]
fn a_private_block_is_a_private_aligned_block_of_31s() {
    assert!(PrivateBlock::new(Ipv4Addr::new(10, 128, 156, 0), 25).is_ok());
    assert!(PrivateBlock::new(Ipv4Addr::new(10, 128, 156, 32), 25).is_err());
    assert!(PrivateBlock::new(Ipv4Addr::new(147, 75, 0, 0), 25).is_err());
    assert!(PrivateBlock::new(Ipv4Addr::new(10, 0, 0, 0), 31).is_err());
}
