//! The Redfish resources loko reads (DSP0266; the DMTF schemas' 2025.4 bundle), with only what
//! each schema requires as required: a conforming BMC that leaves out an optional property is
//! still understood (`steps/tests/it/redfish_schema.rs` holds this against the schemas' own
//! `required` lists). Enumerations are open: a value a later schema adds is kept, not refused.

use serde::Deserialize;

/// A link to another resource.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Link {
    #[serde(rename = "@odata.id")]
    pub odata_id: String,
}

/// What every schema loko reads requires of its resource: `@odata.id`, `@odata.type`, `Id`
/// and `Name`.
#[derive(Clone, Debug, Deserialize)]
pub struct Resource {
    #[serde(rename = "@odata.id")]
    pub odata_id: String,
    #[serde(rename = "@odata.type")]
    pub odata_type: String,
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(rename = "Name")]
    pub name: String,
}

/// The service root (`/redfish/v1/`). The schema requires `Links` (and `Links.Sessions`) too,
/// but sushy-tools' emulator omits them, so they are optional here: without them loko uses
/// basic authentication.
#[derive(Clone, Debug, Deserialize)]
pub struct ServiceRoot {
    #[serde(flatten)]
    pub resource: Resource,
    #[serde(rename = "RedfishVersion", default)]
    pub redfish_version: Option<String>,
    #[serde(rename = "Links", default)]
    pub links: Option<RootLinks>,
}

/// The service root's links.
#[derive(Clone, Debug, Deserialize)]
pub struct RootLinks {
    #[serde(rename = "Sessions", default)]
    pub sessions: Option<Link>,
}

/// A power state (Resource.json `PowerState`), open to values the schema adds later.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(from = "String")]
pub enum PowerState {
    On,
    Off,
    PoweringOn,
    PoweringOff,
    Paused,
    Other(String),
}

impl From<String> for PowerState {
    fn from(text: String) -> Self {
        match text.as_str() {
            "On" => PowerState::On,
            "Off" => PowerState::Off,
            "PoweringOn" => PowerState::PoweringOn,
            "PoweringOff" => PowerState::PoweringOff,
            "Paused" => PowerState::Paused,
            _ => PowerState::Other(text),
        }
    }
}

impl std::fmt::Display for PowerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PowerState::On => "On",
            PowerState::Off => "Off",
            PowerState::PoweringOn => "PoweringOn",
            PowerState::PoweringOff => "PoweringOff",
            PowerState::Paused => "Paused",
            PowerState::Other(text) => text,
        })
    }
}

/// A ComputerSystem (ComputerSystem.v1_20_0): required are `@odata.id`, `@odata.type`, `Id`
/// and `Name`; everything loko acts on is optional in the schema and read as such.
#[derive(Clone, Debug, Deserialize)]
pub struct ComputerSystem {
    #[serde(flatten)]
    pub resource: Resource,
    #[serde(rename = "@odata.etag", default)]
    pub odata_etag: Option<String>,
    #[serde(rename = "PowerState", default)]
    pub power_state: Option<PowerState>,
    #[serde(rename = "Boot", default)]
    pub boot: Option<Boot>,
    #[serde(rename = "EthernetInterfaces", default)]
    pub ethernet_interfaces: Option<Link>,
    #[serde(rename = "Actions", default)]
    pub actions: Option<SystemActions>,
}

/// A system's boot settings.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Boot {
    #[serde(rename = "BootSourceOverrideTarget", default)]
    pub override_target: Option<String>,
    #[serde(rename = "BootSourceOverrideEnabled", default)]
    pub override_enabled: Option<String>,
    #[serde(rename = "BootSourceOverrideTarget@Redfish.AllowableValues", default)]
    pub allowed_targets: Option<Vec<String>>,
}

/// A system's actions.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct SystemActions {
    #[serde(rename = "#ComputerSystem.Reset", default)]
    pub reset: Option<ResetAction>,
}

/// `#ComputerSystem.Reset`: where to post, and the reset types the system takes, when it says.
#[derive(Clone, Debug, Deserialize)]
pub struct ResetAction {
    pub target: String,
    #[serde(rename = "ResetType@Redfish.AllowableValues", default)]
    pub allowed: Option<Vec<String>>,
}

/// A collection's members.
#[derive(Clone, Debug, Deserialize)]
pub struct Collection {
    #[serde(rename = "Members", default)]
    pub members: Vec<Link>,
}

/// An EthernetInterface (EthernetInterface.v1_10_0): `MACAddress` and `PermanentMACAddress` are
/// optional in the schema.
#[derive(Clone, Debug, Deserialize)]
pub struct EthernetInterface {
    #[serde(flatten)]
    pub resource: Resource,
    #[serde(rename = "MACAddress", default)]
    pub mac: Option<String>,
    #[serde(rename = "PermanentMACAddress", default)]
    pub permanent_mac: Option<String>,
}

/// A Task (Task.v1_7_0), as a task monitor answers once the work is done.
#[derive(Clone, Debug, Deserialize)]
pub struct Task {
    #[serde(flatten)]
    pub resource: Resource,
    #[serde(rename = "TaskState", default)]
    pub task_state: Option<String>,
}

/// A reset the system is asked for, with the types that do it, most precise first: the first
/// the system allows is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reset {
    /// Power a machine on: `On`, else `ForceOn`, else the power button.
    On,
    /// Restart a machine at once: `ForceRestart`, else `PowerCycle`.
    ForceRestart,
    /// Cut a machine's power: `ForceOff`.
    ForceOff,
}

impl Reset {
    /// The Resource.json `ResetType` values that do this reset, in order of preference.
    pub fn types(self) -> &'static [&'static str] {
        match self {
            Reset::On => &["On", "ForceOn", "PushPowerButton"],
            Reset::ForceRestart => &["ForceRestart", "PowerCycle"],
            Reset::ForceOff => &["ForceOff"],
        }
    }

    /// The power state the reset ends in.
    pub fn ends_in(self) -> PowerState {
        match self {
            Reset::On | Reset::ForceRestart => PowerState::On,
            Reset::ForceOff => PowerState::Off,
        }
    }
}
