//! The provisioning DAG of a cluster: from the desired cluster and what the journal knows, the
//! DAGs of `loko run` and `loko destroy` (data: each step's kind and params, bound to actions
//! by [`crate::actions`] when a run starts). What `loko plan` shows of them is
//! [`crate::changes`].
//!
//! ```text
//! assets/pki ─┬─ assets/kubeconfigs ── ignition/<node> ── device/<node> ─┬─ dns ───────────────────────────────┐
//!             │                                                          ├─ etcd-secrets/<c> ── control-plane/<c> ─┤
//!             └─ assets/manifests ───────────────────────────────────────┴──────────────────────────── bootstrap ─┴─ ready
//! control-plane/<c> ── drain/<w> ── delete-device/<w>   (workers the journal knows that the spec
//!                                                       no longer has)
//! control-plane/<c> ── drain/<w> ── device/<w>          (a retyped pool's workers)
//! ```
//!
//! Step ids are stable (`device/<hostname>`), so a rerun or resume of the same spec finds every
//! step's recorded result. A node that leaves the spec gets a `delete-device/<hostname>` step;
//! it and the node's `device/` step invalidate each other, so a node can come and go repeatedly.

use engine::{StepDef, StepKind};
use journal::{Digest, StepId};
use serde::Serialize;

use crate::kinds::NodeParams;

mod apply_dag;
mod destroy_dag;

pub use apply_dag::apply_dag;
pub use destroy_dag::destroy_dag;

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
fn inputs<T: Serialize + ?Sized>(value: &T) -> Result<Digest, BuildError> {
    Digest::of_json(value).map_err(|e| BuildError::Inputs(e.to_string()))
}

/// A step of kind `K` with its own inputs digest and `params` for its action.
fn step<K: StepKind>(id: StepId, own: Digest, params: &K::Params) -> Result<StepDef, BuildError> {
    StepDef::of::<K>(id, params, own).map_err(|e| BuildError::Inputs(e.to_string()))
}

fn node_params(host: &str) -> NodeParams {
    NodeParams {
        hostname: host.to_owned(),
    }
}
