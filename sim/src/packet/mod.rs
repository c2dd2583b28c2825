//! The Packet (Equinix Metal) API: catalog, cloud model and HTTP handlers.

pub(crate) mod api;
pub(crate) mod catalog;
pub(crate) mod model;
