//! The seam between the engine's steps and whoever provides a cluster's machines: Packet,
//! which creates a device per node, or a rack of listed machines booted through their BMCs
//! (`provider: redfish`). Adoption, retries, intents and `loko plan`'s wording stay the
//! steps' and the engine's; a provider only says how a machine comes to be, goes, is listed,
//! and what about it can change.
//!
//! # Packet, as the existing code does it
//!
//! The Packet implementation is not moved here yet; its methods would be the existing pieces
//! of `crate::packet`:
//!
//! - [`MachineProvider::ensure`]: `packet::DeviceStep::run` (find the node's device by its
//!   `loko:node=` tag in the shared `DevicePoller`'s listing, adopt it, or journal
//!   `CREATE_INTENT` and `PacketClient::create_device`; then wait until active, replacing a
//!   failed or stuck device a bounded number of times; the outputs `device_id`, `hostname`,
//!   `public_ipv4`, `private_ipv4` checked against `node_private_cidr`).
//! - [`MachineProvider::retire`]: `packet::DeleteDeviceStep::run` (the devices by tag, a
//!   `delete device` intent each, `PacketClient::delete_device`, waiting until unlisted).
//! - [`MachineProvider::list`]: `PacketClient::list_devices` with `packet::cluster_tag` (the
//!   poller's listing; `drift::Drift::of_devices` compares it with the spec).
//! - [`MachineProvider::change`]: a pool's plan changed is [`Change::Recreate`] (the device
//!   step's `retire` then create, the tutorial's "recreate"); everything else Ignition or the
//!   certificates hold is refused by `specs::classify` before any step.
//!
//! # Redfish
//!
//! [`rack::RedfishProvider`]: a machine is what it is. Ensuring it sets its next boot to PXE
//! once and powers it on (or force-restarts it when it is on), then reads the power state
//! back; the boot server serves it its installer. Retiring it powers it off. A changed MAC is
//! a different machine ([`Change::Recreate`]: the old one retired, the new one booted).

use std::future::Future;
use std::net::Ipv4Addr;

use engine::{StepContext, StepError};
use journal::Outputs;

pub mod netbooted;
pub mod rack;

/// Where a provider journals what it is about to do, and says what it does: a step's
/// [`StepContext`] in a run.
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
