//! A cluster run by a team from any machine: its journal is bound to the cluster's identity,
//! so a spec of another cluster pointed at it is refused before anything else.

use std::path::Path;

use journal::{ClusterIdentity, Journal, JournalError};
use specs::DesiredCluster;

use crate::failure::UserError;
use crate::target::Target;

/// The identity the spec's cluster has (with a random id, kept only if it is the first).
pub(crate) fn wanted(desired: &DesiredCluster) -> anyhow::Result<ClusterIdentity> {
    let s = &desired.settings;
    ClusterIdentity::new(
        s.cluster_name.as_str(),
        s.dns_zone.as_str(),
        s.project_id.as_str(),
    )
    .map_err(|e| anyhow::anyhow!("cannot make the cluster's random id: {e}"))
}

/// Refuses `target` when its journal records another cluster than its spec names. Reads the
/// journal without its lock; a journal without an identity passes (its next run records it).
pub(crate) fn check(target: &Target, spec: &Path) -> anyhow::Result<()> {
    let Some(recorded) = journal::recorded_identity(&target.journal)? else {
        return Ok(());
    };
    let wanted = wanted(&target.desired)?;
    match recorded.same_cluster(&wanted) {
        true => Ok(()),
        false => Err(other_cluster(
            &target.journal.to_string(),
            &recorded,
            &wanted,
            spec,
        )),
    }
}

/// Binds the journal a run holds to the spec's cluster: recorded at the first run (or the
/// first of a journal from before identities), refused when it is another's.
pub(crate) fn bind(journal: &Journal, target: &Target, spec: &Path) -> anyhow::Result<()> {
    match journal.bind_identity(&wanted(&target.desired)?) {
        Ok(_) => Ok(()),
        Err(JournalError::OtherCluster {
            path,
            recorded,
            wanted,
        }) => Err(other_cluster(
            &path.display().to_string(),
            &recorded,
            &wanted,
            spec,
        )),
        Err(e) => Err(e.into()),
    }
}

fn other_cluster(
    journal: &str,
    recorded: &ClusterIdentity,
    wanted: &ClusterIdentity,
    spec: &Path,
) -> anyhow::Error {
    UserError::usage(
        format!(
            "journal {journal} belongs to cluster {recorded}; {} names {wanted}",
            spec.display()
        ),
        "a journal holds one cluster: give this spec its own --journal (another etcd prefix) or asset_dir, or use the spec of the cluster the journal holds",
    )
    .into()
}
