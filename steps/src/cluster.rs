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

mod apply_dag;
mod build;
mod destroy_dag;

pub use apply_dag::apply_dag;
pub use build::BuildError;
pub use destroy_dag::{destroy_dag, machines_to_retire};
