//! loko's engine: runs a DAG of idempotent steps on tokio, journaling every transition, and
//! resumes exactly where a previous run stopped.
//!
//! The engine knows nothing of Packet, DNS or SSH. A [`Dag`] is plain data: each step is an
//! id, a kind, params, its dependencies, a digest of its inputs, a retry policy, a resource
//! class and the steps its success invalidates. The async action of each kind is bound when a
//! run starts, from an [`Actions`] registry built with the run's clients (see [`step`] for the
//! contract every action keeps). Its tests use toy steps.
//!
//! How a run goes:
//! 1. [`Dag::new`] builds the petgraph DAG and rejects duplicates, missing dependencies and
//!    cycles before anything runs.
//! 2. [`Engine::run`] reads the journal's ledger. Nothing to do → [`Outcome::UpToDate`]. An
//!    unfinished last run with the same spec → `RunResumed`; otherwise `RunStarted`.
//! 3. A step starts as soon as its dependencies succeeded. If the ledger holds its success
//!    with the same effective inputs digest (its own inputs plus its dependencies' outputs), it
//!    is reused. Otherwise its attempts run under its class's semaphore: `StepStarted` is
//!    durable before the action runs, `StepSucceeded` (with outputs) or `StepFailed` after.
//!    Retryable errors are retried with jittered exponential backoff, bounded by attempts and
//!    elapsed time; a permanent failure skips only the step's dependents.
//! 4. Cancellation (Ctrl-C): no new step starts, running steps see
//!    [`StepContext::cancelled`] and record their outcome, the run ends `Interrupted` and the
//!    next run resumes it.
//!
//! ```
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use engine::{ActionKind, Actions, Dag, Engine, RunRequest, StepContext, StepDef, StepKind};
//! use journal::{Digest, Journal, RunKind, StepId};
//!
//! // A kind: its name, its params, its outputs (a struct: one journal key per field).
//! struct Greet;
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Greeting { greeting: String }
//! impl StepKind for Greet {
//!     const KIND: ActionKind = ActionKind::new("greet");
//!     type Params = String;
//!     type Outputs = Greeting;
//! }
//!
//! let dir = tempfile::tempdir()?;
//! let journal = Arc::new(Journal::open(dir.path())?);
//! // The DAG: data.
//! let hello = StepDef::of::<Greet>(StepId::new("hello")?, &"hi".into(), Digest::of(b"v1"))?;
//! let dag = Dag::new(vec![hello])?;
//! // The actions, bound when the run starts; each receives its step's params decoded.
//! let actions = Actions::new().bind::<Greet, _, _>(|_ctx: StepContext, word: String| async move {
//!     Ok(Greeting { greeting: word })
//! });
//! let request = RunRequest { kind: RunKind::Apply, spec_digest: Digest::of(b"spec"), spec: serde_json::json!({}) };
//! let report = Engine::new(journal).run(&dag, &actions, request, Default::default()).await?;
//! assert_eq!(report.outcome, engine::Outcome::Succeeded);
//! # Ok(()) }
//! ```

mod actions;
mod attempts;
mod dag;
pub mod kind;
mod limit;
mod observe;
mod retry;
mod run;
pub mod step;

pub use actions::Actions;
pub use dag::{Dag, DagError};
pub use kind::{ActionKind, KindOutputsError, StepKind, decode_outputs, encode_outputs};
pub use observe::{Change, Milestone, Notice, NoticeKind, Observer, Silent};
pub use retry::RetryPolicy;
pub use run::{Drift, Engine, EngineError, Outcome, Resealed, RunReport, RunRequest};
pub use step::{Action, ResourceClass, StepContext, StepDef, StepError, StepFuture};
pub use tokio_util::sync::CancellationToken;
