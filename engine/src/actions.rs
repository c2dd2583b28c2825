//! The action registry: what each kind of step does, bound when a run starts.
//!
//! A [`Dag`](crate::Dag) is data (as in Oxide's steno, where a saga's DAG names its actions and
//! a registry built with the saga's context binds them): its steps name their kind, and the
//! binary builds the registry with the run's clients right before [`Engine::run`]. So
//! building, showing or comparing a DAG needs no client, and the same DAG runs against the
//! simulator or the real cloud.
//!
//! [`Engine::run`]: crate::Engine::run

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use crate::kind::ActionKind;
use crate::kind::{StepKind, encode_outputs};
use crate::step::{Action, StepContext, StepError};

/// Each kind of step's action.
#[derive(Clone, Default)]
pub struct Actions {
    by_kind: HashMap<ActionKind, Arc<dyn Action>>,
}

impl Actions {
    /// A registry without actions.
    pub fn new() -> Actions {
        Actions::default()
    }

    /// Binds kind `K` to `action`, replacing an earlier binding. The action receives the
    /// step's params decoded as `K::Params` (params that do not decode are a permanent error
    /// naming the step and the kind: the DAG and its actions disagree) and returns `K::Outputs`,
    /// which the journal keeps as JSON, one key per field.
    pub fn bind<K, F, Fut>(self, action: F) -> Actions
    where
        K: StepKind,
        F: Fn(StepContext, K::Params) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<K::Outputs, StepError>> + Send + 'static,
    {
        let action = Arc::new(action);
        self.bind_action(K::KIND, move |ctx: StepContext| {
            let action = Arc::clone(&action);
            async move {
                let params: K::Params = ctx
                    .params()
                    .map_err(|e| StepError::permanent(format!("{e} (kind {})", K::KIND)))?;
                let outputs = action(ctx, params).await?;
                encode_outputs::<K>(&outputs).map_err(StepError::permanent)
            }
        })
    }

    /// Binds the kind named `kind` to an untyped `action`, which reads its params and writes
    /// its outputs itself (the engine's toy steps); replaces an earlier binding.
    pub fn bind_action(mut self, kind: impl Into<ActionKind>, action: impl Action) -> Actions {
        self.by_kind.insert(kind.into(), Arc::new(action));
        self
    }

    /// The action of `kind`.
    pub fn get(&self, kind: &ActionKind) -> Option<&Arc<dyn Action>> {
        self.by_kind.get(kind)
    }
}
