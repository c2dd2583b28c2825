//! The desired cluster: what a spec asks to exist, node by node and record by record.
//!
//! This is what the provisioning steps build and what the journal records for the next run's
//! [`crate::classify`], so it is plain data (Serialize, Deserialize, PartialEq) with a stable
//! [`DesiredCluster::digest`].

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::names::{
    ApiAddress, ClusterName, DnsZone, DnsZoneId, Facility, MachinePlan, PoolName, ProjectId,
    SshPublicKey,
};
use crate::rack::{Machine, MachineRole, Provider};
use crate::spec::{
    HardwareReservation, Networking, OsArch, OsChannel, OsSettings, Role, Spec, Taint, WorkerPool,
};

/// The cluster's DNS service is this host of service_cidr (Lokomotive's `cidrhost(service_cidr, 10)`).
const DNS_SERVICE_HOST: u32 = 10;
/// The apiserver's `kubernetes` service is the first host of service_cidr.
const APISERVER_SERVICE_HOST: u32 = 1;
/// TTL of every record, as the Terraform module set it.
const RECORD_TTL_SECONDS: u32 = 300;

/// Settings that hold for the whole cluster; none of them can change after installation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterSettings {
    pub cluster_name: ClusterName,
    /// The Route53 zone; unset (empty, and left out of the record, so that a zone's cluster
    /// records as before) when the spec names `api_address`. Read it through
    /// [`ClusterSettings::route53`].
    #[serde(default = "DnsZone::unset", skip_serializing_if = "DnsZone::is_unset")]
    pub dns_zone: DnsZone,
    /// The Route53 zone's id; unset with `dns_zone`.
    #[serde(
        default = "DnsZoneId::unset",
        skip_serializing_if = "DnsZoneId::is_unset"
    )]
    pub dns_zone_id: DnsZoneId,
    /// The API's address as the spec names it; `None` when Route53 names it
    /// (`<cluster>.<dns_zone>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_address: Option<ApiAddress>,
    /// The Packet project; `None` for a cluster of listed machines (`provider: redfish`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<ProjectId>,
    /// The Packet facility; `None` for a cluster of listed machines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facility: Option<Facility>,
    pub ssh_keys: Vec<SshPublicKey>,
    pub management_cidrs: Vec<Ipv4Net>,
    pub node_private_cidr: Ipv4Net,
    pub controller_count: u32,
    pub controller_type: MachinePlan,
    pub controller_os: OsImage,
    pub networking: Networking,
    /// CNI MTU; only meaningful with calico.
    pub network_mtu: u32,
    pub pod_cidr: Ipv4Net,
    pub service_cidr: Ipv4Net,
    pub cluster_domain_suffix: String,
    pub enable_reporting: bool,
    pub enable_aggregation: bool,
    pub certs_validity_period_hours: u32,
}

impl ClusterSettings {
    /// The Route53 hosted zone and its id the cluster's records go to; `None` when the spec
    /// names the API address itself: the cluster has no record and loko never calls Route53.
    pub fn route53(&self) -> Option<(&DnsZone, &DnsZoneId)> {
        match self.api_address {
            Some(_) => None,
            None => Some((&self.dns_zone, &self.dns_zone_id)),
        }
    }

    /// `<label>.<dns_zone>`: a record's name.
    fn in_zone(&self, label: &str) -> String {
        format!("{label}.{}", self.dns_zone)
    }

    /// Where clients reach the apiserver: `(public, private)`, the first for kubectl and loko,
    /// the second for the kubelets. `(<cluster>.<zone>, <cluster>-private.<zone>)`, the names of
    /// the records [`DesiredCluster::dns_records`] holds; both the `api_address` when the spec
    /// names it, as Typhoon's bare-metal module uses its `k8s_domain_name` for both.
    pub fn apiserver_hosts(&self) -> (String, String) {
        match &self.api_address {
            Some(address) => (address.to_string(), address.to_string()),
            None => {
                let cluster = &self.cluster_name;
                (
                    self.in_zone(cluster.as_str()),
                    self.in_zone(&format!("{cluster}-private")),
                )
            }
        }
    }

    /// The Packet project, for what only a Packet cluster does (its devices, its simulator).
    pub fn packet_project(&self) -> Result<&ProjectId, NotPacket> {
        self.project_id.as_ref().ok_or(NotPacket)
    }

    /// Who provides the machines: Packet when the cluster has a Packet project (a Packet spec
    /// requires one, a rack's refuses it), else the rack's listed machines.
    pub fn provider(&self) -> Provider {
        match self.project_id {
            Some(_) => Provider::Packet,
            None => Provider::Redfish,
        }
    }
}

/// A cluster of listed machines (`provider: redfish`) asked for what only Packet has.
#[derive(Debug, thiserror::Error)]
#[error("the cluster's machines are listed (provider: redfish): it has no Packet project")]
pub struct NotPacket;

/// How a node gets Flatcar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum OsImage {
    /// Packet's own Flatcar image of the channel (`flatcar_<channel>`).
    Flatcar { channel: OsChannel, arch: OsArch },
    /// Boot an iPXE script that runs `flatcar-install` (Packet's `custom_ipxe`).
    Ipxe {
        script_url: String,
        channel: OsChannel,
        arch: OsArch,
        version: String,
    },
}

impl OsImage {
    fn from_settings(os: &OsSettings) -> Self {
        match &os.ipxe_script_url {
            Some(url) => OsImage::Ipxe {
                script_url: url.clone(),
                channel: os.os_channel,
                arch: os.os_arch,
                version: os.os_version.clone(),
            },
            None => OsImage::Flatcar {
                channel: os.os_channel,
                arch: os.os_arch,
            },
        }
    }

    /// The Packet API's `operating_system` slug for the device.
    pub fn packet_operating_system(&self) -> String {
        match self {
            OsImage::Flatcar { channel, .. } => format!("flatcar_{channel}"),
            OsImage::Ipxe { .. } => "custom_ipxe".into(),
        }
    }

    /// The architecture Flatcar is installed for.
    pub fn arch(&self) -> OsArch {
        match self {
            OsImage::Flatcar { arch, .. } | OsImage::Ipxe { arch, .. } => *arch,
        }
    }
}

/// The RAID a worker builds from its extra disks. The module's flags are exclusive and the first
/// set wins, so the four flags collapse to one choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RaidSetup {
    None,
    /// Every extra disk, `/dev/md/node-local-storage`, with a file system.
    AllDisks,
    /// Extra HDDs only, `/dev/md/node-local-hdd-storage`, with a file system.
    Hdd,
    /// Extra SSDs only, `/dev/md/node-local-ssd-storage`, with a file system if `filesystem`.
    Ssd {
        filesystem: bool,
    },
}

impl RaidSetup {
    fn from_pool(pool: &WorkerPool) -> Self {
        if pool.setup_raid {
            RaidSetup::AllDisks
        } else if pool.setup_raid_hdd {
            RaidSetup::Hdd
        } else if pool.setup_raid_ssd {
            RaidSetup::Ssd {
                filesystem: pool.setup_raid_ssd_fs,
            }
        } else {
            RaidSetup::None
        }
    }
}

/// A worker pool as desired: what all its nodes share, and how many there are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredPool {
    pub name: PoolName,
    pub count: u32,
    pub plan: MachinePlan,
    pub os: OsImage,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub raid: RaidSetup,
}

/// One device to exist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredNode {
    /// `<cluster>-controller-<i>` or `<cluster>-<pool>-worker-<i>`.
    pub hostname: String,
    pub role: Role,
    /// The worker pool; `None` for controllers.
    pub pool: Option<PoolName>,
    /// Index within the controllers or within the pool.
    pub index: u32,
    pub plan: MachinePlan,
    /// The Packet facility; `None` for a listed machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facility: Option<Facility>,
    pub os: OsImage,
    pub reservation: HardwareReservation,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub raid: RaidSetup,
    /// The rack's machine that becomes this node (`provider: redfish`); `None` on Packet.
    /// Absent from Packet nodes' records, so their digests and earlier records stay as they were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<Machine>,
}

/// What a DNS record resolves to, once the devices have addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RecordTarget {
    /// Every controller's public IPv4 (the apiserver for kubectl).
    ControllersPublicIpv4,
    /// Every controller's private IPv4 (the apiserver for kubelets).
    ControllersPrivateIpv4,
    /// Controller `index`'s private IPv4 (its etcd member).
    ControllerPrivateIpv4 { index: u32 },
}

/// A Route53 A record of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsRecord {
    /// The fully qualified name, without the trailing dot.
    pub name: String,
    pub zone: DnsZone,
    pub zone_id: DnsZoneId,
    pub target: RecordTarget,
    pub ttl_seconds: u32,
}

/// The layout of a desired cluster as a journal records it ([`DesiredCluster::to_record`]).
/// Journals outlive loko versions: a later loko reads every earlier format. A field added to
/// the desired cluster (or to a type in it) must read as a default when it is missing (an
/// `Option`, or `#[serde(default)]`), so the records of earlier versions stay readable; a
/// change that cannot (a renamed or retyped field) bumps this number and teaches
/// [`DesiredCluster::from_record`] to read the earlier formats. Records written before the
/// format was recorded read as format 0, which has the layout of format 1.
pub const DESIRED_FORMAT: u32 = 1;

/// A recorded desired cluster this loko cannot read.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(
        "it has format {found}, and this loko reads formats up to {DESIRED_FORMAT}: a newer loko recorded it"
    )]
    Newer { found: u64 },
    #[error("it cannot be read: {0}")]
    Decode(#[from] serde_json::Error),
}

/// Everything a spec asks to exist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredCluster {
    pub settings: ClusterSettings,
    pub pools: Vec<DesiredPool>,
    /// Controllers first, then each pool's workers in pool order.
    pub nodes: Vec<DesiredNode>,
    pub dns_records: Vec<DnsRecord>,
    /// The `kubernetes` service IP (first host of service_cidr), a SAN of the apiserver cert.
    pub apiserver_service_ip: Ipv4Addr,
    /// The cluster DNS service IP (10th host of service_cidr), the kubelets' `--cluster-dns`.
    pub dns_service_ip: Ipv4Addr,
    /// The spec's `recipients`, as written; `None` when it names none and its `ssh_keys` serve
    /// ([`DesiredCluster::recipients`]). Left out of the record when `None`, so that the digest
    /// of a spec without it is the one an earlier loko recorded (its interrupted run resumes).
    /// Not a cluster setting: it can change on a built cluster.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "recipients"
    )]
    pub spec_recipients: Option<Vec<String>>,
}

/// The `n`th host of a range, as Terraform's `cidrhost`. Validation keeps service_cidr at /28 or
/// larger, so hosts 1 and 10 exist.
fn cidr_host(net: Ipv4Net, n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()).saturating_add(n))
}

impl Spec {
    /// The `index`th machine listed with `role`: controller i is the i-th machine of role
    /// controller, worker i of a pool the i-th machine of that pool. `None` on Packet, where
    /// nothing is listed.
    fn listed_machine(&self, role: &MachineRole, index: u32) -> Option<Machine> {
        let index = usize::try_from(index).ok()?;
        self.machines
            .iter()
            .filter(|m| &m.role == role)
            .nth(index)
            .cloned()
    }

    /// The desired cluster of this spec.
    pub fn desired(&self) -> DesiredCluster {
        let controller_os = OsImage::from_settings(&self.os);
        let settings = ClusterSettings {
            cluster_name: self.cluster_name.clone(),
            dns_zone: self.dns_zone.clone().unwrap_or_else(DnsZone::unset),
            dns_zone_id: self.dns_zone_id.clone().unwrap_or_else(DnsZoneId::unset),
            api_address: self.api_address.clone(),
            project_id: self.project_id.clone(),
            facility: self.facility.clone(),
            ssh_keys: self.ssh_keys.clone(),
            management_cidrs: self.management_cidrs.clone(),
            node_private_cidr: self.node_private_cidr,
            controller_count: self.controller_count,
            controller_type: self.controller_type.clone(),
            controller_os: controller_os.clone(),
            networking: self.networking,
            network_mtu: self.network_mtu,
            pod_cidr: self.pod_cidr,
            service_cidr: self.service_cidr,
            cluster_domain_suffix: self.cluster_domain_suffix.clone(),
            enable_reporting: self.enable_reporting,
            enable_aggregation: self.enable_aggregation,
            certs_validity_period_hours: self.certs_validity_period_hours,
        };
        let cluster = &self.cluster_name;
        let mut nodes: Vec<DesiredNode> = (0..self.controller_count)
            .map(|index| (index, self.listed_machine(&MachineRole::Controller, index)))
            .map(|(index, machine)| DesiredNode {
                hostname: listed_hostname(machine.as_ref())
                    .unwrap_or_else(|| controller_hostname(cluster, index)),
                role: Role::Controller,
                pool: None,
                index,
                plan: self.controller_type.clone(),
                facility: self.facility.clone(),
                os: controller_os.clone(),
                reservation: self.reservations.for_node(Role::Controller, index),
                labels: BTreeMap::new(),
                taints: Vec::new(),
                raid: RaidSetup::None,
                machine,
            })
            .collect();
        let pools: Vec<DesiredPool> = self
            .worker_pools
            .iter()
            .map(|p| DesiredPool {
                name: p.pool_name.clone(),
                count: p.count,
                plan: p.plan.clone(),
                os: OsImage::from_settings(&p.os),
                labels: p.labels.clone(),
                taints: p.taints.clone(),
                raid: RaidSetup::from_pool(p),
            })
            .collect();
        for (pool, spec_pool) in pools.iter().zip(&self.worker_pools) {
            let role = MachineRole::Worker(pool.name.clone());
            nodes.extend((0..pool.count).map(|index| {
                let machine = self.listed_machine(&role, index);
                DesiredNode {
                    hostname: listed_hostname(machine.as_ref())
                        .unwrap_or_else(|| worker_hostname(cluster, &pool.name, index)),
                    role: Role::Worker,
                    pool: Some(pool.name.clone()),
                    index,
                    plan: pool.plan.clone(),
                    facility: self.facility.clone(),
                    os: pool.os.clone(),
                    reservation: spec_pool.reservations.for_node(Role::Worker, index),
                    labels: pool.labels.clone(),
                    taints: pool.taints.clone(),
                    raid: pool.raid,
                    machine,
                }
            }));
        }
        let dns_records = settings
            .route53()
            .map(|(zone, zone_id)| {
                let record = |label: String, target: RecordTarget| DnsRecord {
                    name: settings.in_zone(&label),
                    zone: zone.clone(),
                    zone_id: zone_id.clone(),
                    target,
                    ttl_seconds: RECORD_TTL_SECONDS,
                };
                let mut records = vec![
                    record(cluster.to_string(), RecordTarget::ControllersPublicIpv4),
                    record(
                        format!("{cluster}-private"),
                        RecordTarget::ControllersPrivateIpv4,
                    ),
                ];
                records.extend((0..self.controller_count).map(|index| {
                    record(
                        etcd_label(cluster, index),
                        RecordTarget::ControllerPrivateIpv4 { index },
                    )
                }));
                records
            })
            .unwrap_or_default();
        DesiredCluster {
            settings,
            pools,
            nodes,
            dns_records,
            apiserver_service_ip: cidr_host(self.service_cidr, APISERVER_SERVICE_HOST),
            dns_service_ip: cidr_host(self.service_cidr, DNS_SERVICE_HOST),
            spec_recipients: self.recipients.clone(),
        }
    }
}

/// The SSH keys that serve as recipients when the spec names none: those age encrypts to
/// (ed25519, and RSA of 2048 bits or more); a shorter RSA key logs into the nodes but age
/// refuses to encrypt to it.
fn recipients_of_ssh_keys(ssh_keys: &[SshPublicKey]) -> Vec<String> {
    ssh_keys
        .iter()
        .map(|key| key.as_str().to_owned())
        .filter(|key| vault::Recipients::parse(std::slice::from_ref(key)).is_ok())
        .collect()
}

/// A rack's node is named by its machine, as Typhoon's bare-metal nodes are by their `name`:
/// a machine removed from the middle of its pool's list takes its node along, and moves no
/// other machine to another node (which positional names would, reinstalling every machine
/// after it). `None` on Packet.
fn listed_hostname(machine: Option<&Machine>) -> Option<String> {
    machine.map(|m| m.name.to_string())
}

/// `<cluster>-etcd<i>`: controller i's etcd record, in the zone.
fn etcd_label(cluster: &ClusterName, index: u32) -> String {
    format!("{cluster}-etcd{index}")
}

/// `<cluster>-controller-<i>`, as Lokomotive named controllers.
pub fn controller_hostname(cluster: &ClusterName, index: u32) -> String {
    format!("{cluster}-controller-{index}")
}

/// `<cluster>-<pool>-worker-<i>`, as Lokomotive named workers.
pub fn worker_hostname(cluster: &ClusterName, pool: &PoolName, index: u32) -> String {
    format!("{cluster}-{pool}-worker-{index}")
}

impl DesiredCluster {
    /// A stable SHA-256 (hex) of the desired cluster: equal clusters have equal digests across
    /// runs and builds. The encoding is the JSON of the fields in declaration order, maps sorted.
    pub fn digest(&self) -> String {
        // Serializing plain structs, enums and BTreeMaps to JSON cannot fail.
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        hex::encode(Sha256::digest(&bytes))
    }

    /// Where controller `index`'s etcd member is reached, by its peers, the apiservers and
    /// its certificates: `<cluster>-etcd<i>.<zone>`, its record; without a zone (the spec names
    /// `api_address`), its machine's private IPv4, which the spec lists, so that nothing has
    /// to resolve (Typhoon's bare-metal module names members by `controllers[].domain`, a name
    /// the user's DNS must serve; loko's rack has the address at hand instead).
    pub fn etcd_host(&self, index: u32) -> String {
        let machine = self
            .controllers()
            .find(|node| node.index == index)
            .and_then(|node| node.machine.as_ref());
        match (self.settings.route53(), machine) {
            (None, Some(machine)) => machine.private_ipv4.to_string(),
            _ => self
                .settings
                .in_zone(&etcd_label(&self.settings.cluster_name, index)),
        }
    }

    /// The controllers, in index order.
    pub fn controllers(&self) -> impl Iterator<Item = &DesiredNode> {
        self.nodes.iter().filter(|n| n.role == Role::Controller)
    }

    /// The workers, pool by pool.
    pub fn workers(&self) -> impl Iterator<Item = &DesiredNode> {
        self.nodes.iter().filter(|n| n.role == Role::Worker)
    }

    /// The desired cluster as a journal records it: its fields and `format`
    /// ([`DESIRED_FORMAT`]).
    pub fn to_record(&self) -> Result<serde_json::Value, serde_json::Error> {
        let mut record = serde_json::to_value(self)?;
        if let Some(fields) = record.as_object_mut() {
            fields.insert("format".into(), DESIRED_FORMAT.into());
        }
        Ok(record)
    }

    /// Reads a desired cluster a journal recorded, of this format or an earlier one.
    pub fn from_record(record: &serde_json::Value) -> Result<DesiredCluster, RecordError> {
        let found = record
            .get("format")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        if found > u64::from(DESIRED_FORMAT) {
            return Err(RecordError::Newer { found });
        }
        Ok(DesiredCluster::deserialize(record)?)
    }

    /// Who the cluster's secrets are encrypted to (for [`vault::Recipients::parse`]): the
    /// spec's `recipients`, or when it names none its `ssh_keys` that age takes. A record of a
    /// loko from before recipients existed has none, so its `ssh_keys` serve, as they did.
    pub fn recipients(&self) -> Vec<String> {
        self.spec_recipients
            .clone()
            .unwrap_or_else(|| recipients_of_ssh_keys(&self.settings.ssh_keys))
    }

    /// A node by hostname.
    pub fn node(&self, hostname: &str) -> Option<&DesiredNode> {
        self.nodes.iter().find(|n| n.hostname == hostname)
    }

    /// The hardware reservations the cluster relies on (what a project must offer for it to
    /// be created, e.g. the demo's simulated one): each one a node names by id, then, per plan
    /// and facility, one for each node that takes the `next-available` one.
    pub fn reservations_needed(&self) -> Vec<ReservationNeed> {
        let mut needs = Vec::new();
        let mut any: BTreeMap<(String, String), u32> = BTreeMap::new();
        // Reservations are Packet's: a listed machine has no facility and needs none.
        for node in &self.nodes {
            let Some(facility) = &node.facility else {
                continue;
            };
            let (plan, facility) = (node.plan.as_str().to_owned(), facility.as_str().to_owned());
            match &node.reservation {
                HardwareReservation::Id(id) => needs.push(ReservationNeed {
                    plan,
                    facility,
                    count: 1,
                    id: Some(id.clone()),
                    node: Some(node.hostname.clone()),
                }),
                HardwareReservation::NextAvailable => {
                    *any.entry((plan, facility)).or_default() += 1
                }
                HardwareReservation::None => {}
            }
        }
        needs.extend(
            any.into_iter()
                .map(|((plan, facility), count)| ReservationNeed {
                    plan,
                    facility,
                    count,
                    id: None,
                    node: None,
                }),
        );
        needs
    }
}

/// Hardware reservations of one plan in one facility that a cluster relies on
/// ([`DesiredCluster::reservations_needed`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReservationNeed {
    pub plan: String,
    pub facility: String,
    pub count: u32,
    /// The reservation a node names; none for `next-available` ones.
    pub id: Option<String>,
    /// The node naming `id`.
    pub node: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_ips_are_hosts_1_and_10_of_the_range() {
        let net: Ipv4Net = "10.23.0.0/24".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            cidr_host(net, APISERVER_SERVICE_HOST),
            Ipv4Addr::new(10, 23, 0, 1)
        );
        assert_eq!(
            cidr_host(net, DNS_SERVICE_HOST),
            Ipv4Addr::new(10, 23, 0, 10)
        );
    }

    #[test]
    fn the_first_raid_flag_wins() {
        let os = OsSettings {
            os_channel: OsChannel::Stable,
            os_arch: OsArch::Amd64,
            os_version: "current".into(),
            ipxe_script_url: None,
        };
        let mut pool = WorkerPool {
            pool_name: PoolName("p".into()),
            count: 1,
            plan: MachinePlan("t1.small.x86".into()),
            labels: BTreeMap::new(),
            taints: Vec::new(),
            os,
            setup_raid: false,
            setup_raid_hdd: false,
            setup_raid_ssd: true,
            setup_raid_ssd_fs: false,
            reservations: Default::default(),
        };
        assert_eq!(
            RaidSetup::from_pool(&pool),
            RaidSetup::Ssd { filesystem: false }
        );
        pool.setup_raid_hdd = true;
        assert_eq!(RaidSetup::from_pool(&pool), RaidSetup::Hdd);
        pool.setup_raid = true;
        assert_eq!(RaidSetup::from_pool(&pool), RaidSetup::AllDisks);
        assert_eq!(
            OsImage::from_settings(&pool.os).packet_operating_system(),
            "flatcar_stable"
        );
    }
}
