//! Packet (Equinix Metal): the API client, its objects and its errors.

mod client;
mod device_step;
mod error;
mod model;
mod poller;

pub use client::{
    CallCounts, ClientSetupError, DEFAULT_BASE_URL, MissingToken, PacketClient, TOKEN_ENV,
    Timeouts, Token,
};
pub use device_step::{
    CLUSTER_ID_TAG_PREFIX, CREATE_INTENT, DeleteDeviceStep, DeviceOs, DeviceSettings, DeviceSpec,
    DeviceStep, Location, cluster_id_tag, cluster_tag, node_tag, step_error,
};
pub use error::{PacketError, PacketErrorKind};
pub use model::{CreateDevice, Device, DeviceState, HardwareReservation, IpAssignment, Reference};
pub use poller::{DevicePoller, Listing, PollPace, Subscription};
