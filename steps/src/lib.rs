//! loko's provisioning steps. Each module is one kind of resource, with its client and the
//! engine step that creates it; every step keeps the contract of [`engine::step`] (reconcile
//! before acting, journal intents before non-idempotent effects, never publish secrets).
//!
//! - [`assets`]: the asset directory: PKI, kubeconfigs, bootkube manifests.
//! - [`ignition`]: each node's Ignition and SSH host key.
//! - [`cluster`]: the DAG of `loko run` and `loko destroy` from the desired cluster.
//! - [`packet`]: the Packet API client, the shared device poller, the device steps.
//! - [`dns`]: Route53 records.
//! - [`ssh`]: the SSH client (ssh-agent keys, pinned host keys).
//! - [`bootstrap`]: etcd certificates to the controllers, bootkube on controller 0.
//! - [`readiness`]: the apiserver answers and every node is Ready.
//! - [`preflight`]: the token, project, endpoints, AWS credentials and hosted zone, before any step.

pub mod assets;
pub mod bootstrap;
pub mod cluster;
pub mod dns;
pub mod ignition;
pub mod packet;
pub mod preflight;
pub mod readiness;
pub mod ssh;

/// An error and its causes, `: `-separated. Clients' errors (reqwest, the AWS SDK) put the
/// useful part (a refused connection, a certificate problem) in their sources, not their text.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}
