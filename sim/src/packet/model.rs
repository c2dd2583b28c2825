//! The Packet cloud's state and rules, without HTTP.
//!
//! A device's state is a pure function of its record and the simulated time (see
//! [`Device::status`]): nothing needs to tick for a device to become active, a state file loaded
//! later shows every device as far along as the elapsed time says, and a test can reason about
//! states from timings alone. Only side effects on the node side (start or stop a machine) are
//! driven by a ticker, through [`PacketCloud::node_changes`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, Ipv6Addr};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::catalog::{self, Arch, check_billing_cycle};
use crate::clock::Timings;
use crate::faults::DeviceFate;

mod create;

/// The first public address block: 127.10.0.0, far from 127.0.0.1 which the host itself uses.
const PUBLIC_BASE: u32 = u32::from_be_bytes([127, 10, 0, 0]);
const PUBLIC_END: u32 = u32::from_be_bytes([127, 255, 255, 254]);
/// Documentation prefix 2001:db8::/32; never routed.
const IPV6_BASE: u128 = 0x2001_0db8_0000_0000_0000_0000_0000_0000;
/// The prefix length of a project's private block when none is seeded (and of every block in
/// a state file written before blocks had one).
const DEFAULT_PRIVATE_PREFIX: u8 = 16;
/// The API's text for a device moved out of the project after failing.
pub(crate) const FORBIDDEN_DEVICE: &str = "You are not authorized to view this device";

/// Everything the Packet side holds; persisted as is.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct PacketCloud {
    pub(crate) projects: BTreeMap<Uuid, Project>,
    pub(crate) devices: BTreeMap<Uuid, Device>,
    pub(crate) reservations: BTreeMap<Uuid, Reservation>,
    next_public_block: u32,
    /// Devices whose machine the node side runs; rebuilt after a restart by starting them again.
    #[serde(skip)]
    nodes_running: BTreeSet<Uuid>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Project {
    pub(crate) id: Uuid,
    pub(crate) name: String,
    pub(crate) created_at: DateTime<Utc>,
    /// The project's private IPv4 block: each device takes a `/31` of it, as Packet gives a
    /// project one private block per location and every device an address of it.
    pub(crate) private_block: Ipv4Addr,
    #[serde(default = "default_private_prefix")]
    pub(crate) private_prefix: u8,
    next_private_block: u32,
}

fn default_private_prefix() -> u8 {
    DEFAULT_PRIVATE_PREFIX
}

impl Project {
    /// How many `/31`s the private block holds.
    pub(crate) fn private_capacity(&self) -> u32 {
        1 << (31 - u32::from(self.private_prefix.min(31)))
    }
}

/// A private IPv4 block to give a new project (`10.128.156.0/25`), so that the addresses its
/// devices get are the ones a spec's `node_private_cidr` names, as on a real project whose
/// block the operator copied into the spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrivateBlock {
    network: Ipv4Addr,
    prefix_len: u8,
}

/// Why a private block cannot be a project's.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("private block {network}/{prefix_len}: {reason}")]
pub struct PrivateBlockError {
    network: Ipv4Addr,
    prefix_len: u8,
    reason: &'static str,
}

impl PrivateBlock {
    /// A block of `/31`s: the prefix is at most 30 and the address is the block's first.
    pub fn new(network: Ipv4Addr, prefix_len: u8) -> Result<PrivateBlock, PrivateBlockError> {
        let error = |reason| PrivateBlockError {
            network,
            prefix_len,
            reason,
        };
        if !(8..=30).contains(&prefix_len) {
            return Err(error("the prefix length must be 8 to 30"));
        }
        if !network.is_private() {
            return Err(error("not a private (RFC 1918) range"));
        }
        let host_bits = (1u32 << (32 - prefix_len)) - 1;
        if u32::from(network) & host_bits != 0 {
            return Err(error("the address is not the first of its block"));
        }
        Ok(PrivateBlock {
            network,
            prefix_len,
        })
    }

    /// The block's first address.
    pub fn network(&self) -> Ipv4Addr {
        self.network
    }

    /// The block's prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Reservation {
    pub(crate) id: Uuid,
    pub(crate) project_id: Uuid,
    pub(crate) plan: String,
    pub(crate) facility: String,
    pub(crate) created_at: DateTime<Utc>,
    /// The last device provisioned on it, live or gone.
    pub(crate) device_id: Option<Uuid>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Device {
    pub(crate) id: Uuid,
    pub(crate) project_id: Uuid,
    pub(crate) hostname: String,
    pub(crate) plan: String,
    pub(crate) operating_system: String,
    pub(crate) facility: String,
    pub(crate) tags: Vec<String>,
    pub(crate) userdata: String,
    pub(crate) customdata: Value,
    pub(crate) description: Option<String>,
    pub(crate) locked: bool,
    pub(crate) billing_cycle: String,
    pub(crate) ipxe_script_url: Option<String>,
    pub(crate) always_pxe: bool,
    pub(crate) hardware_reservation_id: Option<Uuid>,
    pub(crate) public_ipv4: Ipv4Addr,
    pub(crate) public_ipv6: Ipv6Addr,
    pub(crate) private_ipv4: Ipv4Addr,
    pub(crate) private_block: Ipv4Addr,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
    pub(crate) fate: DeviceFate,
    /// The undocumented state a [`DeviceFate::PassesUnknownState`] device reports.
    pub(crate) unknown_state: String,
    pub(crate) delete_requested_at: Option<DateTime<Utc>>,
}

/// Where a device is in its life, as its owner sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    Queued,
    Provisioning,
    /// A state outside the documented enum (e.g. `post_provisioning`).
    Undocumented(String),
    Active,
    Failed,
    /// Failed and moved out of the project: the owner gets 403.
    Forbidden,
    Deprovisioning,
    /// Deprovisioned: the API answers 404.
    Gone,
}

impl Status {
    /// The `state` string the API reports; `None` when the owner cannot see the device.
    pub(crate) fn api_state(&self) -> Option<&str> {
        match self {
            Status::Queued => Some("queued"),
            Status::Provisioning => Some("provisioning"),
            Status::Undocumented(s) => Some(s),
            Status::Active => Some("active"),
            Status::Failed => Some("failed"),
            Status::Deprovisioning => Some("deprovisioning"),
            Status::Forbidden | Status::Gone => None,
        }
    }

    /// The state shown in `/_sim/state`, where nothing is hidden.
    pub(crate) fn sim_state(&self) -> &str {
        match self {
            Status::Forbidden => "failed_moved_out_of_project",
            Status::Gone => "deleted",
            other => other.api_state().unwrap_or("unknown"),
        }
    }
}

/// Why a Packet operation was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PacketError {
    /// 404 with this message.
    NotFound(String),
    /// 403 with this message.
    Forbidden(String),
    /// 422 with these messages.
    Unprocessable(Vec<String>),
}

/// A create request, as the API accepts it (`DeviceCreateInMetroInput` or
/// `DeviceCreateInFacilityInput`). Unknown fields are ignored, as the API does.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct CreateDevice {
    hostname: Option<String>,
    plan: Option<String>,
    operating_system: Option<String>,
    metro: Option<String>,
    facility: Option<FacilityField>,
    #[serde(default)]
    tags: Vec<String>,
    userdata: Option<String>,
    customdata: Option<Value>,
    description: Option<String>,
    #[serde(default)]
    locked: bool,
    billing_cycle: Option<String>,
    ipxe_script_url: Option<String>,
    #[serde(default)]
    always_pxe: bool,
    hardware_reservation_id: Option<String>,
}

/// `facility` is documented as a list of codes in priority order; older clients send one code.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum FacilityField {
    One(String),
    Many(Vec<String>),
}

/// An update request (`DeviceUpdateInput`).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct UpdateDevice {
    hostname: Option<String>,
    tags: Option<Vec<String>>,
    description: Option<String>,
    locked: Option<bool>,
    userdata: Option<String>,
    customdata: Option<Value>,
    ipxe_script_url: Option<String>,
    always_pxe: Option<bool>,
    billing_cycle: Option<String>,
}

/// A machine to start or stop on the node side.
#[derive(Debug)]
pub(crate) enum NodeChange {
    Start(Box<Device>),
    Stop(Uuid),
}

impl Device {
    pub(crate) fn status(&self, now: DateTime<Utc>, t: &Timings) -> Status {
        if let Some(deleted) = self.delete_requested_at {
            return if now < deleted + t.deprovisioning() {
                Status::Deprovisioning
            } else {
                Status::Gone
            };
        }
        let elapsed = now - self.created_at;
        if elapsed < t.queued() {
            return Status::Queued;
        }
        if elapsed < t.queued() + t.provisioning() {
            return Status::Provisioning;
        }
        match self.fate {
            DeviceFate::Active => Status::Active,
            DeviceFate::Failed => Status::Failed,
            DeviceFate::FailedThenForbidden => Status::Forbidden,
            DeviceFate::StuckProvisioning => Status::Provisioning,
            DeviceFate::PassesUnknownState => {
                if elapsed < t.queued() + t.provisioning() + t.provisioning() {
                    Status::Undocumented(self.unknown_state.clone())
                } else {
                    Status::Active
                }
            }
        }
    }

    /// When the device turns (or turned) active, for the fates that get there.
    pub(crate) fn active_at(&self, t: &Timings) -> DateTime<Utc> {
        let provisioned = self.created_at + t.queued() + t.provisioning();
        match self.fate {
            DeviceFate::PassesUnknownState => provisioned + t.provisioning(),
            _ => provisioned,
        }
    }

    /// When the device left its owner's view (deprovisioned, or moved out after failing).
    pub(crate) fn gone_at(&self, t: &Timings) -> Option<DateTime<Utc>> {
        match (self.delete_requested_at, self.fate) {
            (Some(deleted), _) => Some(deleted + t.deprovisioning()),
            (None, DeviceFate::FailedThenForbidden) => {
                Some(self.created_at + t.queued() + t.provisioning())
            }
            (None, _) => None,
        }
    }

    pub(crate) fn arch(&self) -> Arch {
        catalog::plan(&self.plan).map_or(Arch::Amd64, catalog::PlanEntry::arch)
    }

    pub(crate) fn short_id(&self) -> String {
        self.id.simple().to_string()[..8].to_owned()
    }

    /// What `provisioning_percentage` reports while provisioning.
    pub(crate) fn provisioning_percentage(&self, now: DateTime<Utc>, t: &Timings) -> f64 {
        let total = t.provisioning().as_seconds_f64();
        if total <= 0.0 {
            return 100.0;
        }
        let done = (now - self.created_at - t.queued()).as_seconds_f64();
        (done / total * 100.0).clamp(0.0, 100.0)
    }
}

impl Reservation {
    /// A reservation takes a new device when its last device is gone for the cool-down period
    /// (Packet needs up to an hour to clean a machine).
    pub(crate) fn provisionable(
        &self,
        devices: &BTreeMap<Uuid, Device>,
        now: DateTime<Utc>,
        t: &Timings,
    ) -> bool {
        let Some(device) = self.device_id.and_then(|id| devices.get(&id)) else {
            return true;
        };
        device
            .gone_at(t)
            .is_some_and(|gone| now >= gone + t.reservation_cooldown())
    }

    /// The device on this reservation that its owner still sees.
    pub(crate) fn live_device(
        &self,
        devices: &BTreeMap<Uuid, Device>,
        now: DateTime<Utc>,
        t: &Timings,
    ) -> Option<Uuid> {
        let device = devices.get(&self.device_id?)?;
        device.status(now, t).api_state().map(|_| device.id)
    }
}

impl PacketCloud {
    /// A new, empty cloud whose public addresses start at a random block of 127.10.0.0 and
    /// up, so that simulators running side by side (parallel tests, a demo beside a test) do
    /// not hand out the same loopback address, whose port 6443 and 22 their nodes would both
    /// bind.
    pub(crate) fn fresh() -> PacketCloud {
        let blocks = (PUBLIC_END - PUBLIC_BASE) / 2;
        PacketCloud {
            next_public_block: rand::random_range(0..blocks / 2),
            ..PacketCloud::default()
        }
    }

    /// Adds a project unless one with this id exists, with the private block given or, by
    /// default, a /16 of 10.64.0.0 and up that no other project of the cloud has.
    pub(crate) fn ensure_project(
        &mut self,
        id: Uuid,
        name: &str,
        private: Option<PrivateBlock>,
        now: DateTime<Utc>,
    ) {
        let ordinal = u8::try_from(self.projects.len() % 128).unwrap_or(0);
        let (private_block, private_prefix) = match private {
            Some(b) => (b.network, b.prefix_len),
            None => (
                Ipv4Addr::new(10, 64 + ordinal, 0, 0),
                DEFAULT_PRIVATE_PREFIX,
            ),
        };
        self.projects.entry(id).or_insert_with(|| Project {
            id,
            name: name.to_owned(),
            created_at: now,
            private_block,
            private_prefix,
            next_private_block: 0,
        });
    }

    /// Adds a reservation of `plan` in `facility` to the project, with the id given or a new one.
    pub(crate) fn add_reservation(
        &mut self,
        project_id: Uuid,
        id: Option<Uuid>,
        plan: &str,
        facility: &str,
        now: DateTime<Utc>,
    ) -> Uuid {
        let id = id.unwrap_or_else(new_id);
        self.reservations.insert(
            id,
            Reservation {
                id,
                project_id,
                plan: plan.to_owned(),
                facility: facility.to_owned(),
                created_at: now,
                device_id: None,
            },
        );
        id
    }

    pub(crate) fn project(&self, id: Uuid) -> Result<&Project, PacketError> {
        self.projects
            .get(&id)
            .ok_or_else(|| PacketError::NotFound("Not found".to_owned()))
    }

    /// The device as its owner may see it: 404 when unknown or gone, 403 when moved out.
    pub(crate) fn visible_device(
        &self,
        id: &str,
        now: DateTime<Utc>,
        t: &Timings,
    ) -> Result<&Device, PacketError> {
        let not_found = || PacketError::NotFound("Not found".to_owned());
        let uuid = Uuid::parse_str(id).map_err(|_| not_found())?;
        let device = self.devices.get(&uuid).ok_or_else(not_found)?;
        match device.status(now, t) {
            Status::Gone => Err(not_found()),
            Status::Forbidden => Err(PacketError::Forbidden(FORBIDDEN_DEVICE.to_owned())),
            _ => Ok(device),
        }
    }

    pub(crate) fn update_device(
        &mut self,
        id: &str,
        input: UpdateDevice,
        now: DateTime<Utc>,
        t: &Timings,
    ) -> Result<Uuid, PacketError> {
        let uuid = self.visible_device(id, now, t)?.id;
        check_billing_cycle(input.billing_cycle.as_deref())
            .map_err(|e| PacketError::Unprocessable(vec![e]))?;
        let device = self
            .devices
            .get_mut(&uuid)
            .ok_or_else(|| PacketError::NotFound("Not found".to_owned()))?;
        if let Some(v) = input.hostname {
            device.hostname = v;
        }
        if let Some(v) = input.tags {
            device.tags = v;
        }
        if let Some(v) = input.description {
            device.description = Some(v);
        }
        if let Some(v) = input.locked {
            device.locked = v;
        }
        if let Some(v) = input.userdata {
            device.userdata = v;
        }
        if let Some(v) = input.customdata {
            device.customdata = v;
        }
        if let Some(v) = input.ipxe_script_url {
            device.ipxe_script_url = Some(v).filter(|u| !u.is_empty());
        }
        if let Some(v) = input.always_pxe {
            device.always_pxe = v;
        }
        if let Some(v) = input.billing_cycle {
            device.billing_cycle = v;
        }
        device.updated_at = now;
        Ok(uuid)
    }

    /// Starts deprovisioning. Deleting a device that is already deprovisioning changes nothing.
    pub(crate) fn delete_device(
        &mut self,
        id: &str,
        now: DateTime<Utc>,
        t: &Timings,
    ) -> Result<(), PacketError> {
        let uuid = self.visible_device(id, now, t)?.id;
        let device = self
            .devices
            .get_mut(&uuid)
            .ok_or_else(|| PacketError::NotFound("Not found".to_owned()))?;
        if device.locked {
            return Err(PacketError::Unprocessable(vec![
                "Cannot delete a locked device; unlock it first".to_owned(),
            ]));
        }
        if device.delete_requested_at.is_none() {
            device.delete_requested_at = Some(now);
            device.updated_at = now;
        }
        Ok(())
    }

    /// The project's devices its owner sees, oldest first, filtered as `GET
    /// /projects/{id}/devices` filters: `tag` exactly, `hostname` as a substring.
    pub(crate) fn list_devices(
        &self,
        project_id: Uuid,
        tag: Option<&str>,
        hostname: Option<&str>,
        now: DateTime<Utc>,
        t: &Timings,
    ) -> Result<Vec<&Device>, PacketError> {
        self.project(project_id)?;
        let hostname = hostname.map(str::to_lowercase);
        let mut devices: Vec<&Device> = self
            .devices
            .values()
            .filter(|d| d.project_id == project_id)
            .filter(|d| d.status(now, t).api_state().is_some())
            .filter(|d| tag.is_none_or(|tag| d.tags.iter().any(|t| t == tag)))
            .filter(|d| {
                hostname
                    .as_deref()
                    .is_none_or(|h| d.hostname.to_lowercase().contains(h))
            })
            .collect();
        devices.sort_by_key(|d| (d.created_at, d.id));
        Ok(devices)
    }

    /// Which machines to start and stop, marking them as handled so each change is reported
    /// once. A machine starts once its device is active at `start_by` (at most `max_starts` of
    /// them, those created first), and stops once its device is no longer active at `keep_by`.
    /// With both at "now", machines follow the devices exactly; with both ahead, a machine
    /// boots before its device turns active, as a real one boots during provisioning.
    pub(crate) fn node_changes(
        &mut self,
        start_by: DateTime<Utc>,
        keep_by: DateTime<Utc>,
        max_starts: usize,
        t: &Timings,
    ) -> Vec<NodeChange> {
        let mut starts: Vec<&Device> = Vec::new();
        let mut changes = Vec::new();
        for device in self.devices.values() {
            let running = self.nodes_running.contains(&device.id);
            if running && device.status(keep_by, t) != Status::Active {
                changes.push(NodeChange::Stop(device.id));
            } else if !running && device.status(start_by, t) == Status::Active {
                starts.push(device);
            }
        }
        starts.sort_by_key(|d| (d.created_at, d.id));
        changes.extend(
            starts
                .into_iter()
                .take(max_starts)
                .map(|d| NodeChange::Start(Box::new(d.clone()))),
        );
        for change in &changes {
            match change {
                NodeChange::Start(d) => self.nodes_running.insert(d.id),
                NodeChange::Stop(id) => self.nodes_running.remove(id),
            };
        }
        changes
    }

    /// The device whose machine runs under `hostname`, if any.
    pub(crate) fn running_node(&self, hostname: &str) -> Option<Device> {
        self.devices
            .values()
            .find(|d| d.hostname == hostname && self.nodes_running.contains(&d.id))
            .cloned()
    }

    /// Every running machine, to stop them all at shutdown.
    pub(crate) fn take_running_nodes(&mut self) -> Vec<Uuid> {
        std::mem::take(&mut self.nodes_running)
            .into_iter()
            .collect()
    }
}

pub(crate) fn new_id() -> Uuid {
    uuid::Builder::from_random_bytes(rand::random()).into_uuid()
}

#[cfg(test)]
mod tests;
