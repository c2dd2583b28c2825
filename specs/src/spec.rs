//! The validated spec: every variable of the tutorial's controller and worker modules, under the
//! same names and with the same defaults.
//!
//! A [`Spec`] only comes out of [`crate::parse`] or [`crate::load`], so holding one means every
//! check has passed and every default is applied. The serde and schemars attributes describe the
//! YAML a user writes, so the JSON Schema and the recorded spec match the input format.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use ipnet::Ipv4Net;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::names::{
    ApiAddress, ClusterName, DnsZone, DnsZoneId, Facility, MachinePlan, PoolName, ProjectId,
    SshPublicKey,
};
use crate::rack::{BootServerSettings, Machine, Provider};

/// Defaults, as in the tutorial's tables of optional variables.
pub(crate) mod defaults {
    use ipnet::Ipv4Net;
    use std::net::Ipv4Addr;

    use super::{MachinePlan, Networking, OsArch, OsChannel};

    pub(crate) fn controller_count() -> u32 {
        1
    }
    pub(crate) fn worker_count() -> u32 {
        1
    }
    pub(crate) fn plan() -> MachinePlan {
        // The tutorial's table says "baermetal_0", a typo of Packet's legacy plan name.
        MachinePlan("baremetal_0".into())
    }
    pub(crate) fn os_channel() -> OsChannel {
        OsChannel::Stable
    }
    pub(crate) fn os_arch() -> OsArch {
        OsArch::Amd64
    }
    pub(crate) fn os_version() -> String {
        "current".into()
    }
    pub(crate) fn networking() -> Networking {
        Networking::Calico
    }
    pub(crate) fn network_mtu() -> u32 {
        1480
    }
    pub(crate) fn pod_cidr() -> Ipv4Net {
        Ipv4Net::new_assert(Ipv4Addr::new(10, 2, 0, 0), 16)
    }
    pub(crate) fn service_cidr() -> Ipv4Net {
        Ipv4Net::new_assert(Ipv4Addr::new(10, 3, 0, 0), 16)
    }
    pub(crate) fn cluster_domain_suffix() -> String {
        "cluster.local".into()
    }
    pub(crate) fn certs_validity_period_hours() -> u32 {
        8760
    }
    pub(crate) fn setup_raid_ssd_fs() -> bool {
        true
    }
}

impl MachinePlan {
    /// The CPU architecture the plan's name announces: Packet names arm64 plans `*.arm`
    /// (`c1.large.arm`, `c2.large.arm`) and x86 plans `*.x86`; other names say nothing.
    pub fn arch(&self) -> Option<OsArch> {
        let last = self.0.rsplit('.').next().unwrap_or_default();
        if self.0.contains('.') && last.starts_with("arm") {
            Some(OsArch::Arm64)
        } else if self.0.contains('.') && last.starts_with("x86") {
            Some(OsArch::Amd64)
        } else {
            None
        }
    }
}

/// A Flatcar Container Linux release channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OsChannel {
    Stable,
    Beta,
    Alpha,
    Edge,
}

/// A Flatcar Container Linux architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OsArch {
    Amd64,
    Arm64,
}

/// The pod network provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Networking {
    Calico,
    Flannel,
}

macro_rules! names {
    ($($ty:ident { $($variant:ident => $text:literal),* })*) => {$(
        impl $ty {
            /// Every accepted spelling, for error messages.
            pub(crate) const NAMES: &'static [&'static str] = &[$($text),*];

            /// The spelling used in the spec.
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $text),* }
            }

            pub(crate) fn from_name(name: &str) -> Option<Self> {
                match name { $($text => Some($ty::$variant),)* _ => None }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )*};
}

names! {
    OsChannel { Stable => "stable", Beta => "beta", Alpha => "alpha", Edge => "edge" }
    OsArch { Amd64 => "amd64", Arm64 => "arm64" }
    Networking { Calico => "calico", Flannel => "flannel" }
    TaintEffect { NoSchedule => "NoSchedule", PreferNoSchedule => "PreferNoSchedule", NoExecute => "NoExecute" }
}

/// How Flatcar is installed, shared by the controllers and each pool (`os_*`, `ipxe_script_url`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct OsSettings {
    /// Flatcar channel to install from.
    #[serde(default = "defaults::os_channel")]
    pub os_channel: OsChannel,
    /// Flatcar architecture; must match the plan (`*.arm` plans are arm64).
    #[serde(default = "defaults::os_arch")]
    pub os_arch: OsArch,
    /// Flatcar version, only used when booting from `ipxe_script_url`.
    #[serde(default = "defaults::os_version")]
    pub os_version: String,
    /// iPXE script to boot Flatcar from (Packet's `custom_ipxe`); absent means Packet's Flatcar image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipxe_script_url: Option<String>,
}

/// A Packet hardware reservation for a node, written as in Terraform: a reservation UUID,
/// `next-available`, or nothing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum HardwareReservation {
    /// No reservation: an on-demand device.
    #[default]
    None,
    /// Any reservation of the project matching the plan and facility (`next-available`).
    NextAvailable,
    /// This reservation (a full UUID).
    Id(String),
}

impl HardwareReservation {
    /// The value sent to the Packet API as `hardware_reservation_id`; `None` is omitted.
    pub fn api_value(&self) -> Option<&str> {
        match self {
            HardwareReservation::None => None,
            HardwareReservation::NextAvailable => Some("next-available"),
            HardwareReservation::Id(id) => Some(id),
        }
    }
}

impl Serialize for HardwareReservation {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.api_value().unwrap_or(""))
    }
}

impl<'de> Deserialize<'de> for HardwareReservation {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Ok(match text.as_str() {
            "" => HardwareReservation::None,
            "next-available" => HardwareReservation::NextAvailable,
            _ => HardwareReservation::Id(text),
        })
    }
}

impl JsonSchema for HardwareReservation {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "HardwareReservation".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A Packet hardware reservation UUID, or `next-available`.",
            "type": "string",
            "pattern": "^(next-available|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"
        })
    }
}

/// Hardware reservations of a group of nodes, as Terraform's `lookup(reservation_ids,
/// "<role>-<i>", reservation_ids_default)`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, JsonSchema)]
pub struct Reservations {
    /// Reservation per node, keyed `controller-<i>` (cluster) or `worker-<i>` (pool).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub reservation_ids: BTreeMap<String, HardwareReservation>,
    /// Reservation for the nodes not listed in `reservation_ids`.
    #[serde(default, skip_serializing_if = "is_none_reservation")]
    pub reservation_ids_default: HardwareReservation,
}

fn is_none_reservation(r: &HardwareReservation) -> bool {
    *r == HardwareReservation::None
}

impl Reservations {
    /// The reservation of node `<role>-<index>`.
    pub fn for_node(&self, role: Role, index: u32) -> HardwareReservation {
        self.reservation_ids
            .get(&format!("{}-{index}", role.key_prefix()))
            .unwrap_or(&self.reservation_ids_default)
            .clone()
    }
}

/// What a node is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Controller,
    Worker,
}

impl Role {
    /// The prefix of the node's key in `reservation_ids` (`controller-0`, `worker-2`).
    pub fn key_prefix(self) -> &'static str {
        match self {
            Role::Controller => "controller",
            Role::Worker => "worker",
        }
    }
}

/// A Kubernetes taint effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum TaintEffect {
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
}

/// A taint registered by the kubelet of every node of a pool.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct Taint {
    pub key: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
    pub effect: TaintEffect,
}

impl fmt::Display for Taint {
    /// The kubelet's `--register-with-taints` form, `key=value:Effect`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.value.is_empty() {
            write!(f, "{}:{}", self.key, self.effect)
        } else {
            write!(f, "{}={}:{}", self.key, self.value, self.effect)
        }
    }
}

/// API endpoints, for the simulator or a private installation. Credentials are never here.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Endpoints {
    /// Base URL of the Packet API (default `https://api.equinix.com/metal/v1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packet_api_url: Option<String>,
    /// Route53 endpoint URL (default: the AWS SDK's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route53_endpoint_url: Option<String>,
}

/// Labels accepted as the tutorial's `"k=v,k2=v2"` string or as a mapping.
#[derive(JsonSchema)]
#[serde(untagged)]
// Never constructed: it only tells schemars which input forms are accepted.
#[allow(dead_code)]
enum LabelsInput {
    Text(String),
    Map(BTreeMap<String, String>),
}

/// Taints accepted as the tutorial's `"k=v:Effect,..."` string or as a list.
#[derive(JsonSchema)]
#[serde(untagged)]
// Never constructed: it only tells schemars which input forms are accepted.
#[allow(dead_code)]
enum TaintsInput {
    Text(String),
    List(Vec<TaintItemInput>),
}

#[derive(JsonSchema)]
#[serde(untagged)]
// Never constructed: it only tells schemars which input forms are accepted.
#[allow(dead_code)]
enum TaintItemInput {
    Text(String),
    Taint(Taint),
}

/// A pool of identical workers (the tutorial's worker module).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct WorkerPool {
    /// Name of the pool, part of its hostnames `<cluster>-<pool>-worker-<i>`.
    pub pool_name: PoolName,
    /// Number of workers; may be 0 as long as the cluster has workers.
    #[serde(default = "defaults::worker_count")]
    pub count: u32,
    /// Packet plan of the workers; changing it recreates the pool's nodes.
    #[serde(rename = "type", default = "defaults::plan")]
    pub plan: MachinePlan,
    /// Node labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(with = "LabelsInput")]
    pub labels: BTreeMap<String, String>,
    /// Node taints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "TaintsInput")]
    pub taints: Vec<Taint>,
    #[serde(flatten)]
    pub os: OsSettings,
    /// Create a RAID 0 of all extra disks.
    #[serde(default)]
    pub setup_raid: bool,
    /// Create a RAID 0 of the extra HDDs only.
    #[serde(default)]
    pub setup_raid_hdd: bool,
    /// Create a RAID 0 of the extra SSDs only.
    #[serde(default)]
    pub setup_raid_ssd: bool,
    /// Create a file system on the SSD RAID.
    #[serde(default = "defaults::setup_raid_ssd_fs")]
    pub setup_raid_ssd_fs: bool,
    #[serde(flatten)]
    pub reservations: Reservations,
}

/// A validated spec.yaml with defaults applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Spec {
    /// Unique cluster name, prepended to dns_zone.
    pub cluster_name: ClusterName,
    /// Route53 zone the cluster's records go in; absent when the spec names `api_address`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_zone: Option<DnsZone>,
    /// Route53 zone id of `dns_zone`; absent with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_zone_id: Option<DnsZoneId>,
    /// The API's address when the user's own DNS or VIP serves it (`provider: redfish` only):
    /// no Route53 at all, and etcd's members are named by their private addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_address: Option<ApiAddress>,
    /// SSH public keys for user `core`.
    pub ssh_keys: Vec<SshPublicKey>,
    /// Who the cluster's secrets are encrypted to: age recipients (`age1...`) or SSH public keys
    /// (ed25519, RSA). When absent, the `ssh_keys` age takes serve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipients: Option<Vec<String>>,
    /// Where generated assets (secrets) go; a relative path is resolved against the spec's directory.
    #[schemars(with = "String")]
    pub asset_dir: PathBuf,
    /// Who creates the machines: `packet` (the default) or `redfish` (the machines are listed).
    #[serde(default, skip_serializing_if = "Provider::is_packet")]
    pub provider: Provider,
    /// Packet project id; with `provider: packet` only, where it is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<ProjectId>,
    /// Packet facility of every node; with `provider: packet` only, where it is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facility: Option<Facility>,
    /// The machines of the rack, with `provider: redfish` only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub machines: Vec<Machine>,
    /// loko's network boot server during a run, with `provider: redfish` only (required there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_server: Option<BootServerSettings>,
    /// CIDRs allowed to SSH into the nodes.
    #[schemars(with = "Vec<String>")]
    pub management_cidrs: Vec<Ipv4Net>,
    /// Private CIDR Packet assigned to the project in the facility.
    #[schemars(with = "String")]
    pub node_private_cidr: Ipv4Net,
    /// Number of controllers.
    #[serde(default = "defaults::controller_count")]
    pub controller_count: u32,
    /// Packet plan of the controllers.
    #[serde(default = "defaults::plan")]
    pub controller_type: MachinePlan,
    #[serde(flatten)]
    pub os: OsSettings,
    /// Pod network provider.
    #[serde(default = "defaults::networking")]
    pub networking: Networking,
    /// CNI interface MTU (calico only).
    #[serde(default = "defaults::network_mtu")]
    pub network_mtu: u32,
    /// IPv4 range of pods.
    #[serde(default = "defaults::pod_cidr")]
    #[schemars(with = "String")]
    pub pod_cidr: Ipv4Net,
    /// IPv4 range of services.
    #[serde(default = "defaults::service_cidr")]
    #[schemars(with = "String")]
    pub service_cidr: Ipv4Net,
    /// DNS suffix of services answered by CoreDNS.
    #[serde(default = "defaults::cluster_domain_suffix")]
    pub cluster_domain_suffix: String,
    /// Usage reporting to upstreams (Calico).
    #[serde(default)]
    pub enable_reporting: bool,
    /// The Kubernetes aggregation layer.
    #[serde(default)]
    pub enable_aggregation: bool,
    #[serde(flatten)]
    pub reservations: Reservations,
    /// Validity of every certificate, in hours.
    #[serde(default = "defaults::certs_validity_period_hours")]
    pub certs_validity_period_hours: u32,
    /// The worker pools.
    pub worker_pools: Vec<WorkerPool>,
    /// API endpoint overrides.
    #[serde(default)]
    pub endpoints: Endpoints,
}
