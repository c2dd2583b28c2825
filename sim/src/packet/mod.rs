//! The Packet (Equinix Metal) cloud: its catalog and its model (projects, devices,
//! reservations). Its HTTP API is `server/packet.rs`.

pub(crate) mod catalog;
pub(crate) mod model;
