//! What the DAG builders share: their error and how they make a step. Apart from `cluster.rs` so
//! that `apply_dag.rs` and `destroy_dag.rs` import it without importing their parent.

use engine::{StepDef, StepKind};
use journal::{Digest, StepId};
use serde::Serialize;

use crate::classes::REDFISH;
use crate::kinds::{MachineParams, NodeParams, RetireMachineKind};
use crate::step_name::StepName;

/// Why a DAG could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Dag(#[from] engine::DagError),
    #[error("cannot digest the inputs of a step: {0}")]
    Inputs(String),
    #[error("the desired cluster has no controller")]
    NoController,
    #[error(transparent)]
    Refused(#[from] specs::RefusedChanges),
}

/// The digest of a step's own inputs.
pub(super) fn inputs<T: Serialize + ?Sized>(value: &T) -> Result<Digest, BuildError> {
    Digest::of_json(value).map_err(|e| BuildError::Inputs(e.to_string()))
}

/// A step of kind `K` with its own inputs digest and `params` for its action.
pub(super) fn step<K: StepKind>(
    id: StepId,
    own: Digest,
    params: &K::Params,
) -> Result<StepDef, BuildError> {
    StepDef::of::<K>(id, params, own).map_err(|e| BuildError::Inputs(e.to_string()))
}

pub(super) fn node_params(host: &str) -> NodeParams {
    NodeParams {
        hostname: host.to_owned(),
    }
}

/// The step that powers off a rack node's machine (and the one it `replaces`, if any): its
/// node left the spec, or the cluster is destroyed. `own` is its inputs' digest.
pub(super) fn retire_step(params: &MachineParams, own: Digest) -> Result<StepDef, BuildError> {
    let host = &params.hostname;
    Ok(
        step::<RetireMachineKind>(StepName::Retire(host.clone()).id(), own, params)?
            .class(REDFISH)
            .invalidates([StepName::Machine(host.clone()).id()]),
    )
}
