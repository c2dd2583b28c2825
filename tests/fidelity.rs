//! The fidelity suite: what loko renders for the examples, judged against facts taken from the
//! real components (`sim/data/`, `shared/reference/upstream/`), never against loko's own code.

#[path = "fidelity/rbac.rs"]
mod rbac;
