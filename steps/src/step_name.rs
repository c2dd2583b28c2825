//! The names of the provisioning steps: one type that prints every step id the DAGs plan and
//! reads every id a journal holds, so that the DAG builders, the history, `loko plan`,
//! `loko status` and the progress lines agree without parsing ids by hand.
//!
//! [`StepName`] is what an id means; [`journal::StepId`] is the journal's opaque key. Ids are
//! stable across versions (`device/<hostname>`): a rerun or resume finds every step's recorded
//! result. An id this loko does not plan, such as `bootkube/<host>` of the step the static
//! control plane replaced, still reads: as [`StepName::Other`], kept as it is.

use std::convert::Infallible;
use std::fmt;
use std::str::FromStr;

use journal::StepId;

/// A step of the provisioning DAGs, by family and, for a node's steps, its hostname.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StepName {
    /// `assets/pki`: the CA, keys and certificates.
    Pki,
    /// `assets/kubeconfigs`.
    Kubeconfigs,
    /// `assets/manifests`.
    Manifests,
    /// `ignition/<host>`.
    Ignition(String),
    /// `device/<host>`.
    Device(String),
    /// `machine/<host>`: a rack node's listed machine, booted through its BMC.
    Machine(String),
    /// `delete-device/<host>`: a node that left the spec.
    DeleteDevice(String),
    /// `retire/<host>`: a rack node's machine powered off, or wiped and off (its node left the
    /// spec, or the cluster is destroyed).
    Retire(String),
    /// `drain/<host>`: a worker drained before its device is deleted.
    Drain(String),
    /// `dns`: the cluster's records.
    Dns,
    /// `etcd-secrets/<host>`.
    EtcdSecrets(String),
    /// `control-plane/<host>`: a controller's static control plane.
    ControlPlane(String),
    /// `bootstrap`: the cluster's manifests applied through the API.
    Bootstrap,
    /// `ready`.
    Ready,
    /// `destroy/devices`.
    DestroyDevices,
    /// `destroy/dns`.
    DestroyDns,
    /// An id no DAG of this loko plans: a retired step's (`bootkube/<host>`) in an older
    /// cluster's journal, or a newer loko's. A ledger entry no DAG names is ignored.
    Other(String),
}

/// The families whose steps are about one node (`<family>/<host>`).
const NODE_FAMILIES: [fn(String) -> StepName; 8] = [
    StepName::Ignition,
    StepName::Device,
    StepName::Machine,
    StepName::DeleteDevice,
    StepName::Retire,
    StepName::Drain,
    StepName::EtcdSecrets,
    StepName::ControlPlane,
];

impl StepName {
    /// The journal's id of the step. Hostnames are validated by the spec (letters, digits,
    /// dashes), and an [`StepName::Other`] came from an id, so the text is always a valid id.
    pub fn id(&self) -> StepId {
        StepId::new(self.to_string()).unwrap_or_else(|e| unreachable!("{e}"))
    }

    /// The node a step is about, if it is about one.
    pub fn host(&self) -> Option<&str> {
        match self {
            StepName::Ignition(h)
            | StepName::Device(h)
            | StepName::Machine(h)
            | StepName::DeleteDevice(h)
            | StepName::Retire(h)
            | StepName::Drain(h)
            | StepName::EtcdSecrets(h)
            | StepName::ControlPlane(h) => Some(h),
            _ => None,
        }
    }

    /// The node of a `device/<host>` or `machine/<host>` step (the step that gives a node its
    /// addresses); none for another step.
    pub fn device_host(id: &StepId) -> Option<String> {
        match StepName::from(id) {
            StepName::Device(host) | StepName::Machine(host) => Some(host),
            _ => None,
        }
    }

    /// The step that gives `node` its machine and addresses: `machine/<host>` for a rack's
    /// node, `device/<host>` on Packet. Both publish a device's outputs.
    pub fn node_machine(node: &specs::DesiredNode) -> StepName {
        match node.machine {
            Some(_) => StepName::Machine(node.hostname.clone()),
            None => StepName::Device(node.hostname.clone()),
        }
    }

    /// Whether `recorded` holds the removal of `host`'s machine: its device deleted, or its
    /// rack machine retired.
    pub fn removal_recorded(host: &str, recorded: impl Fn(&StepId) -> bool) -> bool {
        [
            StepName::DeleteDevice(host.to_owned()),
            StepName::Retire(host.to_owned()),
        ]
        .iter()
        .any(|name| recorded(&name.id()))
    }

    /// The family the step belongs to (`assets`, `device`, `dns`...), as progress groups them.
    pub fn family(&self) -> &str {
        match self {
            StepName::Pki | StepName::Kubeconfigs | StepName::Manifests => "assets",
            StepName::Dns => "dns",
            StepName::Bootstrap => "bootstrap",
            StepName::Ready => "ready",
            StepName::DestroyDevices | StepName::DestroyDns => "destroy",
            StepName::Ignition(_) => "ignition",
            StepName::Device(_) => "device",
            StepName::Machine(_) => "machine",
            StepName::DeleteDevice(_) => "delete-device",
            StepName::Retire(_) => "retire",
            StepName::Drain(_) => "drain",
            StepName::EtcdSecrets(_) => "etcd-secrets",
            StepName::ControlPlane(_) => "control-plane",
            StepName::Other(text) => text.split('/').next().unwrap_or(text),
        }
    }

    /// True for the steps that work on this machine only (assets, Ignition): their success
    /// changes nothing in the cloud.
    pub fn is_local(&self) -> bool {
        matches!(
            self,
            StepName::Pki | StepName::Kubeconfigs | StepName::Manifests | StepName::Ignition(_)
        )
    }
}

impl fmt::Display for StepName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepName::Pki => f.write_str("assets/pki"),
            StepName::Kubeconfigs => f.write_str("assets/kubeconfigs"),
            StepName::Manifests => f.write_str("assets/manifests"),
            StepName::Dns => f.write_str("dns"),
            StepName::Bootstrap => f.write_str("bootstrap"),
            StepName::Ready => f.write_str("ready"),
            StepName::DestroyDevices => f.write_str("destroy/devices"),
            StepName::DestroyDns => f.write_str("destroy/dns"),
            StepName::Other(text) => f.write_str(text),
            node => write!(f, "{}/{}", node.family(), node.host().unwrap_or_default()),
        }
    }
}

impl FromStr for StepName {
    type Err = Infallible;

    /// Reads any text: what no DAG of this loko plans is [`StepName::Other`].
    fn from_str(text: &str) -> Result<StepName, Infallible> {
        let fixed = [
            StepName::Pki,
            StepName::Kubeconfigs,
            StepName::Manifests,
            StepName::Dns,
            StepName::Bootstrap,
            StepName::Ready,
            StepName::DestroyDevices,
            StepName::DestroyDns,
        ];
        if let Some(name) = fixed.into_iter().find(|name| name.to_string() == text) {
            return Ok(name);
        }
        let node = text.split_once('/').and_then(|(family, host)| {
            if host.is_empty() || host.contains('/') {
                return None;
            }
            NODE_FAMILIES
                .iter()
                .map(|make| make(host.to_owned()))
                .find(|name| name.family() == family)
        });
        Ok(node.unwrap_or_else(|| StepName::Other(text.to_owned())))
    }
}

impl From<&str> for StepName {
    fn from(text: &str) -> StepName {
        match text.parse() {
            Ok(name) => name,
            Err(never) => match never {},
        }
    }
}

impl From<&StepId> for StepName {
    fn from(id: &StepId) -> StepName {
        StepName::from(id.as_str())
    }
}

impl From<&StepName> for StepId {
    fn from(name: &StepName) -> StepId {
        name.id()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_prints_the_id_of_earlier_versions_and_reads_back() {
        let host = || "supernova-controller-0".to_owned();
        let names = [
            (StepName::Pki, "assets/pki"),
            (StepName::Kubeconfigs, "assets/kubeconfigs"),
            (StepName::Manifests, "assets/manifests"),
            (
                StepName::Ignition(host()),
                "ignition/supernova-controller-0",
            ),
            (StepName::Device(host()), "device/supernova-controller-0"),
            (StepName::Machine(host()), "machine/supernova-controller-0"),
            (
                StepName::DeleteDevice(host()),
                "delete-device/supernova-controller-0",
            ),
            (StepName::Drain(host()), "drain/supernova-controller-0"),
            (StepName::Dns, "dns"),
            (
                StepName::EtcdSecrets(host()),
                "etcd-secrets/supernova-controller-0",
            ),
            (
                StepName::ControlPlane(host()),
                "control-plane/supernova-controller-0",
            ),
            (StepName::Bootstrap, "bootstrap"),
            (StepName::Ready, "ready"),
            (StepName::DestroyDevices, "destroy/devices"),
            (StepName::DestroyDns, "destroy/dns"),
        ];
        for (name, id) in names {
            assert_eq!(name.id().as_str(), id);
            assert_eq!(StepName::from(&name.id()), name, "{id}");
        }
    }

    /// Ids of retired steps and of other versions read as `Other`, never as a step of ours.
    #[test]
    fn a_retired_or_unknown_id_reads_as_other() {
        for text in [
            "bootkube/c0",
            "device/",
            "device/a/b",
            "assets/other",
            "dns/x",
        ] {
            let id = StepId::new(text).unwrap();
            let name = StepName::from(&id);
            assert_eq!(name, StepName::Other(text.to_owned()), "{text}");
            assert_eq!(name.id(), id);
            assert_eq!(name.host(), None);
        }
        assert_eq!(StepName::Other("bootkube/c0".into()).family(), "bootkube");
        assert_eq!(
            StepName::device_host(&StepId::new("device/w0").unwrap()).as_deref(),
            Some("w0")
        );
    }
}
