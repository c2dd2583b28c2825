//! Toy steps for the engine's tests: each step its own kind, bound to its closure.

// Each test binary uses its own part of this module.
#![allow(dead_code)]

use engine::{Action, Actions, Dag, DagError, ResourceClass, RetryPolicy, StepDef};
use journal::{Digest, StepId};

/// A step with its action, before the DAG and the registry are built.
pub struct Toy {
    def: StepDef,
    bind: Box<dyn FnOnce(Actions) -> Actions>,
}

/// A step of kind `toy/<id>` running `action`.
pub fn toy(id: StepId, inputs: Digest, action: impl Action) -> Toy {
    let kind = format!("toy/{id}");
    Toy {
        def: StepDef::new(id, kind.clone(), inputs),
        bind: Box::new(move |actions: Actions| actions.bind_action(kind, action)),
    }
}

impl Toy {
    pub fn after(self, deps: impl IntoIterator<Item = StepId>) -> Toy {
        Toy {
            def: self.def.after(deps),
            ..self
        }
    }
    pub fn retry(self, policy: RetryPolicy) -> Toy {
        Toy {
            def: self.def.retry(policy),
            ..self
        }
    }
    pub fn checks_now(self) -> Toy {
        Toy {
            def: self.def.checks_now(),
            ..self
        }
    }
    pub fn class(self, class: ResourceClass) -> Toy {
        Toy {
            def: self.def.class(class),
            ..self
        }
    }
}

/// The DAG of `toys` and the registry binding their actions.
pub fn dag(toys: Vec<Toy>) -> Result<(Dag, Actions), DagError> {
    let mut actions = Actions::new();
    let mut defs = Vec::with_capacity(toys.len());
    for toy in toys {
        actions = (toy.bind)(actions);
        defs.push(toy.def);
    }
    Ok((Dag::new(defs)?, actions))
}
