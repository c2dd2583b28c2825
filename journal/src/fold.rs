//! Folding events into state. This is the only place that interprets events: the engine's
//! resume, `loko journal` and `loko status` all read what this fold derives, and nothing else
//! about progress is stored.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::event::{Event, Record, RecordedSpec, RunKind, RunOutcome};
use crate::ids::{Digest, RunId, Seq, StepId};
use crate::secrets::Outputs;

/// An intent recorded before a side effect.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Intent {
    pub effect: String,
    pub detail: Outputs,
    pub at_ms: u64,
}

/// How an attempt ended.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum AttemptEnd {
    /// Started but no outcome was recorded: the process died or is still running it.
    Unfinished,
    Succeeded {
        outputs: Outputs,
        duration_ms: u64,
        at_ms: u64,
    },
    Failed {
        error: String,
        retryable: bool,
        duration_ms: u64,
        at_ms: u64,
    },
}

/// One attempt of a step.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Attempt {
    pub attempt: u32,
    pub started_at_ms: u64,
    pub inputs_digest: Digest,
    pub intents: Vec<Intent>,
    pub end: AttemptEnd,
}

/// What one run did to one step.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct StepHistory {
    pub attempts: Vec<Attempt>,
    /// Set when the step was skipped because this dependency failed.
    pub skipped_because: Option<StepId>,
}

/// Everything a run did, for the audit.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunState {
    pub id: RunId,
    pub kind: RunKind,
    pub spec_digest: Digest,
    pub spec: RecordedSpec,
    /// The plan's step ids; runs of an unchanged plan share one list.
    pub plan: Arc<[StepId]>,
    pub started_at_ms: u64,
    pub started_by: String,
    /// When and by whom the run was resumed, in order.
    pub resumes: Vec<(u64, String)>,
    /// The latest end of the run; a resumed run that ends again replaces it.
    pub ended: Option<(u64, RunOutcome)>,
    pub steps: BTreeMap<StepId, StepHistory>,
    pub events: u64,
    pub last_seq: Seq,
}

impl RunState {
    /// True when the run ended with every step done. Any other run can be resumed.
    pub fn succeeded(&self) -> bool {
        matches!(self.ended, Some((_, RunOutcome::Succeeded)))
    }
}

/// The latest success of a step, in whichever run it happened.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepResult {
    pub run: RunId,
    pub attempt: u32,
    pub inputs_digest: Digest,
    pub outputs: Outputs,
    pub at_ms: u64,
}

/// The state of a cluster's journal: every run, and the ledger of step results that resume and
/// later runs build on.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ClusterState {
    pub runs: BTreeMap<RunId, RunState>,
    /// Per step, its latest success not invalidated since.
    pub ledger: BTreeMap<StepId, StepResult>,
    /// Per step, the highest attempt number ever started, so attempt numbers never repeat.
    pub attempts: BTreeMap<StepId, u32>,
}

/// An event that contradicts the events before it.
#[derive(Debug, thiserror::Error)]
pub enum FoldError {
    #[error("event for run {0}, which never started")]
    UnknownRun(RunId),
    #[error("run {0} started twice")]
    RunStartedTwice(RunId),
    /// Only the newest run takes events: a run is resumed or a new one begun, never an older
    /// one written to. (This keeps every new record after every earlier one in store order,
    /// which snapshots rely on.)
    #[error("event for run {run}, but run {last} is newer; only the newest run takes events")]
    NotLastRun { run: RunId, last: RunId },
    #[error("step {step} reports attempt {attempt}, which never started")]
    UnknownAttempt { step: StepId, attempt: u32 },
}

impl ClusterState {
    /// `plan`, sharing the latest run's list when it is the same: a cluster reruns one plan
    /// week after week, and a 5,000-node plan is 10,000 step ids.
    pub(crate) fn shared_plan(&self, plan: Vec<StepId>) -> Arc<[StepId]> {
        match self.runs.values().next_back() {
            Some(last) if *last.plan == *plan => Arc::clone(&last.plan),
            _ => Arc::from(plan),
        }
    }

    /// `spec`, sharing the latest run's text when it is the same: most runs of a cluster apply
    /// the spec of the run before, and a 5,000-node desired cluster is over a megabyte of JSON.
    pub(crate) fn shared_spec(&self, spec: RecordedSpec) -> RecordedSpec {
        match self.runs.values().next_back() {
            Some(last) if last.spec == spec => last.spec.clone(),
            _ => spec,
        }
    }

    /// The run with the highest id.
    pub fn last_run(&self) -> Option<&RunState> {
        self.runs.values().next_back()
    }

    /// Checks that `event` fits the events before it: a run starts once, events belong to a
    /// started run, and an attempt's intent or outcome follows its start.
    pub fn admits(&self, run: RunId, event: &Event) -> Result<(), FoldError> {
        let state = match (event, self.runs.get(&run)) {
            (Event::RunStarted { .. }, Some(_)) => return Err(FoldError::RunStartedTwice(run)),
            (Event::RunStarted { .. }, None) => {
                return match self.last_run().map(|r| r.id).filter(|last| *last > run) {
                    Some(last) => Err(FoldError::NotLastRun { run, last }),
                    None => Ok(()),
                };
            }
            (_, None) => return Err(FoldError::UnknownRun(run)),
            (_, Some(state)) => state,
        };
        if let Some(last) = self.last_run().map(|r| r.id).filter(|last| *last != run) {
            return Err(FoldError::NotLastRun { run, last });
        }
        match event {
            Event::StepIntent { step, attempt, .. }
            | Event::StepSucceeded { step, attempt, .. }
            | Event::StepFailed { step, attempt, .. } => {
                let started = state
                    .steps
                    .get(step)
                    .is_some_and(|h| h.attempts.iter().any(|a| a.attempt == *attempt));
                if started {
                    Ok(())
                } else {
                    Err(FoldError::UnknownAttempt {
                        step: step.clone(),
                        attempt: *attempt,
                    })
                }
            }
            _ => Ok(()),
        }
    }

    /// Applies one event that [`ClusterState::admits`] accepted. The journal calls this for
    /// every record it reads at open and for every append, so the state in memory always equals
    /// the fold of the store.
    pub(crate) fn apply_admitted(&mut self, run: RunId, seq: Seq, record: Record) {
        let at = record.at_ms;
        if let Event::RunStarted {
            kind,
            spec_digest,
            spec,
            plan,
            by,
        } = record.event
        {
            let plan = self.shared_plan(plan);
            let spec = self.shared_spec(spec);
            self.runs.insert(
                run,
                RunState {
                    id: run,
                    kind,
                    spec_digest,
                    spec,
                    plan,
                    started_at_ms: at,
                    started_by: by,
                    resumes: Vec::new(),
                    ended: None,
                    steps: BTreeMap::new(),
                    events: 1,
                    last_seq: seq,
                },
            );
            return;
        }
        let Some(state) = self.runs.get_mut(&run) else {
            return;
        };
        state.events += 1;
        state.last_seq = seq;
        match record.event {
            Event::RunStarted { .. } => {}
            Event::RunResumed { plan, by } => {
                state.plan = Arc::from(plan);
                state.resumes.push((at, by));
            }
            Event::StepStarted {
                step,
                attempt,
                inputs_digest,
            } => {
                let max = self.attempts.entry(step.clone()).or_default();
                *max = (*max).max(attempt);
                let history = state.steps.entry(step).or_default();
                history.skipped_because = None;
                history.attempts.push(Attempt {
                    attempt,
                    started_at_ms: at,
                    inputs_digest,
                    intents: Vec::new(),
                    end: AttemptEnd::Unfinished,
                });
            }
            Event::StepIntent {
                step,
                attempt,
                effect,
                detail,
            } => {
                if let Some(a) = attempt_mut(state, &step, attempt) {
                    a.intents.push(Intent {
                        effect,
                        detail,
                        at_ms: at,
                    });
                }
            }
            Event::StepSucceeded {
                step,
                attempt,
                inputs_digest,
                outputs,
                duration_ms,
                invalidates,
            } => {
                if let Some(a) = attempt_mut(state, &step, attempt) {
                    a.end = AttemptEnd::Succeeded {
                        outputs: outputs.clone(),
                        duration_ms,
                        at_ms: at,
                    };
                }
                for stale in &invalidates {
                    self.ledger.remove(stale);
                }
                self.ledger.insert(
                    step,
                    StepResult {
                        run,
                        attempt,
                        inputs_digest,
                        outputs,
                        at_ms: at,
                    },
                );
            }
            Event::StepFailed {
                step,
                attempt,
                error,
                retryable,
                duration_ms,
            } => {
                if let Some(a) = attempt_mut(state, &step, attempt) {
                    a.end = AttemptEnd::Failed {
                        error,
                        retryable,
                        duration_ms,
                        at_ms: at,
                    };
                }
            }
            Event::StepSkipped { step, because } => {
                state.steps.entry(step).or_default().skipped_because = Some(because);
            }
            Event::DriftDetected { steps, .. } => {
                for stale in &steps {
                    self.ledger.remove(stale);
                }
            }
            // The re-sealed files are stored beside the records, not folded: the event is for
            // the audit, and nothing the engine resumes from depends on it.
            Event::AssetsResealed { .. } => {}
            Event::RunEnded { outcome } => {
                state.ended = Some((at, outcome));
            }
        }
    }
}

fn attempt_mut<'a>(
    state: &'a mut RunState,
    step: &StepId,
    attempt: u32,
) -> Option<&'a mut Attempt> {
    state
        .steps
        .get_mut(step)
        .and_then(|h| h.attempts.iter_mut().rev().find(|a| a.attempt == attempt))
}
