//! What a step is, and the contract every step must keep.
//!
//! # The step contract
//!
//! A step may be run again after a crash at *any* point: before its side effect, during it, or
//! after it but before its success was journaled. So `run` must be idempotent by
//! reconciliation:
//!
//! 1. Look before acting: find what an earlier attempt may have done (a device by its tags, a
//!    file by its path, a DNS record by its name) and adopt it instead of doing it again.
//!    [`StepContext::previous_intents`] lists the intents that earlier unfinished attempts
//!    journaled, so a step knows when a lookup is mandatory rather than a courtesy.
//! 2. Journal the intent before a side effect that is not idempotent by itself (a POST that
//!    creates something) with [`StepContext::intent`], which returns once the intent is durable.
//! 3. Return outputs that say what the step produced (ids, addresses, fingerprints), never
//!    secrets: [`Outputs`] refuses them.
//! 4. Classify errors: [`StepError::Retryable`] for what may pass (timeouts, 5xx, 429, a device
//!    still booting), [`StepError::Permanent`] for what will not (a 422, a refused spec).
//! 5. Observe cancellation in long waits ([`StepContext::cancelled`]) and return
//!    [`StepError::Interrupted`], so Ctrl-C does not wait for a ten-minute provisioning.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use journal::{Digest, Event, Intent, Journal, Outputs, RunId, StepId};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::kind::{ActionKind, StepKind, decode_outputs};
use crate::limit::{ClassLimit, Permit};
use crate::observe::{Milestone, Notice, NoticeKind, Observer};
use crate::retry::RetryPolicy;

/// A step's failure.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum StepError {
    /// May succeed if tried again; `after` is the earliest sensible retry (a `Retry-After`).
    #[error("{message}")]
    Retryable {
        message: String,
        after: Option<Duration>,
    },
    /// Will fail again the same way; its dependents are skipped.
    #[error("{message}")]
    Permanent { message: String },
    /// The step stopped because the run was cancelled.
    #[error("interrupted")]
    Interrupted,
}

impl StepError {
    /// A retryable error.
    pub fn retryable(message: impl fmt::Display) -> StepError {
        StepError::Retryable {
            message: message.to_string(),
            after: None,
        }
    }

    /// A retryable error that should not be retried before `after`.
    pub fn retry_after(message: impl fmt::Display, after: Duration) -> StepError {
        StepError::Retryable {
            message: message.to_string(),
            after: Some(after),
        }
    }

    /// A permanent error.
    pub fn permanent(message: impl fmt::Display) -> StepError {
        StepError::Permanent {
            message: message.to_string(),
        }
    }
}

impl From<journal::OutputError> for StepError {
    /// An output that cannot be published is a bug in the step, not a passing condition.
    fn from(e: journal::OutputError) -> Self {
        StepError::permanent(e)
    }
}

/// The future a step's action returns.
pub type StepFuture = Pin<Box<dyn Future<Output = Result<Outputs, StepError>> + Send + 'static>>;

/// The work of a kind of step, bound to the DAG's steps of that kind when a run starts (see
/// [`crate::Actions`]). It reads the step's own data with [`StepContext::params`] and holds what
/// the run supplies (clients, settings). Implemented for every `Fn(StepContext) -> impl Future`
/// closure.
pub trait Action: Send + Sync + 'static {
    /// Runs one attempt. See the module docs for the contract.
    fn run(&self, ctx: StepContext) -> StepFuture;
}

impl<F, Fut> Action for F
where
    F: Fn(StepContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Outputs, StepError>> + Send + 'static,
{
    fn run(&self, ctx: StepContext) -> StepFuture {
        Box::pin(self(ctx))
    }
}

/// The kind of resource a step uses; each class has its own concurrency limit (for example
/// `packet-api` 16, `ssh` 8, `local` 4), so that a thousand device steps do not open a thousand
/// connections.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ResourceClass(Cow<'static, str>);

impl ResourceClass {
    /// Work on this machine only (rendering, files).
    pub const LOCAL: ResourceClass = ResourceClass::new("local");

    /// A class named `name`.
    pub const fn new(name: &'static str) -> ResourceClass {
        ResourceClass(Cow::Borrowed(name))
    }
}

impl fmt::Display for ResourceClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One step of a DAG, as plain data: what it is (id, kind, params), what it needs (its
/// dependencies), what it reads (its inputs digest), how it runs (retry policy, resource
/// class) and what its success forgets. It holds no client and no closure: `loko graph` and
/// `loko plan` build DAGs without connecting to anything, and a DAG serializes. The action is
/// looked up by kind in the run's [`crate::Actions`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepDef {
    pub(crate) id: StepId,
    pub(crate) kind: ActionKind,
    pub(crate) deps: Vec<StepId>,
    /// The digest of the step's own inputs; the engine adds its dependencies' outputs.
    pub(crate) inputs: Digest,
    /// What the action needs to know of this step (a hostname, a device's spec): read with
    /// [`StepContext::params`]. Not part of the digest unless the step put it there. Shared
    /// with the step's attempts, not copied for each (kilobytes each, thousands of steps).
    pub(crate) params: Arc<Value>,
    pub(crate) retry: RetryPolicy,
    pub(crate) class: ResourceClass,
    pub(crate) invalidates: Vec<StepId>,
    /// Its result describes the world as it is now (nodes ready), which a record of an earlier
    /// run cannot vouch for: it runs in every run, never reused from the ledger.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) checks_now: bool,
}

impl StepDef {
    /// A step with its id, its kind, and the digest of its own inputs (what it reads from the
    /// spec and from files; its dependencies' outputs are added by the engine). It has no
    /// params and no dependencies, runs in class [`ResourceClass::LOCAL`] and retries with
    /// the default policy until configured otherwise.
    pub fn new(id: StepId, kind: impl Into<ActionKind>, inputs: Digest) -> StepDef {
        StepDef {
            id,
            kind: kind.into(),
            deps: Vec::new(),
            inputs,
            params: Arc::new(Value::Null),
            retry: RetryPolicy::default(),
            class: ResourceClass::LOCAL,
            invalidates: Vec::new(),
            checks_now: false,
        }
    }

    /// A step of kind `K` with its id, its params and the digest of its own inputs (see
    /// [`StepDef::new`]): the kind's action receives `params` decoded (see
    /// [`crate::Actions::bind`]).
    pub fn of<K: StepKind>(
        id: StepId,
        params: &K::Params,
        inputs: Digest,
    ) -> Result<StepDef, serde_json::Error> {
        StepDef::new(id, K::KIND, inputs).params(params)
    }

    /// Gives the action `params` (see [`StepContext::params`]).
    pub fn params<T: Serialize + ?Sized>(
        mut self,
        params: &T,
    ) -> Result<StepDef, serde_json::Error> {
        self.params = Arc::new(serde_json::to_value(params)?);
        Ok(self)
    }

    /// Runs after `deps` succeeded, and reads their outputs.
    pub fn after(mut self, deps: impl IntoIterator<Item = StepId>) -> StepDef {
        self.deps.extend(deps);
        self
    }

    /// Uses `policy` for retries.
    pub fn retry(mut self, policy: RetryPolicy) -> StepDef {
        self.retry = policy;
        self
    }

    /// Runs in resource class `class`.
    pub fn class(mut self, class: ResourceClass) -> StepDef {
        self.class = class;
        self
    }

    /// On success, forgets the recorded results of `steps` (a delete step invalidates the
    /// create step of the same object, so a later run creates it again).
    pub fn invalidates(mut self, steps: impl IntoIterator<Item = StepId>) -> StepDef {
        self.invalidates.extend(steps);
        self
    }

    /// Runs in every run, its recorded result never reused: what it checks (the nodes are
    /// ready) holds now or not, whatever an earlier run found.
    pub fn checks_now(mut self) -> StepDef {
        self.checks_now = true;
        self
    }

    /// True when the step runs in every run ([`StepDef::checks_now`]).
    pub fn is_checked_now(&self) -> bool {
        self.checks_now
    }

    /// The step's id.
    pub fn id(&self) -> &StepId {
        &self.id
    }

    /// The step's kind, which names its action.
    pub fn kind(&self) -> &ActionKind {
        &self.kind
    }

    /// The step's dependencies.
    pub fn deps(&self) -> &[StepId] {
        &self.deps
    }

    /// The digest of the step's own inputs.
    pub fn inputs(&self) -> Digest {
        self.inputs
    }

    /// The step's params, as the action reads them.
    pub fn params_value(&self) -> &Value {
        &self.params
    }

    /// The step's resource class.
    pub fn resource_class(&self) -> &ResourceClass {
        &self.class
    }

    /// The steps whose records the step's success forgets.
    pub fn invalidated(&self) -> &[StepId] {
        &self.invalidates
    }
}

/// A step attempt's place in its resource class: held while it works, handed back while it
/// only waits (see [`StepContext::wait`]).
pub(crate) struct ClassSlot {
    limit: Arc<ClassLimit>,
    /// The step's place in the DAG, which orders it among the class's waiters.
    priority: usize,
    permit: Mutex<Option<Permit>>,
}

impl ClassSlot {
    pub(crate) fn holding(limit: Arc<ClassLimit>, priority: usize, permit: Permit) -> Self {
        ClassSlot {
            limit,
            priority,
            permit: Mutex::new(Some(permit)),
        }
    }

    pub(crate) fn release(&self) {
        drop(self.lock().take());
    }

    async fn reacquire(&self) {
        let permit = self.limit.acquire(self.priority).await;
        *self.lock() = Some(permit);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Permit>> {
        // The guarded value is an Option that is only taken or set: a panic cannot corrupt it.
        self.permit.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a step attempt can see and do.
#[derive(Clone)]
pub struct StepContext {
    pub(crate) slot: Arc<ClassSlot>,
    pub(crate) id: StepId,
    pub(crate) params: Arc<Value>,
    pub(crate) run: RunId,
    pub(crate) attempt: u32,
    pub(crate) journal: Arc<Journal>,
    pub(crate) deps: Arc<BTreeMap<StepId, Outputs>>,
    pub(crate) previous_intents: Arc<Vec<Intent>>,
    pub(crate) recorded: Option<Arc<Outputs>>,
    pub(crate) cancel: CancellationToken,
    pub(crate) observer: Arc<dyn Observer>,
}

impl StepContext {
    /// This step's id.
    pub fn id(&self) -> &StepId {
        &self.id
    }

    /// The step's params (see [`StepDef::params`]), decoded as `T`. Params that do not
    /// decode are a permanent error naming the step: the DAG and its actions disagree.
    pub fn params<T: DeserializeOwned>(&self) -> Result<T, StepError> {
        T::deserialize(&*self.params).map_err(|e| {
            StepError::permanent(format!(
                "step {} has params its action cannot read: {e}",
                self.id
            ))
        })
    }

    /// This attempt's number, counted over the life of the cluster.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The outputs of a declared dependency.
    pub fn output_of(&self, dep: &StepId) -> Result<&Outputs, StepError> {
        self.deps.get(dep).ok_or_else(|| {
            StepError::permanent(format!(
                "step {} read the outputs of {dep}, which is not one of its dependencies",
                self.id
            ))
        })
    }

    /// The outputs of a declared dependency of kind `K`, read as the kind's type. Outputs
    /// that do not read as `K`'s are a permanent error naming both steps and the kind: the
    /// DAG made a step depend on another kind than the one it reads.
    pub fn outputs_of<K: StepKind>(&self, dep: &StepId) -> Result<K::Outputs, StepError> {
        decode_outputs::<K>(self.output_of(dep)?).map_err(|e| {
            StepError::permanent(format!("step {} read the outputs of {dep}: {e}", self.id))
        })
    }

    /// The outputs of this step's last recorded success read as kind `K`'s (see
    /// [`StepContext::recorded_outputs`]); none when there is none or it reads otherwise (a
    /// record of an older loko is no claim on what exists now).
    pub fn recorded_outputs_of<K: StepKind>(&self) -> Option<K::Outputs> {
        decode_outputs::<K>(self.recorded.as_deref()?).ok()
    }

    /// The outputs of every dependency.
    pub fn dependency_outputs(&self) -> &BTreeMap<StepId, Outputs> {
        &self.deps
    }

    /// Journals the intent to perform `effect` and returns once it is durable. Call it right
    /// before a side effect that a resumed attempt must look for.
    pub async fn intent(&self, effect: &str, detail: Outputs) -> Result<(), StepError> {
        self.journal
            .append(
                self.run,
                Event::StepIntent {
                    step: self.id.clone(),
                    attempt: self.attempt,
                    effect: effect.to_owned(),
                    detail,
                },
            )
            .await
            .map_err(|e| StepError::permanent(format!("journal: {e}")))?;
        Ok(())
    }

    /// Intents journaled by earlier attempts of this step that never recorded an outcome:
    /// their side effects may have happened, so look for them before acting again.
    pub fn previous_intents(&self) -> &[Intent] {
        &self.previous_intents
    }

    /// The outputs of this step's last recorded success, if any (it runs again because its
    /// inputs changed). Lets a step recognize what it made earlier, e.g. DNS values it set,
    /// as its own.
    pub fn recorded_outputs(&self) -> Option<&Outputs> {
        self.recorded.as_deref()
    }

    /// The one way a step waits (a device provisioning or deprovisioning, the next poll, a
    /// server's `Retry-After`): hands the step's place in its class back while `wait` runs and
    /// takes one again after, so that a class limit bounds the calls in flight, not the things
    /// being waited for (with a `packet-api` limit of 16, a thousand devices still provision
    /// at the same time); gives up with [`StepError::Interrupted`] as soon as the run is
    /// cancelled.
    pub async fn wait<F: Future>(&self, wait: F) -> Result<F::Output, StepError> {
        self.slot.release();
        let out = tokio::select! {
            out = wait => out,
            () = self.cancel.cancelled() => return Err(StepError::Interrupted),
        };
        self.slot.reacquire().await;
        Ok(out)
    }

    /// Sleeps for `duration` through [`wait`](Self::wait).
    pub async fn sleep(&self, duration: std::time::Duration) -> Result<(), StepError> {
        self.wait(tokio::time::sleep(duration)).await
    }

    /// True once the run is cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Completes when the run is cancelled; select on it in long waits.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await
    }

    /// Reports progress of a long wait ("waiting for 3 devices: 2 provisioning, 1 queued") to
    /// the observers. Not journaled.
    pub fn progress(&self, message: impl Into<String>) {
        self.observer.notice(&Notice {
            step: self.id.clone(),
            kind: NoticeKind::Progress {
                message: message.into(),
            },
        });
    }

    /// Reports a change the step made to an outside resource: [`progress`](Self::progress)
    /// with the change typed, for observers that count or time such changes. Not journaled
    /// (the journal has the step's intents and outputs).
    pub fn milestone(&self, milestone: Milestone, message: impl Into<String>) {
        self.observer.notice(&Notice {
            step: self.id.clone(),
            kind: NoticeKind::Milestone {
                milestone,
                message: message.into(),
            },
        });
    }
}
