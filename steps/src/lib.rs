//! loko's provisioning steps. Each module is one kind of resource, with its client and the
//! engine step that creates it; every step keeps the contract of [`engine::step`] (reconcile
//! before acting, journal intents before non-idempotent effects, never publish secrets).
//!
//! - [`assets`]: the asset directory: PKI, kubeconfigs, the static control plane's pods and the
//!   cluster's manifests.
//! - [`ignition`]: each node's Ignition and SSH host key.
//! - [`netboot`]: the network boot server of machines booted by MAC (iPXE, Ignition).
//! - [`cluster`]: the DAG of `loko run` and `loko destroy` from the desired cluster, as data.
//! - [`step_name`]: what a step id means, printed and read in one place.
//! - [`history`]: what the journal knows of the cluster, which the DAG builders read.
//! - [`classes`]: the resource classes, each with its concurrency limit.
//! - [`run_context`]: the clients and settings of a run, which the actions hold.
//! - [`kinds`]: each kind of step's name, params and outputs, as types.
//! - [`actions`]: each kind of step bound to its action, with the clients of a run.
//! - [`packet`]: the Packet API client, the shared device poller, the device steps.
//! - [`dns`]: Route53 records.
//! - [`drift`]: how the cloud as it is differs from the spec (`loko status`).
//! - [`refresh`]: where the cloud contradicts the journal, before `loko plan` and `loko run` decide.
//! - [`changes`]: what `loko run` would add and delete (`loko plan`).
//! - [`ssh`]: the SSH client (ssh-agent keys, pinned host keys).
//! - [`control_plane`]: etcd certificates and the static control plane to every controller.
//! - [`bootstrap`]: the cluster's manifests, applied through the API once it answers.
//! - [`drain`]: a worker's node cordoned, its pods evicted and its Node deleted before its
//!   device is.
//! - [`readiness`]: the apiserver answers, every node is Ready, and CoreDNS, kube-proxy and the
//!   network's pods run.
//! - [`preflight`]: the token, project, endpoints, AWS credentials and hosted zone, before any step.

pub mod actions;
pub mod assets;
pub mod bootstrap;
pub mod changes;
pub mod classes;
pub mod cluster;
pub mod control_plane;
pub mod dns;
pub mod drain;
pub mod drift;
pub mod history;
mod http;
pub mod ignition;
pub mod kinds;
pub mod netboot;
pub mod packet;
pub mod preflight;
pub mod provider;
pub mod readiness;
pub mod redfish;
pub mod refresh;
pub mod run_context;
pub mod ssh;
pub mod step_name;

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
