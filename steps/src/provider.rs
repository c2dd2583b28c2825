//! The seam between the engine's steps and whoever provides a cluster's machines: Packet,
//! which creates a device per node, or a rack of listed machines booted through their BMCs
//! (`provider: redfish`). Adoption, retries, intents and `loko plan`'s wording stay the
//! steps' and the engine's; a provider only says how a machine comes to be, goes, is listed,
//! and what about it can change.
//!
//! # Packet
//!
//! [`packet::PacketProvider`]: ensuring a node's machine finds its device by its
//! `loko:node=` tag in the shared `DevicePoller`'s listing and adopts it, or journals
//! `CREATE_INTENT` and creates it; then waits until it is active, replacing a failed or stuck
//! device a bounded number of times, and checks its private address against
//! `node_private_cidr`. Retiring deletes the devices of the node's tag and waits until they are
//! unlisted. A changed plan (machine type) is [`Change::Recreate`]; everything else Ignition or
//! the certificates hold is refused by `specs::classify` before any step.
//!
//! # Redfish
//!
//! [`rack::RedfishProvider`]: a machine is what it is. Ensuring it sets its next boot to PXE
//! once and powers it on (or force-restarts it when it is on), then reads the power state
//! back; the boot server serves it its installer. Retiring it powers it off. A changed MAC is
//! a different machine ([`Change::Recreate`]: the old one retired, the new one booted).

use std::future::Future;
use std::net::Ipv4Addr;
use std::time::Duration;

use engine::{Milestone, StepContext, StepError};
use journal::Outputs;

pub mod netbooted;
pub mod packet;
pub mod rack;

/// What a provider's attempt may ask of the step it runs in: journal an intent before an
/// effect, say what it does, and wait without holding the step's place. A step's
/// [`StepContext`] in a run; a recorder in tests (the waiting methods' defaults just wait).
pub trait Intents: Send + Sync {
    /// Journals the intent to perform `effect`; returns once it is durable.
    fn intent(
        &self,
        effect: &str,
        detail: Outputs,
    ) -> impl Future<Output = Result<(), StepError>> + Send;

    /// True when an earlier attempt of this step journaled `effect` and never recorded an
    /// outcome: the effect may have happened.
    fn intended_before(&self, effect: &str) -> bool;

    /// A progress line for the user.
    fn progress(&self, message: String);

    /// A change made to an outside resource, typed for observers that count them (`loko
    /// bench`); said as progress where nobody counts.
    fn milestone(&self, milestone: Milestone, message: String) {
        let _ = milestone;
        self.progress(message);
    }

    /// Runs `wait` (a machine provisioning, the next listing) without holding the step's
    /// place in its class; [`StepError::Interrupted`] when the run is cancelled meanwhile.
    fn wait<F>(&self, wait: F) -> impl Future<Output = Result<F::Output, StepError>> + Send
    where
        F: Future + Send,
        F::Output: Send,
    {
        async move { Ok(wait.await) }
    }

    /// Sleeps for `duration` through [`Intents::wait`].
    fn sleep(&self, duration: Duration) -> impl Future<Output = Result<(), StepError>> + Send {
        self.wait(tokio::time::sleep(duration))
    }
}

impl Intents for StepContext {
    fn intent(
        &self,
        effect: &str,
        detail: Outputs,
    ) -> impl Future<Output = Result<(), StepError>> + Send {
        StepContext::intent(self, effect, detail)
    }

    fn intended_before(&self, effect: &str) -> bool {
        self.previous_intents().iter().any(|i| i.effect == effect)
    }

    fn progress(&self, message: String) {
        StepContext::progress(self, message);
    }

    fn milestone(&self, milestone: Milestone, message: String) {
        StepContext::milestone(self, milestone, message);
    }

    fn wait<F>(&self, wait: F) -> impl Future<Output = Result<F::Output, StepError>> + Send
    where
        F: Future + Send,
        F::Output: Send,
    {
        StepContext::wait(self, wait)
    }

    fn sleep(&self, duration: Duration) -> impl Future<Output = Result<(), StepError>> + Send {
        StepContext::sleep(self, duration)
    }
}

/// A node's machine once it is provided: what the steps after it (DNS, SSH, the bootstrap)
/// read, as the device step's outputs (`From<ProvidedMachine> for DeviceOutputs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProvidedMachine {
    /// The provider's id of the machine: a Packet device's UUID, a rack machine's name.
    pub id: String,
    pub hostname: String,
    pub public_ipv4: Ipv4Addr,
    pub private_ipv4: Ipv4Addr,
    /// False when an earlier attempt's machine was adopted as it was.
    pub acted: bool,
    /// The hardware reservation the machine was provisioned on (Packet's; none in a rack).
    pub reservation_id: Option<String>,
    /// Machines of this node that failed to come up and were deleted in this attempt
    /// (Packet's failed devices; none in a rack).
    pub replaced: Vec<String>,
}

/// A machine of the cluster as the provider lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedMachine {
    pub id: String,
    /// The provider's word on its state (`active`, `provisioning`; `On`, `Off`).
    pub state: String,
}

/// What a change of a node's machine settings takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Nothing the machine holds changed.
    None,
    /// The machine can only be replaced: the old one retired, a new one ensured.
    Recreate { why: String },
    /// The provider cannot make this change at all.
    Refused {
        /// The machine's field that changed, as the spec writes it (`public_ipv4`).
        field: String,
        why: String,
    },
}

/// A provider of machines for the engine's steps. Each method is one attempt of a step and
/// keeps the step contract (`engine::step`): it looks before it acts, journals an intent
/// before an effect that is not idempotent, and classifies its errors as retryable or
/// permanent; the engine's retry policy retries.
pub trait MachineProvider: Send + Sync {
    /// What the provider needs to know of one node's machine.
    type Machine: Send + Sync;

    /// The node's machine, running, with its addresses: adopted when an earlier attempt or
    /// run already brought it up, else created or booted.
    fn ensure(
        &self,
        intents: &impl Intents,
        hostname: &str,
        machine: &Self::Machine,
    ) -> impl Future<Output = Result<ProvidedMachine, StepError>> + Send;

    /// The machine no longer serves the cluster: deleted (Packet), powered off (a rack). A
    /// machine already gone or off is success, so that a retired node can be retired again.
    fn retire(
        &self,
        intents: &impl Intents,
        machine: &Self::Machine,
    ) -> impl Future<Output = Result<(), StepError>> + Send;

    /// The cluster's machines as the provider sees them now.
    fn list(&self) -> impl Future<Output = Result<Vec<ListedMachine>, StepError>> + Send;

    /// What moving a node's machine from `was` to `is` takes.
    fn change(&self, was: &Self::Machine, is: &Self::Machine) -> Change;
}
