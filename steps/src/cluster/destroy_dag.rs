//! The DAG of `loko destroy`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use engine::Dag;
use journal::StepId;
use specs::DesiredCluster;

use super::build::{BuildError, inputs, retire_step, step};
use crate::classes::{PACKET_API, ROUTE53};
use crate::history::History;
use crate::kinds::{
    DeleteDevicesKind, DeleteDevicesParams, DeleteRecordsKind, DeleteRecordsParams, MachineParams,
};
use crate::packet::cluster_tag;
use crate::step_name::StepName;

/// The DAG of `loko destroy`: on Packet, every device tagged with the cluster (also ones a
/// crash left unrecorded); in a rack, a `retire/<host>` step per machine the cluster has
/// ([`machines_to_retire`]); and the cluster's records. Every remote step's record is
/// invalidated, so a later `loko run` builds the cluster again; the assets (CA, keys) stay.
pub fn destroy_dag(desired: &DesiredCluster, history: &History) -> Result<Dag, BuildError> {
    let cluster = desired.settings.cluster_name.as_str();
    let names: Vec<String> = desired.dns_records.iter().map(|r| r.name.clone()).collect();
    // Each destroy runs again even when the last one succeeded: devices may have appeared
    // since, and a machine may have been powered on again.
    let nonce = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mut steps = Vec::new();
    // A rack's machines are powered off instead: no device is deleted.
    if desired.settings.provider() == specs::Provider::Packet {
        steps.push(
            step::<DeleteDevicesKind>(
                StepName::DestroyDevices.id(),
                inputs(&(cluster, nonce))?,
                &DeleteDevicesParams {
                    tag: cluster_tag(cluster),
                },
            )?
            .class(PACKET_API),
        );
    } else {
        for params in machines_to_retire(desired, history) {
            steps.push(retire_step(&params, inputs(&(&params, nonce))?)?);
        }
    }
    steps.push(
        step::<DeleteRecordsKind>(
            StepName::DestroyDns.id(),
            inputs(&(&names, nonce))?,
            &DeleteRecordsParams {
                zone_id: desired.settings.dns_zone_id.as_str().to_owned(),
                names,
            },
        )?
        .class(ROUTE53),
    );
    // The destroy's own steps are recorded by it, not forgotten by it.
    let own: BTreeSet<&StepId> = steps.iter().map(|s| s.id()).collect();
    let remote: Vec<StepId> = history
        .recorded
        .iter()
        .filter(|s| !StepName::from(*s).is_local() && !own.contains(s))
        .cloned()
        .collect();
    let steps = steps
        .into_iter()
        .map(|s| s.invalidates(remote.clone()))
        .collect();
    Ok(Dag::new(steps)?)
}

/// The rack machines `loko destroy` powers off, one per node, in hostname order: the machine
/// each node of the spec names, and the one the latest runs booted for it
/// ([`History::machines`]), so that a node that left the spec without being retired is
/// powered off too. Where the spec names another machine (another MAC) than the one booted,
/// the booted one is `replaces` and both are powered off. A node that left the spec and was
/// retired is not: its machine is no longer the cluster's. Empty on Packet.
pub fn machines_to_retire(desired: &DesiredCluster, history: &History) -> Vec<MachineParams> {
    let mut by_host: BTreeMap<&str, MachineParams> = BTreeMap::new();
    for (host, booted) in &history.machines {
        if desired.node(host).is_none()
            && StepName::removal_recorded(host, |id| history.recorded.contains(id))
        {
            continue;
        }
        by_host.insert(host, MachineParams::retiring(host, booted));
    }
    for node in &desired.nodes {
        let Some(machine) = &node.machine else {
            continue;
        };
        let params = by_host
            .entry(node.hostname.as_str())
            .or_insert_with(|| MachineParams::retiring(&node.hostname, machine));
        // The same MAC is the same machine: the spec's BMC address is the one that answers now.
        let booted = std::mem::replace(&mut params.machine, machine.clone());
        if booted.mac != machine.mac {
            params.replaces = Some(booted);
        }
    }
    by_host.into_values().collect()
}
