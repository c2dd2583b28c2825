//! The executor: runs a [`Dag`] on tokio, journaling every transition, resuming from the
//! journal's ledger.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use journal::{
    AttemptEnd, ClusterState, Digest, Event, Intent, Journal, JournalError, Outputs, RunId,
    RunKind, RunOutcome, StepId,
};
use petgraph::Direction;
use petgraph::graph::NodeIndex;
use petgraph::visit::{Bfs, Walker};
use serde_json::Value;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::actions::Actions;
use crate::attempts::{Attempts, StepEnd};
use crate::dag::Dag;
use crate::kind::ActionKind;
use crate::limit::ClassLimit;
use crate::observe::{Notice, NoticeKind, Observer, Silent};
use crate::step::{ResourceClass, StepDef};

/// What a run is for: recorded in `RunStarted`, and compared to decide whether an unfinished
/// run is continued (same kind and spec digest) or a new run starts.
#[derive(Clone, Debug)]
pub struct RunRequest {
    pub kind: RunKind,
    pub spec_digest: Digest,
    /// The desired state, recorded for the audit and the next run's change classification.
    pub spec: Value,
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Every step was already done with the same inputs: nothing ran and nothing was journaled,
    /// or only the steps that check the world now ([`StepDef::checks_now`]) ran, in a run of
    /// their own, and found it as recorded.
    UpToDate,
    /// Every step succeeded.
    Succeeded,
    /// Steps failed for good; their dependents were skipped. Resumable.
    Failed {
        failed: Vec<(StepId, String)>,
        skipped: Vec<(StepId, StepId)>,
    },
    /// Cancelled before every step ran. Resumable.
    Interrupted,
}

/// The result of [`Engine::run`].
#[derive(Clone, Debug, PartialEq)]
pub struct RunReport {
    /// The run's id; `None` when nothing needed to be done.
    pub run: Option<RunId>,
    /// True when the run continued an unfinished one.
    pub resumed: bool,
    pub outcome: Outcome,
    /// Steps that ran at least one attempt.
    pub executed: Vec<StepId>,
    /// Steps whose recorded results were reused.
    pub reused: usize,
}

/// The engine stopped because the journal failed; the run is resumable from what was durable.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The DAG names a kind of step the run's [`Actions`] does not bind. Found before
    /// anything is journaled.
    #[error("step {step} is of kind {kind}, which no action is bound to")]
    Unbound { step: StepId, kind: ActionKind },
}

/// What the world showed before a run that contradicts the journal: the steps whose recorded
/// results no longer hold (a device the ledger says exists is gone), and what was seen, one
/// sentence each. The run journals it (`drift_detected`) and does those steps again.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Drift {
    pub steps: Vec<StepId>,
    pub found: Vec<String>,
}

/// The cluster's stored assets were sealed again to new recipients before a run (the facts of
/// `assets_resealed`, public keys and digests only). The run journals it with its first
/// records, which carry the re-sealed files.
#[derive(Clone, Debug, PartialEq)]
pub struct Resealed {
    /// Digests of the recipient sets the files were sealed to before.
    pub from: Vec<String>,
    /// The digest of the recipients they are sealed to now.
    pub to: String,
    /// How many files were sealed again.
    pub files: u64,
    /// Recipients added, by public key.
    pub added: Vec<String>,
    /// Recipients removed, by public key.
    pub removed: Vec<String>,
}

/// Runs DAGs against one cluster's journal.
pub struct Engine {
    journal: Arc<Journal>,
    limits: HashMap<ResourceClass, usize>,
    default_limit: usize,
    observer: Arc<dyn Observer>,
    drift: Drift,
    resealed: Option<Resealed>,
}

impl Engine {
    /// An engine over `journal` with a default limit of 16 concurrent steps per resource class.
    pub fn new(journal: Arc<Journal>) -> Engine {
        Engine {
            journal,
            limits: HashMap::new(),
            default_limit: 16,
            observer: Arc::new(Silent),
            drift: Drift::default(),
            resealed: None,
        }
    }

    /// The world contradicts the journal: before its steps, the run journals `drift` and
    /// forgets the recorded results of its steps, so that they run again (with everything that
    /// depends on what they produce).
    pub fn drift(mut self, drift: Drift) -> Engine {
        self.drift = drift;
        self
    }

    /// The assets were sealed again before the run: it journals `resealed` right after it
    /// starts (a new run even when every step is up to date, so that the re-sealed files,
    /// handed to the journal's next append, are stored).
    pub fn resealed(mut self, resealed: Option<Resealed>) -> Engine {
        self.resealed = resealed;
        self
    }

    /// At most `limit` steps of `class` run at once (at least 1).
    pub fn limit(mut self, class: ResourceClass, limit: usize) -> Engine {
        self.limits.insert(class, limit.max(1));
        self
    }

    /// Reports step transitions to `observer`.
    pub fn observer(mut self, observer: Arc<dyn Observer>) -> Engine {
        self.observer = observer;
        self
    }

    /// The journal.
    pub fn journal(&self) -> &Arc<Journal> {
        &self.journal
    }

    /// Runs `plan` to completion, failure or cancellation.
    ///
    /// - If every step already succeeded with the same inputs and the last run completed,
    ///   returns [`Outcome::UpToDate`] without journaling anything (with steps that check now,
    ///   after a run of only those).
    /// - Steps of the engine's [`Drift`] whose results the ledger holds are forgotten first
    ///   (journaled as `drift_detected`), so they run again.
    /// - The engine's [`Resealed`], if any, is journaled (`assets_resealed`) after the run
    ///   starts or resumes.
    /// - If the last run did not succeed and had the same kind and spec digest, continues it
    ///   (`RunResumed`); otherwise starts a new run.
    /// - A step whose recorded result has the same inputs digest is reused; any other step
    ///   runs, and a step that started without an outcome runs again (and must reconcile).
    /// - Every step's kind must be bound in `actions` ([`EngineError::Unbound`] otherwise,
    ///   before anything is journaled).
    pub async fn run(
        &self,
        dag: &Dag,
        actions: &Actions,
        request: RunRequest,
        cancel: CancellationToken,
    ) -> Result<RunReport, EngineError> {
        if let Some(step) = dag.steps().find(|s| actions.get(&s.kind).is_none()) {
            return Err(EngineError::Unbound {
                step: step.id.clone(),
                kind: step.kind.clone(),
            });
        }
        let mut prior = self.journal.with_state(Prior::take);
        // Only what the ledger still holds can be forgotten: a step the journal never recorded
        // runs anyway.
        let stale: Vec<StepId> = self
            .drift
            .steps
            .iter()
            .filter(|s| prior.ledger.contains_key(*s))
            .cloned()
            .collect();
        if stale.is_empty()
            && self.resealed.is_none()
            && prior.last_succeeded_or_none
            && !dag.steps().any(StepDef::is_checked_now)
            && up_to_date(dag, &prior.ledger)
        {
            return Ok(RunReport {
                run: None,
                resumed: false,
                outcome: Outcome::UpToDate,
                executed: Vec::new(),
                reused: dag.len(),
            });
        }
        let ids = dag.step_ids();
        let resumable = prior
            .last_unfinished
            .as_ref()
            // A destroy that failed is not continued by `loko run`, nor the reverse: a run
            // resumes only a run of its own kind.
            .filter(|(_, kind, digest)| *kind == request.kind && *digest == request.spec_digest)
            .map(|(run, _, _)| *run);
        let (run, resumed) = match resumable {
            Some(run) => {
                self.journal.resume_run(run, ids).await?;
                (run, true)
            }
            None => {
                let run = self
                    .journal
                    .begin_run(request.kind, request.spec_digest, request.spec, ids)
                    .await?;
                (run, false)
            }
        };
        let drifted = !stale.is_empty();
        if drifted {
            for step in &stale {
                prior.ledger.remove(step);
            }
            self.journal
                .append(
                    run,
                    Event::DriftDetected {
                        steps: stale,
                        found: self.drift.found.clone(),
                    },
                )
                .await?;
        }
        if let Some(r) = &self.resealed {
            let event = Event::AssetsResealed {
                from: r.from.clone(),
                to: r.to.clone(),
                files: r.files,
                added: r.added.clone(),
                removed: r.removed.clone(),
            };
            self.journal.append(run, event).await?;
        }
        self.observer.run_started(run, resumed, dag.len());
        let mut exec = Execution {
            engine: self,
            dag,
            actions,
            run,
            prior,
            cancel,
            limits: HashMap::new(),
            remaining: dag
                .graph
                .node_indices()
                .map(|n| dag.graph.neighbors_directed(n, Direction::Incoming).count())
                .collect(),
            outputs: vec![None; dag.graph.node_count()],
            settled: vec![false; dag.graph.node_count()],
            skipped_because: vec![None; dag.graph.node_count()],
            moot: (0..dag.graph.node_count())
                .map(|_| CancellationToken::new())
                .collect(),
            ready: VecDeque::new(),
            tasks: JoinSet::new(),
            failed: Vec::new(),
            skipped: Vec::new(),
            executed: Vec::new(),
            reused: 0,
            interrupted: false,
        };
        let outcome = exec.drive().await;
        let (executed, reused) = (exec.executed, exec.reused);
        let checks: Vec<&StepId> = dag
            .steps()
            .filter(|s| s.is_checked_now())
            .map(StepDef::id)
            .collect();
        let outcome = match outcome {
            // Nothing changed: the only steps that ran check the world now, and found it right.
            Ok(Outcome::Succeeded)
                if !drifted && executed.iter().all(|id| checks.contains(&id)) =>
            {
                Outcome::UpToDate
            }
            Ok(outcome) => outcome,
            Err(e) => {
                // The journal failed: stop everything; what was durable is the resume point.
                exec.cancel.cancel();
                exec.tasks.shutdown().await;
                return Err(e);
            }
        };
        let ended = match &outcome {
            Outcome::Succeeded | Outcome::UpToDate => RunOutcome::Succeeded,
            Outcome::Interrupted => RunOutcome::Interrupted,
            Outcome::Failed { failed, skipped } => RunOutcome::Failed {
                failed: failed.iter().map(|(s, _)| s.clone()).collect(),
                skipped: skipped.iter().map(|(s, _)| s.clone()).collect(),
            },
        };
        self.journal
            .append(run, Event::RunEnded { outcome: ended })
            .await?;
        Ok(RunReport {
            run: Some(run),
            resumed,
            outcome,
            executed,
            reused,
        })
    }
}

/// What the journal held before this run, read once at its start: the engine decides from it
/// what to reuse, which attempt number comes next and what to resume, and never re-reads the
/// fold while steps run.
struct Prior {
    /// Each step's latest success not since invalidated: reused when its digest matches.
    ledger: BTreeMap<StepId, journal::StepResult>,
    /// The highest attempt number of each step over the cluster's life (attempts count on).
    attempts: BTreeMap<StepId, u32>,
    /// Intents of attempts that never recorded an outcome, per step.
    unfinished_intents: HashMap<StepId, Vec<Intent>>,
    /// No run yet, or the last one succeeded: a DAG whose steps all match is up to date.
    last_succeeded_or_none: bool,
    /// The last run, if it did not succeed: a run of the same kind and spec continues it.
    last_unfinished: Option<(RunId, RunKind, Digest)>,
}

impl Prior {
    fn take(state: &ClusterState) -> Prior {
        let last = state.last_run();
        let mut unfinished_intents: HashMap<StepId, Vec<Intent>> = HashMap::new();
        for run in state.runs.values() {
            for (step, history) in &run.steps {
                let done_at = state.ledger.get(step).map_or(0, |r| r.attempt);
                for attempt in &history.attempts {
                    if attempt.end == AttemptEnd::Unfinished && attempt.attempt > done_at {
                        unfinished_intents
                            .entry(step.clone())
                            .or_default()
                            .extend(attempt.intents.iter().cloned());
                    }
                }
            }
        }
        Prior {
            ledger: state.ledger.clone(),
            attempts: state.attempts.clone(),
            unfinished_intents,
            last_succeeded_or_none: last.is_none_or(|r| r.succeeded()),
            last_unfinished: last
                .filter(|r| !r.succeeded())
                .map(|r| (r.id, r.kind, r.spec_digest)),
        }
    }
}

/// The digest a step's recorded result must match to be reused: its own inputs plus every
/// dependency's outputs, so that a dependency that produced something new (a recreated device
/// with a new IP) makes its dependents run again.
fn effective_digest(step: &StepDef, deps: &BTreeMap<StepId, Outputs>) -> Digest {
    let encoded: Vec<(String, Vec<u8>)> = deps
        .iter()
        .map(|(id, out)| {
            // Outputs are a map of JSON values; encoding them cannot fail.
            (id.to_string(), serde_json::to_vec(out).unwrap_or_default())
        })
        .collect();
    // The hex text, not the raw bytes: journals written before digests were held as bytes
    // must keep their effective digests.
    let own = step.inputs.to_hex();
    let mut parts: Vec<&[u8]> = vec![own.as_bytes()];
    for (id, out) in &encoded {
        parts.push(id.as_bytes());
        parts.push(out);
    }
    Digest::of_parts(parts)
}

fn up_to_date(dag: &Dag, ledger: &BTreeMap<StepId, journal::StepResult>) -> bool {
    dag.steps().all(|step| {
        let Some(done) = ledger.get(&step.id) else {
            return false;
        };
        let deps: Option<BTreeMap<StepId, Outputs>> = step
            .deps
            .iter()
            .map(|d| ledger.get(d).map(|r| (d.clone(), r.outputs.clone())))
            .collect();
        deps.is_some_and(|deps| effective_digest(step, &deps) == done.inputs_digest)
    })
}

/// One run of a DAG: which steps are ready, running, done or skipped. Vectors are indexed by
/// the DAG's node index (declaration order), so a step's place in each is its node's index.
struct Execution<'a> {
    engine: &'a Engine,
    dag: &'a Dag,
    /// Each step kind's action, bound for this run.
    actions: &'a Actions,
    /// The run journaled as `run_started` or `run_resumed`; every event goes to it.
    run: RunId,
    /// The journal before this run: reuse, attempt numbers, unfinished intents.
    prior: Prior,
    /// The run's cancellation (Ctrl-C): no new step starts once it is cancelled.
    cancel: CancellationToken,
    /// One limit per resource class, created when the class's first step starts.
    limits: HashMap<ResourceClass, Arc<ClassLimit>>,
    /// Dependencies of each step not yet succeeded (or reused); 0 makes it ready.
    remaining: Vec<usize>,
    /// Each step's outputs, once it succeeded or was reused.
    outputs: Vec<Option<Outputs>>,
    /// Whether each step is done with in this run (succeeded, failed, skipped, interrupted).
    settled: Vec<bool>,
    /// For each skipped step, the failed step that caused it.
    skipped_because: Vec<Option<StepId>>,
    /// Cancelled for a running step once nothing left in the run needs it: it stops retrying.
    moot: Vec<CancellationToken>,
    /// Steps whose dependencies are done, in the order they became ready; started (or
    /// skipped) by [`Execution::drive`].
    ready: VecDeque<NodeIndex>,
    /// The running steps' attempts, each ending with its node and how it ended.
    tasks: JoinSet<(NodeIndex, StepEnd)>,
    /// Steps that failed for good, with their last error (redacted).
    failed: Vec<(StepId, String)>,
    /// Steps skipped, each with the failed step behind it.
    skipped: Vec<(StepId, StepId)>,
    /// Steps that ran at least one attempt (not reused).
    executed: Vec<StepId>,
    /// Steps whose recorded result was reused.
    reused: usize,
    /// A step was cancelled, or a ready step was not started because of cancellation.
    interrupted: bool,
}

impl Execution<'_> {
    async fn drive(&mut self) -> Result<Outcome, EngineError> {
        let graph = &self.dag.graph;
        let mut roots: Vec<NodeIndex> = self
            .dag
            .order
            .iter()
            .copied()
            .filter(|n| self.remaining[n.index()] == 0)
            .collect();
        roots.sort();
        self.ready.extend(roots);
        loop {
            while let Some(node) = self.ready.pop_front() {
                if self.cancel.is_cancelled() {
                    self.interrupted = true;
                    continue;
                }
                if let Some(because) = self.needed_by_nothing(node) {
                    self.skip(node, because).await?;
                    continue;
                }
                self.start(node);
            }
            let Some(joined) = self.tasks.join_next().await else {
                break;
            };
            let (node, end) = match joined {
                Ok(done) => done,
                // Steps run inside their own task (see `attempts`), so this task only ends by
                // panic if the engine itself has a bug.
                Err(e) => panic!("engine step task failed: {e}"),
            };
            let id = graph[node].id.clone();
            match end {
                StepEnd::Succeeded(out) => self.complete(node, out),
                StepEnd::Failed(error) => {
                    self.settled[node.index()] = true;
                    self.failed.push((id.clone(), error));
                    self.skip_dependents_of(node).await?;
                    self.stop_retrying_what_nothing_needs();
                }
                StepEnd::Interrupted | StepEnd::NotStarted => {
                    self.settled[node.index()] = true;
                    self.interrupted = true;
                }
                StepEnd::Journal(e) => return Err(e.into()),
            }
        }
        Ok(
            if self.settled.iter().all(|s| *s) && self.failed.is_empty() && !self.interrupted {
                Outcome::Succeeded
            } else if self.interrupted {
                Outcome::Interrupted
            } else {
                Outcome::Failed {
                    failed: std::mem::take(&mut self.failed),
                    skipped: std::mem::take(&mut self.skipped),
                }
            },
        )
    }

    fn dependency_outputs(&self, node: NodeIndex) -> BTreeMap<StepId, Outputs> {
        self.dag
            .graph
            .neighbors_directed(node, Direction::Incoming)
            .filter_map(|d| {
                self.outputs[d.index()]
                    .clone()
                    .map(|o| (self.dag.graph[d].id.clone(), o))
            })
            .collect()
    }

    fn start(&mut self, node: NodeIndex) {
        let step = self.dag.graph[node].clone();
        let deps = self.dependency_outputs(node);
        let digest = effective_digest(&step, &deps);
        if let Some(done) = self.prior.ledger.get(&step.id)
            && done.inputs_digest == digest
            && !step.checks_now
        {
            let outputs = done.outputs.clone();
            self.reused += 1;
            self.engine.observer.notice(&Notice {
                step: step.id.clone(),
                kind: NoticeKind::Reused,
            });
            self.complete(node, outputs);
            return;
        }
        self.executed.push(step.id.clone());
        let limit = self
            .engine
            .limits
            .get(&step.class)
            .copied()
            .unwrap_or(self.engine.default_limit);
        let class_limit = Arc::clone(
            self.limits
                .entry(step.class.clone())
                .or_insert_with(|| ClassLimit::new(limit)),
        );
        let first_attempt = self.prior.attempts.get(&step.id).copied().unwrap_or(0) + 1;
        let previous_intents = Arc::new(
            self.prior
                .unfinished_intents
                .remove(&step.id)
                .unwrap_or_default(),
        );
        let recorded = self
            .prior
            .ledger
            .get(&step.id)
            .map(|r| Arc::new(r.outputs.clone()));
        let Some(action) = self.actions.get(&step.kind).cloned() else {
            unreachable!("Engine::run checked that every step's kind is bound")
        };
        let attempt = Attempts {
            action,
            params: Arc::clone(&step.params),
            recorded,
            journal: Arc::clone(&self.engine.journal),
            observer: Arc::clone(&self.engine.observer),
            run: self.run,
            cancel: self.cancel.clone(),
            step,
            digest,
            deps: Arc::new(deps),
            previous_intents,
            first_attempt,
            class_limit,
            // DAG order is declaration order, which puts the critical path first.
            priority: node.index(),
            moot: self.moot[node.index()].clone(),
        };
        self.tasks.spawn(async move { (node, attempt.run().await) });
    }

    /// Records a step's outputs and readies the dependents whose dependencies are all done.
    fn complete(&mut self, node: NodeIndex, outputs: Outputs) {
        self.outputs[node.index()] = Some(outputs);
        self.settled[node.index()] = true;
        let mut dependents: Vec<NodeIndex> = self
            .dag
            .graph
            .neighbors_directed(node, Direction::Outgoing)
            .collect();
        // Steps that become ready together start in the order the DAG declared them (node
        // indexes are declaration order), so a DAG puts its critical path first: the
        // controllers' Ignition and devices before a thousand workers', not after (petgraph
        // lists neighbors newest first).
        dependents.sort();
        for d in dependents {
            self.remaining[d.index()] -= 1;
            if self.remaining[d.index()] == 0 {
                self.ready.push_back(d);
            }
        }
    }

    /// Journals every transitive dependent of a failed step as skipped; independent branches
    /// go on.
    async fn skip_dependents_of(&mut self, node: NodeIndex) -> Result<(), EngineError> {
        let graph = &self.dag.graph;
        let because = graph[node].id.clone();
        let dependents: Vec<NodeIndex> = Bfs::new(graph, node)
            .iter(graph)
            .filter(|n| *n != node)
            .collect();
        for d in dependents {
            if !self.settled[d.index()] {
                self.skip(d, because.clone()).await?;
            }
        }
        Ok(())
    }

    /// Journals one step as skipped because `because` failed.
    async fn skip(&mut self, node: NodeIndex, because: StepId) -> Result<(), EngineError> {
        self.settled[node.index()] = true;
        self.skipped_because[node.index()] = Some(because.clone());
        let step = self.dag.graph[node].id.clone();
        self.engine
            .journal
            .append(
                self.run,
                Event::StepSkipped {
                    step: step.clone(),
                    because: because.clone(),
                },
            )
            .await?;
        self.engine.observer.notice(&Notice {
            step: step.clone(),
            kind: NoticeKind::Skipped {
                because: because.clone(),
            },
        });
        self.skipped.push((step, because));
        Ok(())
    }

    /// A step feeds something and everything it feeds was skipped: nothing in this run will
    /// use its outputs (the run fails anyway; the next run does it). Returns the failed step
    /// behind it. A step that feeds nothing (the DAG's end) is always needed.
    fn needed_by_nothing(&self, node: NodeIndex) -> Option<StepId> {
        let mut because = None;
        for d in self.dag.graph.neighbors_directed(node, Direction::Outgoing) {
            because = Some(self.skipped_because[d.index()].clone()?);
        }
        because
    }

    /// After a failure, steps still retrying for dependents that were just skipped stop
    /// retrying: a wrong SSH port must not keep a run going for half an hour after DNS failed
    /// for good. Their attempt in flight finishes and is journaled.
    fn stop_retrying_what_nothing_needs(&self) {
        for node in self.dag.graph.node_indices() {
            if !self.settled[node.index()] && self.needed_by_nothing(node).is_some() {
                self.moot[node.index()].cancel();
            }
        }
    }
}
