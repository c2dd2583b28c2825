//! The machines of a cluster on bare metal one owns (`provider: redfish`): each listed by its
//! NIC's MAC, its BMC's Redfish system and the addresses the node will have.
//!
//! Packet created machines on demand; in a rack they exist before loko runs, so the spec lists
//! them and the pools' counts follow from the list. Credentials of the BMCs never appear here:
//! they come from the environment when a run starts (see `steps::redfish`).

use std::fmt;
use std::net::Ipv4Addr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::names::PoolName;

/// Who creates a cluster's machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Packet (Equinix Metal) creates a device per node; the spec names the project and facility.
    #[default]
    Packet,
    /// The spec lists the machines; loko boots each through its BMC's Redfish API.
    Redfish,
}

impl Provider {
    /// Every accepted spelling, for error messages.
    pub(crate) const NAMES: &'static [&'static str] = &["packet", "redfish"];

    /// The spelling used in the spec.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Packet => "packet",
            Provider::Redfish => "redfish",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Self> {
        match name {
            "packet" => Some(Provider::Packet),
            "redfish" => Some(Provider::Redfish),
            _ => None,
        }
    }

    pub(crate) fn is_packet(&self) -> bool {
        *self == Provider::Packet
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A NIC's hardware address, the machine's identity on the network: the boot server answers
/// it, and a Redfish system must list it before loko powers that system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MacAddress(pub [u8; 6]);

impl MacAddress {
    /// Six octets in hex, separated by `:` or `-` (`52:54:00:12:34:56`), in either case.
    pub fn parse(text: &str) -> Result<MacAddress, String> {
        let parts: Vec<&str> = text.split([':', '-']).collect();
        let mut octets = [0u8; 6];
        let well_formed = parts.len() == 6
            && parts.iter().zip(octets.iter_mut()).all(|(part, octet)| {
                part.len() == 2 && u8::from_str_radix(part, 16).map(|v| *octet = v).is_ok()
            });
        if !well_formed {
            return Err(format!(
                "{text:?} is not a MAC address (six hex octets, like 52:54:00:12:34:56)"
            ));
        }
        // Bit 0 of the first octet marks a group address, which no NIC boots from.
        if octets[0] & 1 == 1 || octets == [0; 6] {
            return Err(format!(
                "{text:?} is a broadcast, multicast or zero address, not a NIC's"
            ));
        }
        Ok(MacAddress(octets))
    }
}

impl fmt::Display for MacAddress {
    /// Lowercase and `:`-separated, as iPXE's `${mac}` and Redfish's `MACAddress` write it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            o[0], o[1], o[2], o[3], o[4], o[5]
        )
    }
}

impl Serialize for MacAddress {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddress {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        MacAddress::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for MacAddress {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "MacAddress".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A NIC's MAC address, like 52:54:00:12:34:56.",
            "type": "string",
            "pattern": "^[0-9a-fA-F]{2}([:-][0-9a-fA-F]{2}){5}$"
        })
    }
}

/// What a machine becomes: a controller, or a worker of the named pool.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MachineRole {
    Controller,
    Worker(PoolName),
}

impl MachineRole {
    /// How the spec writes it: `controller`, or the pool's name.
    pub fn as_str(&self) -> &str {
        match self {
            MachineRole::Controller => "controller",
            MachineRole::Worker(pool) => pool.as_str(),
        }
    }
}

impl Serialize for MachineRole {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for MachineRole {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Ok(match text.as_str() {
            "controller" => MachineRole::Controller,
            _ => MachineRole::Worker(PoolName(text)),
        })
    }
}

impl JsonSchema for MachineRole {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "MachineRole".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "`controller`, or the pool_name of a worker pool.",
            "type": "string"
        })
    }
}

/// The Redfish system of a machine: its BMC's service and the system's resource on it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BmcSystem {
    /// The BMC's base URL, scheme and authority only (`https://10.0.9.11`), no trailing slash.
    pub url: String,
    /// The system's resource path, `/redfish/v1/Systems/<id>` (an id alone is written out so).
    pub system: String,
}

/// A machine of the rack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Machine {
    /// The machine's name in the rack (a DNS label), as loko names it in logs and plans.
    pub name: crate::names::MachineName,
    /// `controller`, or a worker pool's name.
    pub role: MachineRole,
    /// The MAC of the NIC the machine network-boots from.
    pub mac: MacAddress,
    /// Its BMC's Redfish system.
    pub bmc: BmcSystem,
    /// The disk Flatcar is installed to, like `/dev/sda` or `/dev/disk/by-id/...`.
    pub install_disk: String,
    /// The address the node is reached at (SSH, the API), IPv4.
    #[schemars(with = "String")]
    pub public_ipv4: Ipv4Addr,
    /// The node's address in `node_private_cidr` (etcd, the kubelets, the pod network), IPv4.
    #[schemars(with = "String")]
    pub private_ipv4: Ipv4Addr,
}

/// Flatcar's stable release of the day, as Typhoon's `profiles.tf` downloads its PXE kernel
/// and initrd: the boot server's mirror when the spec names none.
pub const DEFAULT_FLATCAR_MIRROR: &str =
    "https://stable.release.flatcar-linux.net/amd64-usr/current/";

/// loko's network boot server during a run (`boot_server`, with `provider: redfish`). Not part
/// of the desired cluster: a node's installer ran once, so moving the server or its mirror
/// changes no running node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BootServerSettings {
    /// The address and port it listens on, like `0.0.0.0:8080`.
    #[schemars(with = "String")]
    pub listen: std::net::SocketAddr,
    /// Its URL as the machines reach it (`http://10.0.9.1:8080`); required when `listen` is
    /// every address, which no machine can be sent to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The Flatcar release directory holding the PXE kernel and initrd.
    pub mirror: String,
    /// More kernel arguments of the installer, like `console=ttyS0,115200n8`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kernel_args: Vec<String>,
    /// What retiring a machine does: `power-off` (the default) or `wipe` (its install disk
    /// wiped through a network boot, then off).
    #[serde(default, skip_serializing_if = "RetirePolicy::is_power_off")]
    pub retire: RetirePolicy,
}

/// What retiring a rack's machine does (`boot_server.retire`): a machine outlives its node,
/// and its disk holds the node's secrets (kubelet credentials, a controller's etcd data).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RetirePolicy {
    /// Powered off; its disk keeps the installed node.
    #[default]
    PowerOff,
    /// Booted from the network into a wipe of its install disk, which powers it off.
    Wipe,
}

impl RetirePolicy {
    /// Every accepted spelling, for error messages.
    pub(crate) const NAMES: &'static [&'static str] = &["power-off", "wipe"];

    /// The spelling used in the spec.
    pub fn as_str(self) -> &'static str {
        match self {
            RetirePolicy::PowerOff => "power-off",
            RetirePolicy::Wipe => "wipe",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Self> {
        match name {
            "power-off" => Some(RetirePolicy::PowerOff),
            "wipe" => Some(RetirePolicy::Wipe),
            _ => None,
        }
    }

    fn is_power_off(&self) -> bool {
        *self == RetirePolicy::PowerOff
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_addresses_are_read_in_either_form_and_written_in_one() {
        let mac = MacAddress::parse("52-54-00-AB-cd-01").unwrap();
        assert_eq!(mac.to_string(), "52:54:00:ab:cd:01");
        assert_eq!(MacAddress::parse("52:54:00:ab:cd:01"), Ok(mac));
        for bad in [
            "52:54:00:ab:cd",
            "52:54:00:ab:cd:0g",
            "525400abcd01",
            "52:54:00:ab:cd:001",
            "01:00:5e:00:00:01",
            "ff:ff:ff:ff:ff:ff",
            "00:00:00:00:00:00",
        ] {
            assert!(MacAddress::parse(bad).is_err(), "{bad} accepted");
        }
    }
}
