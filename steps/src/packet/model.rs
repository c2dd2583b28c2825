//! The parts of the Packet API's objects that loko reads and writes. Fields loko does not need
//! are not modeled; notably `root_password`, which devices carry and loko must never hold.

use std::fmt;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

/// A device's provisioning state: an open enum, because the API has states loko does not act
/// on (`reinstalling`, `powering_on`, ...) and may add more; an unknown state is kept and waited
/// on, never a parse failure.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum DeviceState {
    Queued,
    Provisioning,
    Active,
    Failed,
    Deprovisioning,
    Other(String),
}

impl DeviceState {
    fn parse(s: &str) -> DeviceState {
        match s {
            "queued" => DeviceState::Queued,
            "provisioning" => DeviceState::Provisioning,
            "active" => DeviceState::Active,
            "failed" => DeviceState::Failed,
            "deprovisioning" => DeviceState::Deprovisioning,
            other => DeviceState::Other(other.to_owned()),
        }
    }

    /// The API's name of the state.
    pub fn as_str(&self) -> &str {
        match self {
            DeviceState::Queued => "queued",
            DeviceState::Provisioning => "provisioning",
            DeviceState::Active => "active",
            DeviceState::Failed => "failed",
            DeviceState::Deprovisioning => "deprovisioning",
            DeviceState::Other(s) => s,
        }
    }
}

impl fmt::Display for DeviceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for DeviceState {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(DeviceState::parse(&s))
    }
}

impl Serialize for DeviceState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// An IP address assigned to a device.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct IpAssignment {
    pub address: String,
    #[serde(default)]
    pub address_family: Option<u8>,
    #[serde(default)]
    pub public: Option<bool>,
    #[serde(default)]
    pub management: Option<bool>,
    /// The block the address was taken from: for a private address, the project's private
    /// network in the device's location.
    #[serde(default)]
    pub parent_block: Option<ParentBlock>,
}

/// The block an address was taken from (`ParentBlock`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ParentBlock {
    pub network: String,
    pub cidr: u8,
}

/// A link to another object.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Reference {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub href: Option<String>,
}

/// A plan, by its slug.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct PlanRef {
    #[serde(default)]
    pub slug: Option<String>,
}

/// A device as loko reads it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Device {
    pub id: String,
    #[serde(default)]
    pub hostname: String,
    pub state: DeviceState,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub ip_addresses: Vec<IpAssignment>,
    #[serde(default)]
    pub hardware_reservation: Option<Reference>,
    #[serde(default)]
    pub plan: Option<PlanRef>,
    #[serde(default)]
    pub created_at: Option<String>,
}

impl Device {
    fn ipv4(&self, public: bool) -> Option<Ipv4Addr> {
        self.ip_addresses
            .iter()
            .filter(|ip| ip.address_family == Some(4) && ip.public == Some(public))
            .find_map(|ip| ip.address.parse().ok())
    }

    /// The public IPv4 address, once assigned.
    pub fn public_ipv4(&self) -> Option<Ipv4Addr> {
        self.ipv4(true)
    }

    /// The private IPv4 address, once assigned.
    pub fn private_ipv4(&self) -> Option<Ipv4Addr> {
        self.ipv4(false)
    }

    /// The private network the private IPv4 address was taken from (`10.128.156.0/25`), as
    /// the API names it, when it does.
    pub fn private_network(&self) -> Option<String> {
        self.ip_addresses
            .iter()
            .filter(|ip| ip.address_family == Some(4) && ip.public == Some(false))
            .find_map(|ip| {
                let block = ip.parent_block.as_ref()?;
                Some(format!("{}/{}", block.network, block.cidr))
            })
    }

    /// The hardware reservation the device actually took (for `next-available`, which one).
    /// The API returns only `{"href": "/hardware-reservations/<id>"}` unless asked to include
    /// the reservation, so the id is read from the href when absent.
    pub fn reservation_id(&self) -> Option<&str> {
        let reference = self.hardware_reservation.as_ref()?;
        reference.id.as_deref().or_else(|| {
            let id = reference
                .href
                .as_deref()?
                .trim_end_matches('/')
                .rsplit('/')
                .next()?;
            (!id.is_empty()).then_some(id)
        })
    }

    /// The device's plan, by slug.
    pub fn plan_slug(&self) -> Option<&str> {
        self.plan.as_ref()?.slug.as_deref()
    }

    /// True when the device carries `tag`.
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }
}

/// A request to create a device (`DeviceCreateInFacilityInput` or `...InMetroInput`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CreateDevice {
    pub hostname: String,
    pub plan: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub facility: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metro: Option<String>,
    /// `flatcar_<channel>` or `custom_ipxe`.
    pub operating_system: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipxe_script_url: Option<String>,
    pub always_pxe: bool,
    pub billing_cycle: String,
    pub tags: Vec<String>,
    /// The node's Ignition.
    pub userdata: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hardware_reservation_id: Option<String>,
}

/// A hardware reservation of the project.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct HardwareReservation {
    pub id: String,
    #[serde(default)]
    pub provisionable: Option<bool>,
    #[serde(default)]
    pub plan: Option<PlanRef>,
    #[serde(default)]
    pub device: Option<Reference>,
}

/// Pagination of list responses.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct Meta {
    #[serde(default)]
    pub last_page: Option<u32>,
}

#[derive(Deserialize)]
pub(crate) struct DeviceList {
    pub devices: Vec<Device>,
    #[serde(default)]
    pub meta: Meta,
}

#[derive(Deserialize)]
pub(crate) struct ReservationList {
    pub hardware_reservations: Vec<HardwareReservation>,
    #[serde(default)]
    pub meta: Meta,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_states_are_kept_and_secrets_are_not_modeled() {
        let json = r#"{"id":"d1","hostname":"h","state":"post_provisioning","root_password":"hunter22",
            "ip_addresses":[{"address":"10.0.0.5","address_family":4,"public":false,
                             "parent_block":{"network":"10.0.0.0","cidr":25,"netmask":"255.255.255.128"}},
                            {"address":"147.75.1.2","address_family":4,"public":true},
                            {"address":"2604::1","address_family":6,"public":true}],
            "hardware_reservation":{"id":"r-1","href":"/hardware-reservations/r-1"},
            "tags":["loko:cluster=x"]}"#;
        let d: Device = serde_json::from_str(json).unwrap();
        assert_eq!(d.state, DeviceState::Other("post_provisioning".into()));
        assert_eq!(d.public_ipv4(), Some(Ipv4Addr::new(147, 75, 1, 2)));
        assert_eq!(d.private_ipv4(), Some(Ipv4Addr::new(10, 0, 0, 5)));
        assert_eq!(d.private_network().as_deref(), Some("10.0.0.0/25"));
        assert_eq!(d.reservation_id(), Some("r-1"));
        let href_only: Device = serde_json::from_value(serde_json::json!({
            "id": "d", "state": "active",
            "hardware_reservation": {"href": "/metal/v1/hardware-reservations/r-2"}
        }))
        .unwrap();
        assert_eq!(href_only.reservation_id(), Some("r-2"));
        assert!(d.has_tag("loko:cluster=x"));
        assert!(!format!("{d:?}").contains("hunter22"));
    }

    #[test]
    fn list_meta_with_null_links_is_read() {
        // The API sends `next`/`previous` as null on the last/first page.
        let json = r#"{"devices":[],"meta":{"first":{"href":"/x?page=1"},"last":{"href":"/x?page=2"},
            "next":null,"previous":{"href":"/x?page=1"},"self":{"href":"/x?page=2"},
            "current_page":2,"last_page":2,"total":3}}"#;
        let list: DeviceList = serde_json::from_str(json).unwrap();
        assert_eq!(list.meta.last_page, Some(2));
    }
}
