//! Devices with the cluster's tags that its journal did not make (`steps::refresh::foreign`):
//! another journal's, which a run never takes, or this cluster's after its journal was lost,
//! which `loko run --adopt` takes over once the user saw them and said yes. A device is
//! adoptable only with the cluster id of this asset directory's CA (its `loko:cluster-id=`
//! tag): nodes trust the CA they were made with, and loko never makes a new one in place of a
//! CA it did not find.

use specs::DesiredCluster;
use steps::packet::{CLUSTER_ID_TAG_PREFIX, Device, node_tag};

use crate::failure::UserError;

/// What `loko run` was asked about adoption.
pub(crate) struct Adoption {
    /// `--adopt`.
    pub(crate) asked: bool,
    /// `--yes`: no question on a terminal, and the answer without one.
    pub(crate) yes: bool,
    /// The cluster id of the asset directory's CA; none before the CA exists.
    pub(crate) cluster_id: Option<String>,
}

/// Whether the run may go on with `foreign` devices in the cloud: with none, or when every one
/// is adoptable (this CA's cluster id, a node of the spec, the spec's type) and adoption was
/// asked for and agreed to. Otherwise a usage error before any change.
pub(crate) fn admit(
    foreign: &[&Device],
    desired: &DesiredCluster,
    location: &journal::Location,
    adoption: &Adoption,
) -> anyhow::Result<()> {
    if foreign.is_empty() {
        return Ok(());
    }
    let adoptable: Vec<&Device> = foreign
        .iter()
        .copied()
        .filter(|d| adoptable(d, desired, adoption.cluster_id.as_deref()))
        .collect();
    if adoptable.len() < foreign.len() || !adoption.asked {
        let mut refused = refusal(foreign, desired, location);
        if adoptable.len() == foreign.len() {
            refused.hint = Some(format!(
                "they carry this asset directory's cluster id: if this cluster's journal was lost, \
                 take them over with loko run --adopt (they are listed, and need a yes); {}",
                refused.hint.unwrap_or_default()
            ));
        }
        return Err(refused.into());
    }
    let lines: Vec<String> = adoptable.iter().map(|d| line(d)).collect();
    crate::guard::adoptions(&lines, adoption.yes)
}

/// A device of a node of the spec, of the spec's type, tagged with `ours`.
fn adoptable(device: &Device, desired: &DesiredCluster, ours: Option<&str>) -> bool {
    let Some(ours) = ours else {
        return false;
    };
    cluster_id(device) == Some(ours)
        && desired.nodes.iter().any(|n| {
            device.has_tag(&node_tag(&n.hostname))
                && device.plan_slug().is_none_or(|p| p == n.plan.as_str())
        })
}

fn cluster_id(device: &Device) -> Option<&str> {
    device
        .tags
        .iter()
        .find_map(|t| t.strip_prefix(CLUSTER_ID_TAG_PREFIX))
}

fn line(device: &Device) -> String {
    let id = cluster_id(device).map_or("no cluster id".to_owned(), |id| format!("cluster id {id}"));
    format!(
        "device {} ({}, {}, {}, {id})",
        device.id,
        device.hostname,
        device.plan_slug().unwrap_or("?"),
        device.state
    )
}

/// The run stops before any change: `foreign` devices carry the cluster's tags but this journal
/// did not make them.
pub(crate) fn refusal(
    foreign: &[&Device],
    desired: &DesiredCluster,
    location: &journal::Location,
) -> UserError {
    let list: String = foreign
        .iter()
        .map(|d| format!("\n  - {}", line(d)))
        .collect();
    UserError::usage(
        format!(
            "{} device(s) tagged loko:cluster={} were not made by this cluster's journal ({location}); \
             nothing was changed:{list}",
            foreign.len(),
            desired.settings.cluster_name
        ),
        "they belong to another journal: a copy of this spec run from another directory, or a \
         cluster of the same name; run loko with that journal (its state directory or \
         --journal), or give this cluster another cluster_name",
    )
}
