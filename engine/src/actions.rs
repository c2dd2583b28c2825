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
use std::sync::Arc;

use crate::step::{Action, ActionKind};

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

    /// Binds `kind` to `action`, replacing an earlier binding.
    pub fn bind(mut self, kind: impl Into<ActionKind>, action: impl Action) -> Actions {
        self.by_kind.insert(kind.into(), Arc::new(action));
        self
    }

    /// The action of `kind`.
    pub fn get(&self, kind: &ActionKind) -> Option<&Arc<dyn Action>> {
        self.by_kind.get(kind)
    }
}
