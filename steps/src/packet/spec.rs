//! What a device step asks of Packet: a node's device as the DAG describes it (the device
//! kind's params), and the tags that find it again. Data only, so that the DAG, the device step
//! and the kinds read it without reading each other.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Where a device goes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Location {
    Facility(String),
    Metro(String),
}

/// What a device boots.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeviceOs {
    /// Packet's Flatcar image of a channel (`flatcar_stable`).
    Flatcar { channel: String },
    /// `custom_ipxe` with a script URL.
    Ipxe { url: String },
}

/// The device of one node (a device step's params).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceSpec {
    pub cluster: String,
    pub hostname: String,
    /// The machine type's slug (`c3.small.x86`): Packet's `plan`.
    pub machine_type: String,
    pub location: Location,
    pub os: DeviceOs,
    /// A reservation UUID, `next-available`, or none.
    pub reservation: Option<String>,
    /// The node's Ignition (rendered into asset_dir; it holds secrets, so it travels as a file
    /// and is read only to be sent). Not a param: the run's asset directory gives it.
    #[serde(skip)]
    pub userdata_path: PathBuf,
    /// The cluster's id ([`crate::assets::pki::cluster_id`]), tagged on every device the step
    /// creates. Not a param: the run's asset directory gives it.
    #[serde(skip)]
    pub cluster_id: Option<String>,
}

/// What a device step reads from the spec, as its inputs digest hashes it: named fields in the
/// terms of Packet's API, serialized, so that the digest depends on what is asked of Packet and
/// survives a toolchain update or a rename of loko's own types (a changed digest makes every
/// device step reconcile again). `device_inputs_digest_is_pinned` pins it.
#[derive(Debug, Serialize)]
pub struct DeviceInputs<'a> {
    pub hostname: &'a str,
    pub plan: &'a str,
    pub facility: Option<&'a str>,
    pub metro: Option<&'a str>,
    pub operating_system: String,
    pub ipxe_script_url: Option<&'a str>,
    pub hardware_reservation_id: Option<&'a str>,
}

impl DeviceSpec {
    /// The spec's part of the step's inputs digest.
    pub fn inputs(&self) -> DeviceInputs<'_> {
        let (facility, metro) = match &self.location {
            Location::Facility(f) => (Some(f.as_str()), None),
            Location::Metro(m) => (None, Some(m.as_str())),
        };
        DeviceInputs {
            hostname: &self.hostname,
            plan: &self.machine_type,
            facility,
            metro,
            operating_system: self.os.operating_system(),
            ipxe_script_url: match &self.os {
                DeviceOs::Ipxe { url } => Some(url),
                DeviceOs::Flatcar { .. } => None,
            },
            hardware_reservation_id: self.reservation.as_deref(),
        }
    }
}

impl DeviceOs {
    /// Packet's `operating_system` slug.
    fn operating_system(&self) -> String {
        match self {
            DeviceOs::Flatcar { channel } => format!("flatcar_{channel}"),
            DeviceOs::Ipxe { .. } => "custom_ipxe".to_owned(),
        }
    }
}

/// Tag of every device of a cluster.
pub fn cluster_tag(cluster: &str) -> String {
    format!("loko:cluster={cluster}")
}

/// Tag of a node's device.
pub fn node_tag(hostname: &str) -> String {
    format!("loko:node={hostname}")
}

/// Tag of the cluster's identity ([`crate::assets::pki::cluster_id`]): tells the devices of
/// this cluster from those of another built from a copy of its spec (same name, another CA).
pub fn cluster_id_tag(id: &str) -> String {
    format!("{CLUSTER_ID_TAG_PREFIX}{id}")
}

/// What a cluster id tag starts with.
pub const CLUSTER_ID_TAG_PREFIX: &str = "loko:cluster-id=";

#[cfg(test)]
mod tests {
    use super::*;

    /// The device step's own inputs digest is part of every cluster's journal: a change here
    /// makes every device step of every existing cluster reconcile again. Change it only on
    /// purpose, and say so in the release notes.
    #[test]
    fn device_inputs_digest_is_pinned() {
        let spec = DeviceSpec {
            cluster: "supernova".into(),
            hostname: "supernova-helium-worker-0".into(),
            machine_type: "t1.small.x86".into(),
            location: Location::Facility("ams1".into()),
            os: DeviceOs::Flatcar {
                channel: "stable".into(),
            },
            reservation: Some("next-available".into()),
            userdata_path: PathBuf::from("/elsewhere/ignition.ign"),
            cluster_id: Some("0123456789abcdef".into()),
        };
        let json = serde_json::to_string(&spec.inputs()).unwrap();
        assert_eq!(
            json,
            r#"{"hostname":"supernova-helium-worker-0","plan":"t1.small.x86","facility":"ams1","metro":null,"operating_system":"flatcar_stable","ipxe_script_url":null,"hardware_reservation_id":"next-available"}"#
        );
        assert_eq!(
            journal::Digest::of_json(&spec.inputs()).unwrap().to_hex(),
            "a6e8dd650b16f4286e319b1970238c0639157697adc8629d182f7299eb3349ff"
        );
    }
}
