//! What the journal knows of the cluster: the desired cluster of the latest run, the nodes any
//! run planned a device for, the steps recorded and the creates sent but not recorded. The DAG
//! builders, `loko plan`'s changes and the refresh read it.

use std::collections::{BTreeMap, BTreeSet};

use journal::{ClusterState, RunKind, StepId};
use specs::DesiredCluster;

use crate::packet::CREATE_INTENT;
use crate::step_name::StepName;

/// What the journal knows of the cluster, for change classification and deletions.
#[derive(Clone, Debug, Default)]
pub struct History {
    /// The desired cluster of the latest `loko run` since the last destroy, finished or not.
    pub previous: Option<DesiredCluster>,
    /// Every node any run since the last destroy planned a device for: such a node may have a
    /// device, so one that leaves the spec is deleted.
    pub known_nodes: BTreeSet<String>,
    /// Steps with a recorded success (the journal's ledger).
    pub recorded: BTreeSet<StepId>,
    /// Nodes whose device create was sent (its intent is journaled) but whose result was not
    /// recorded: a run looks for that device by tag and adopts it before creating one.
    pub intended: BTreeMap<String, journal::RunId>,
    /// Nodes whose recorded device the cloud no longer has (by the refresh,
    /// [`crate::refresh`]), with the run that recorded it: the run creates them again.
    pub gone: BTreeMap<String, journal::RunId>,
    /// The rack machine of each node any run since the last destroy booted or planned to boot
    /// (the latest run's word for each): what a node that left the spec powers off, though the
    /// latest spec no longer lists it.
    pub machines: BTreeMap<String, specs::Machine>,
    /// When the latest `loko run` that built something started or last resumed (ms since the
    /// epoch): the bootstrap token's window its kubeconfigs step was planned with.
    pub last_built_at_ms: Option<u64>,
}

/// The journal holds a desired cluster that this loko cannot read.
#[derive(Debug, thiserror::Error)]
#[error("run {run} recorded a desired cluster this loko cannot read: {reason}")]
pub struct HistoryError {
    pub run: journal::RunId,
    pub reason: String,
}

impl History {
    /// Reads the journal's folded state.
    pub fn read(state: &ClusterState) -> Result<History, HistoryError> {
        let mut history = History {
            recorded: state.ledger.keys().cloned().collect(),
            ..History::default()
        };
        // Only the latest run's desired cluster is read: a year of weekly runs of a large
        // cluster would otherwise parse fifty copies of it at every start.
        let mut latest: Option<(&journal::RunId, &journal::RunState)> = None;
        let mut planned: Option<&std::sync::Arc<[StepId]>> = None;
        for (id, run) in &state.runs {
            match run.kind {
                RunKind::Destroy => {
                    latest = None;
                    planned = None;
                    history.known_nodes.clear();
                    history.intended.clear();
                    history.machines.clear();
                }
                // A run that built nothing (a typo in `project_id` answered by a 404 before any
                // device) is no part of the cluster's identity: what exists is.
                RunKind::Apply if !built_something(run) => {}
                RunKind::Apply => {
                    latest = Some((id, run));
                    // Only a rack's runs are parsed here (a Packet run plans no machine step):
                    // a rack is tens of machines, and the desired cluster is read once.
                    if run
                        .plan
                        .iter()
                        .any(|s| matches!(StepName::from(s), StepName::Machine(_)))
                    {
                        let desired = desired_of(id, run)?;
                        history.machines.extend(
                            desired
                                .nodes
                                .into_iter()
                                .filter_map(|node| Some((node.hostname, node.machine?))),
                        );
                    }
                    // Runs of an unchanged plan share its list: its nodes are known already.
                    if !planned.is_some_and(|p| std::sync::Arc::ptr_eq(p, &run.plan)) {
                        history
                            .known_nodes
                            .extend(run.plan.iter().filter_map(StepName::device_host));
                        planned = Some(&run.plan);
                    }
                    for (step, steps) in &run.steps {
                        let Some(host) = StepName::device_host(step) else {
                            continue;
                        };
                        let created = steps
                            .attempts
                            .iter()
                            .any(|a| a.intents.iter().any(|i| i.effect == CREATE_INTENT));
                        if created {
                            history.intended.insert(host, *id);
                        }
                    }
                }
            }
        }
        if let Some((id, run)) = latest {
            history.last_built_at_ms = Some(
                run.resumes
                    .iter()
                    .map(|(at, _)| *at)
                    .fold(run.started_at_ms, u64::max),
            );
            history.previous = Some(desired_of(id, run)?);
        }
        history.intended.retain(|host, _| {
            !history
                .recorded
                .contains(&StepName::Device(host.clone()).id())
        });
        Ok(history)
    }
}

/// The desired cluster `run` recorded.
fn desired_of(
    id: &journal::RunId,
    run: &journal::RunState,
) -> Result<DesiredCluster, HistoryError> {
    let unreadable = |reason: String| HistoryError { run: *id, reason };
    let record = run.spec.value().map_err(|e| unreadable(e.to_string()))?;
    DesiredCluster::from_record(&record).map_err(|e| unreadable(e.to_string()))
}

/// True when `run` may have changed the cloud: a step other than the local ones (assets,
/// Ignition) journaled an intent (written before every create or delete) or succeeded.
fn built_something(run: &journal::RunState) -> bool {
    run.steps.iter().any(|(step, history)| {
        let local = StepName::from(step).is_local();
        history.attempts.iter().any(|a| {
            !a.intents.is_empty()
                || (!local && matches!(a.end, journal::AttemptEnd::Succeeded { .. }))
        })
    })
}
