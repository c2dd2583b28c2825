//! The DAG of `loko destroy`.

use std::time::SystemTime;

use engine::Dag;
use journal::StepId;
use specs::DesiredCluster;

use super::build::{BuildError, inputs, step};
use crate::classes::{PACKET_API, ROUTE53};
use crate::history::History;
use crate::kinds::{
    DeleteDevicesKind, DeleteDevicesParams, DeleteRecordsKind, DeleteRecordsParams,
};
use crate::packet::cluster_tag;
use crate::step_name::StepName;

/// The DAG of `loko destroy`: every device tagged with the cluster (also ones a crash left
/// unrecorded) and the cluster's records. Every remote step's record is invalidated, so a later
/// `loko run` builds the cluster again; the assets (CA, keys) stay.
pub fn destroy_dag(desired: &DesiredCluster, history: &History) -> Result<Dag, BuildError> {
    let remote: Vec<StepId> = history
        .recorded
        .iter()
        .filter(|s| {
            let name = StepName::from(*s);
            !name.is_local() && name.family() != StepName::DestroyDevices.family()
        })
        .cloned()
        .collect();
    let cluster = desired.settings.cluster_name.as_str();
    let names: Vec<String> = desired.dns_records.iter().map(|r| r.name.clone()).collect();
    // Each destroy runs again even when the last one succeeded: devices may have appeared since.
    let nonce = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    Ok(Dag::new(vec![
        step::<DeleteDevicesKind>(
            StepName::DestroyDevices.id(),
            inputs(&(cluster, nonce))?,
            &DeleteDevicesParams {
                tag: cluster_tag(cluster),
            },
        )?
        .class(PACKET_API)
        .invalidates(remote.clone()),
        step::<DeleteRecordsKind>(
            StepName::DestroyDns.id(),
            inputs(&(&names, nonce))?,
            &DeleteRecordsParams {
                zone_id: desired.settings.dns_zone_id.as_str().to_owned(),
                names,
            },
        )?
        .class(ROUTE53)
        .invalidates(remote),
    ])?)
}
