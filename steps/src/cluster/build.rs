//! What the DAG builders share: their error and how they make a step. Apart from `cluster.rs` so
//! that `apply_dag.rs` and `destroy_dag.rs` import it without importing their parent.

use engine::{StepDef, StepKind};
use journal::{Digest, StepId};
use serde::Serialize;

use crate::kinds::NodeParams;

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
