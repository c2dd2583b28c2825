//! Packet (Equinix Metal): the API client, its objects and its errors.

mod client;
mod device_step;
mod error;
mod model;
mod poller;
pub(crate) mod spec;

pub use client::{
    CallCounts, ClientSetupError, DEFAULT_BASE_URL, MissingToken, PacketClient, TOKEN_ENV,
    Timeouts, Token,
};
pub use device_step::{CREATE_INTENT, DeviceSettings, step_error};
pub(crate) use device_step::{DeleteDeviceStep, DeviceStep};
pub use error::{PacketError, PacketErrorKind};
pub use model::{CreateDevice, Device, DeviceState, HardwareReservation, IpAssignment, Reference};
pub use poller::{DevicePoller, Listing, PollPace, Subscription};
pub use spec::{
    CLUSTER_ID_TAG_PREFIX, DeviceOs, DeviceSpec, Location, cluster_id_tag, cluster_tag, node_tag,
};
