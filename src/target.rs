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

/// The target of `loko run`, which checks a rack's setup before it says its machines cannot be
/// provisioned yet; `--sim` moves a rack's machines to the demo's ([`crate::sim_rack::simulate`]).
pub(crate) fn run_target(global: &Global, spec_path: &Path, sim: bool) -> anyhow::Result<Target> {
    let mut target = any_target(global, spec_path)?;
    if sim {
        crate::sim_rack::simulate(&mut target.desired, &target.state_dir)?;
    }
    Ok(target)
}

pub(crate) fn target(global: &Global, spec_path: &Path) -> anyhow::Result<Target> {
    let target = any_target(global, spec_path)?;
    if target.boot_server.is_some() {
        // The spec and the Redfish client exist; the steps that boot listed machines are not
        // in the DAG yet, and a run must not pretend to provision them.
        return Err(UserError {
            message: format!(
                "{}: provider: redfish is checked (loko validate) but not provisioned yet",
                spec_path.display()
            ),
            code: EXIT_USAGE,
            hint: Some(
                "plan, destroy and status take Packet clusters only for now; loko run checks a rack's setup (issue 29)".into(),
            ),
        }
        .into());
    }
    Ok(target)
}

fn any_target(global: &Global, spec_path: &Path) -> anyhow::Result<Target> {
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
