//! What a command works on: a spec's desired cluster, where its assets and state live, its
//! journal, the journal's history and the changes from it.

pub(crate) mod spec_target;

pub(crate) use spec_target::Target;

use std::path::Path;

use anyhow::Context as _;
use journal::{Journal, Location};
use specs::DesiredCluster;
use steps::changes::{self, Changes};
use steps::history::History;
use steps::refresh::Recorded;

use crate::cli::Global;
use crate::failure::{EXIT_USAGE, UserError};
use crate::output::errln;
use crate::spec_cmd::load_spec;

/// The target of a command that takes `--sim` (`run`, `destroy`, `status`): under `--sim`, a
/// rack's machines move to the demo's ([`crate::sim_rack::simulate`]), as every run of the demo
/// recorded them.
pub(crate) fn sim_target(global: &Global, spec_path: &Path, sim: bool) -> anyhow::Result<Target> {
    let mut target = target(global, spec_path)?;
    if sim {
        crate::sim_rack::simulate(&mut target.desired, &target.state_dir)?;
    }
    Ok(target)
}

/// For a command without `--sim` (`loko plan`, `loko graph`): when the journal is a rack demo's
/// (its latest run's machines answer at the demo's BMC for this state directory), the spec's
/// machines as the demo moved them, so that the demo's journal is not read as every machine's
/// address changed.
pub(crate) fn as_demo_recorded(target: &mut Target, history: &History) -> anyhow::Result<()> {
    let Some(previous) = &history.previous else {
        return Ok(());
    };
    if target.boot_server.is_none() {
        return Ok(());
    }
    let mut demo = target.desired.clone();
    crate::sim_rack::simulate(&mut demo, &target.state_dir)?;
    let bmcs = |d: &DesiredCluster| -> Vec<String> {
        d.nodes
            .iter()
            .filter_map(|n| Some(n.machine.as_ref()?.bmc.url.clone()))
            .collect()
    };
    let demo_bmcs = bmcs(&demo);
    if bmcs(previous).iter().any(|url| demo_bmcs.contains(url)) {
        target.desired = demo;
    }
    Ok(())
}

/// The spec's desired cluster, where its assets, state and journal live; refused when the
/// journal is another cluster's ([`crate::team::check`]).
pub(crate) fn target(global: &Global, spec_path: &Path) -> anyhow::Result<Target> {
    let spec = load_spec(spec_path)?;
    // Absolute paths: they are recorded, shown, and handed to the simulator's nodes.
    let absolute = |path: &Path| {
        std::path::absolute(path)
            .with_context(|| format!("cannot resolve the path {}", path.display()))
    };
    let assets = absolute(&spec.asset_dir)?;
    let state_dir = match &global.state_dir {
        Some(dir) => absolute(dir)?,
        None => assets.join(".loko"),
    };
    let target = Target {
        desired: spec.desired(),
        assets,
        journal: crate::journal_location::location(global, &state_dir)?,
        state_dir,
        endpoints: spec.endpoints.clone(),
        boot_server: spec.boot_server.clone(),
    };
    // Before anything else: a journal of another cluster is never read as this one's.
    crate::team::check(&target, spec_path)?;
    Ok(target)
}

pub(crate) fn history(journal: &Journal) -> anyhow::Result<History> {
    journal
        .with_state(History::read)
        .map_err(anyhow::Error::from)
}

/// The journal's history for a command that only reads it (`loko plan`, `loko graph`): it
/// takes no lock, so it is safe while a run holds the journal, and creates no directory (see
/// [`journal::read_state`]). With a run in progress, a note says the history is as of that
/// run's last durable step.
///
/// An etcd journal is read as it is (without its lock: readers need none there), so a run in
/// progress shows as far as its last committed append.
///
/// With the history, what its ledger says exists in the cloud (for the refresh).
pub(crate) fn read_history(target: &Target) -> anyhow::Result<(History, Recorded)> {
    let dir = match &target.journal {
        Location::Dir(dir) => dir,
        etcd @ Location::Etcd(_) => {
            let journal = Journal::open_read_only(etcd)?;
            return Ok((history(&journal)?, journal.with_state(Recorded::read)));
        }
    };
    let view = journal::read_state(dir)?;
    if let Some(holder) = &view.live_holder {
        errln!("note: a run is in progress ({holder}); this is as of its last recorded step");
    }
    Ok((History::read(&view.state)?, Recorded::read(&view.state)))
}

/// Refused changes are usage errors naming each field.
pub(crate) fn changes(desired: &DesiredCluster, history: &History) -> anyhow::Result<Changes> {
    changes::changes(desired, history).map_err(|refused| {
        UserError {
            message: refused.to_string(),
            code: EXIT_USAGE,
            hint: Some(
                "only adding a worker pool, scaling a pool (even to 0) and changing a pool's type can change after installation; \
                 put the field back, or destroy the cluster and create it again"
                    .into(),
            ),
        }
        .into()
    })
}
