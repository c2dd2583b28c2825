//! The kinds of the provisioning steps: each kind's name, what its steps are given and what they
//! publish, as types (see [`engine::kind`]).
//!
//! This is the contract between the DAG builders ([`crate::cluster`]),
//! which build steps from a kind's params, the actions ([`crate::actions`]), which receive them
//! decoded and return the kind's outputs, and the steps that read a dependency's outputs through
//! the kind that wrote them. Data only: it names no client, so both halves import it and
//! neither imports the other. The journal keeps the outputs as JSON objects whose keys are the
//! fields here; renaming a field renames a journal key, which older journals must still read.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

use engine::{ActionKind, StepContext, StepError, StepKind};
use journal::StepId;
use serde::{Deserialize, Serialize};

use crate::assets::manifests::ManifestReport;
use crate::packet::spec::DeviceSpec;

/// Declares each kind: its marker type, its name and its params and outputs types.
macro_rules! kinds {
    ($($(#[$doc:meta])* $kind:ident = $name:literal, $params:ty => $outputs:ty;)*) => {$(
        $(#[$doc])*
        pub struct $kind;

        impl StepKind for $kind {
            const KIND: ActionKind = ActionKind::new($name);
            type Params = $params;
            type Outputs = $outputs;
        }
    )*};
}

kinds! {
    /// The CA, keys and certificates (no params: they come from the desired cluster).
    PkiKind = "assets/pki", () => PkiOutputs;
    /// The kubeconfigs and the kubelets' bootstrap token.
    KubeconfigsKind = "assets/kubeconfigs", KubeconfigsParams => KubeconfigsOutputs;
    /// The static control plane's pods and the cluster's manifests (no params).
    ManifestsKind = "assets/manifests", () => ManifestsOutputs;
    /// A node's Ignition and SSH host key.
    IgnitionKind = "ignition", NodeParams => IgnitionOutputs;
    /// A node's device.
    DeviceKind = "device", DeviceParams => DeviceOutputs;
    /// A rack node's listed machine, booted through its BMC into the node's Ignition; it
    /// publishes a device's outputs, so every reader of a node's addresses reads either.
    MachineKind = "machine", MachineParams => DeviceOutputs;
    /// A rack node's machine powered off (its disk wiped first with `boot_server.retire: wipe`)
    /// and no longer served: its node left the spec, or the cluster is destroyed.
    RetireMachineKind = "retire-machine", MachineParams => RetireOutputs;
    /// Every device with a tag: a node that left the spec, or the whole cluster on destroy.
    DeleteDevicesKind = "delete-devices", DeleteDevicesParams => DeleteDevicesOutputs;
    /// The cluster's DNS records.
    DnsKind = "dns", DnsParams => DnsOutputs;
    /// Deleting the cluster's DNS records.
    DeleteRecordsKind = "delete-records", DeleteRecordsParams => DeleteRecordsOutputs;
    /// The etcd certificates to a controller.
    EtcdSecretsKind = "etcd-secrets", NodeParams => EtcdSecretsOutputs;
    /// A controller's static control plane, copied over SSH.
    ControlPlaneKind = "control-plane", ControlPlaneParams => ControlPlaneOutputs;
    /// The cluster's manifests applied through the API once it answers.
    BootstrapKind = "bootstrap", ApiParams => BootstrapOutputs;
    /// A worker's node cordoned, drained and its Node deleted before its device is.
    DrainKind = "drain", DrainParams => DrainOutputs;
    /// The apiserver answers and every node is Ready.
    ReadyKind = "ready", ReadyParams => ReadyOutputs;
}

/// The node a step is about.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeParams {
    pub hostname: String,
}

/// Whether the kubeconfigs step issues a bootstrap token for nodes about to boot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KubeconfigsParams {
    /// Some node of the DAG has no device yet: its Ignition needs a token with at least half
    /// its lifetime left.
    pub nodes_to_boot: bool,
}

/// A device step's params.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceParams {
    pub spec: DeviceSpec,
    /// Nodes whose named reservations a `next-available` create could take.
    pub named_first: Vec<String>,
}

/// A machine step's params: the node and the rack's machine that becomes it (or, to a retire
/// step, the machine that stops being it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MachineParams {
    pub hostname: String,
    pub machine: specs::Machine,
    /// The machine the node had before, when it is another one (a new MAC, a new install
    /// disk): powered off before this one boots, as two machines must never answer at the
    /// node's addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<specs::Machine>,
    /// The machine installed the node before and was found off (a power cut, powered off by
    /// hand): powered on from its disk, not installed again, which would lose what the node
    /// keeps there (a controller's etcd member).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub from_disk: bool,
}

impl MachineParams {
    /// The params of a step that retires `machine`, `hostname`'s.
    pub fn retiring(hostname: &str, machine: &specs::Machine) -> MachineParams {
        MachineParams {
            hostname: hostname.to_owned(),
            machine: machine.clone(),
            replaces: None,
            from_disk: false,
        }
    }
}

/// What a retire step did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RetireOutputs {
    /// The machine's name in the spec.
    pub machine: String,
}

/// The tag every device to delete carries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeleteDevicesParams {
    pub tag: String,
}

/// The records of the DNS step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DnsParams {
    pub zone_id: String,
    pub records: Vec<RecordSource>,
}

/// A record whose values are addresses of devices (the controllers' public IPv4), as the DNS
/// step's params hold it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordSource {
    pub name: String,
    pub ttl: i64,
    /// The device step and which of its addresses, of each value.
    pub values_from: Vec<(StepId, DeviceAddress)>,
}

/// The records `loko destroy` deletes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeleteRecordsParams {
    pub zone_id: String,
    pub names: Vec<String>,
}

/// The controller whose static control plane a step installs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ControlPlaneParams {
    pub hostname: String,
    /// The apiserver serves the aggregation layer (`enable_aggregation`).
    pub aggregation: bool,
}

/// Where a step reaches the API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApiParams {
    /// `<cluster>.<dns_zone>`, or the spec's `api_address`.
    pub api_name: String,
    /// The controllers' device steps, whose public addresses reach the apiserver.
    pub controllers: Vec<StepId>,
}

/// The node a drain step drains, and where it reaches the API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DrainParams {
    #[serde(flatten)]
    pub api: ApiParams,
    /// The worker's hostname (its Node's name).
    pub hostname: String,
}

/// What the readiness step waits for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReadyParams {
    #[serde(flatten)]
    pub api: ApiParams,
    /// Hostnames that must be Ready.
    pub expected_nodes: Vec<String>,
}

/// The PKI's fingerprints: dependents rerun exactly when a certificate changed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PkiOutputs {
    /// SHA-256 of each certificate and public key, by its path in the asset directory.
    pub sha256: BTreeMap<String, String>,
}

/// What the kubeconfigs step wrote; the token's id and expiration are public (the id names its
/// Secret), and a new token changes them, so every Ignition follows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KubeconfigsOutputs {
    /// The admin kubeconfig's path in the asset directory.
    pub admin: String,
    pub kubelet_sha256: String,
    pub bootstrap_token_id: String,
    pub bootstrap_token_expiration: String,
}

/// The manifests rendered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ManifestsOutputs {
    pub files: ManifestReport,
}

/// A node's Ignition and its SSH host key's public half.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IgnitionOutputs {
    /// The line a client pins the node's host key with.
    pub ssh_host_key: String,
    pub userdata_path: String,
    pub ignition_sha256: String,
}

/// The device a device step made or adopted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceOutputs {
    pub device_id: String,
    /// Absent from the journal fixture's records, whose toy devices did not publish it.
    #[serde(default)]
    pub hostname: String,
    /// Null until Packet assigned one (a device that is not active has none).
    pub public_ipv4: Option<String>,
    pub private_ipv4: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservation_id: Option<String>,
    /// Devices that failed provisioning and were deleted in its place.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replaced_failed_devices: Vec<String>,
}

/// A machine's outputs under the device step's names, so that what reads them (DNS, SSH, the
/// bootstrap) does not ask which provider made it.
impl From<crate::provider::ProvidedMachine> for DeviceOutputs {
    fn from(machine: crate::provider::ProvidedMachine) -> Self {
        DeviceOutputs {
            device_id: machine.id,
            hostname: machine.hostname,
            public_ipv4: Some(machine.public_ipv4.to_string()),
            private_ipv4: Some(machine.private_ipv4.to_string()),
            reservation_id: machine.reservation_id,
            replaced_failed_devices: machine.replaced,
        }
    }
}

/// Which address of a device a dependent reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceAddress {
    PublicIpv4,
    PrivateIpv4,
}

impl fmt::Display for DeviceAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeviceAddress::PublicIpv4 => "public_ipv4",
            DeviceAddress::PrivateIpv4 => "private_ipv4",
        })
    }
}

impl DeviceKind {
    /// The address `which` of the device that the dependency `device_step` made. A device
    /// without it, or with one that is not an IPv4 address, is a permanent error naming the
    /// step: the device step publishes only active devices.
    pub fn address(
        ctx: &StepContext,
        device_step: &StepId,
        which: DeviceAddress,
    ) -> Result<Ipv4Addr, StepError> {
        let device = ctx.outputs_of::<DeviceKind>(device_step)?;
        let text = match which {
            DeviceAddress::PublicIpv4 => device.public_ipv4,
            DeviceAddress::PrivateIpv4 => device.private_ipv4,
        };
        let text = text
            .ok_or_else(|| StepError::permanent(format!("{device_step} published no {which}")))?;
        text.parse().map_err(|_| {
            StepError::permanent(format!(
                "{device_step} published {which}={text:?}, which is not an IPv4 address"
            ))
        })
    }
}

impl DeviceOutputs {
    /// The outputs of a recorded device step (the journal's ledger), if they read as a device's.
    pub fn recorded(outputs: &journal::Outputs) -> Option<DeviceOutputs> {
        engine::decode_outputs::<DeviceKind>(outputs).ok()
    }
}

/// The devices a delete step deleted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeleteDevicesOutputs {
    pub tag: String,
    pub deleted_devices: Vec<String>,
}

/// The records the DNS step set: the next run recognizes them as its own.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DnsOutputs {
    pub records: BTreeMap<String, Vec<Ipv4Addr>>,
    /// Route53's change, when the step wrote any record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_id: Option<String>,
}

/// The records `loko destroy` deleted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeleteRecordsOutputs {
    pub deleted_records: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_id: Option<String>,
}

/// The etcd certificates copied to a controller.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EtcdSecretsOutputs {
    pub node: String,
    pub files: usize,
}

/// The static control plane installed on a controller.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ControlPlaneOutputs {
    pub node: String,
    pub static_pods: Vec<String>,
    pub pki_files: usize,
}

/// What the bootstrap step applied.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BootstrapOutputs {
    pub api_server: String,
    pub objects: usize,
    pub definitions: usize,
    /// The kubelets' bootstrap token's Secret applied, if the asset directory has a token.
    pub bootstrap_token_id: Option<String>,
}

/// Whether a drain drained (not with `--skip-drain`, nor for a Node already gone).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DrainOutputs {
    pub drained: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods_evicted: Option<usize>,
}

impl DrainOutputs {
    /// Nothing drained: `--skip-drain`, or no Node to drain.
    pub const NOT_DRAINED: DrainOutputs = DrainOutputs {
        drained: false,
        pods_evicted: None,
    };
}

/// The cluster answered with every node Ready.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReadyOutputs {
    pub api_server: String,
    pub nodes_ready: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Outputs are part of every dependent's effective inputs digest: a typed output must
    /// encode as the keys and values earlier versions journaled, or every existing cluster
    /// would rerun the steps that read it.
    #[test]
    fn typed_outputs_encode_as_the_journal_keys_of_earlier_versions() {
        let device = DeviceOutputs {
            device_id: "d-1".into(),
            hostname: "c0".into(),
            public_ipv4: Some("127.0.0.10".into()),
            private_ipv4: None,
            reservation_id: None,
            replaced_failed_devices: Vec::new(),
        };
        let encoded = engine::encode_outputs::<DeviceKind>(&device).unwrap();
        assert_eq!(
            serde_json::to_string(&encoded).unwrap(),
            r#"{"device_id":"d-1","hostname":"c0","private_ipv4":null,"public_ipv4":"127.0.0.10"}"#
        );
        let drain = engine::encode_outputs::<DrainKind>(&DrainOutputs::NOT_DRAINED).unwrap();
        assert_eq!(
            serde_json::to_string(&drain).unwrap(),
            r#"{"drained":false}"#
        );
        let bootstrap = BootstrapOutputs {
            api_server: "https://a:6443".into(),
            objects: 2,
            definitions: 1,
            bootstrap_token_id: None,
        };
        assert_eq!(
            serde_json::to_string(&engine::encode_outputs::<BootstrapKind>(&bootstrap).unwrap())
                .unwrap(),
            r#"{"api_server":"https://a:6443","bootstrap_token_id":null,"definitions":1,"objects":2}"#
        );
    }

    /// The DNS step's params name a device's address as earlier versions named its output key.
    #[test]
    fn a_record_source_names_the_device_address_as_its_output_key() {
        let source = RecordSource {
            name: "a.example.com.".into(),
            ttl: 300,
            values_from: vec![(StepId::new("device/c0").unwrap(), DeviceAddress::PublicIpv4)],
        };
        assert_eq!(
            serde_json::to_value(&source).unwrap()["values_from"],
            serde_json::json!([["device/c0", "public_ipv4"]])
        );
    }
}
