//! loko's network boot server, as Matchbox serves Typhoon's bare-metal profiles.
//!
//! For each machine of the cluster (its NIC's MAC, its hostname, its install disk and its own
//! Ignition) the server answers, over plain HTTP on an address the machines reach:
//!
//! - `GET /boot.ipxe?mac=M` (also `/ipxe?mac=M`, Matchbox's name): the iPXE script that boots
//!   Flatcar's PXE kernel and initrd from the mirror with `flatcar.first_boot=yes` and
//!   `ignition.config.url` pointing back here ([`script`]). Without `mac`, a script that asks
//!   again with `${netX/mac}` (the NIC it booted from), so that one DHCP `filename` serves every
//!   machine;
//! - `GET /ignition?mac=M`: the installer's Ignition ([`crate::ignition::netboot`]), which
//!   fetches the node's Ignition and runs `flatcar-install -d <disk>` with it, then reboots;
//! - `GET /node-ignition?mac=M`: the node's own Ignition, which `flatcar-install` writes to disk.
//!
//! A MAC is compared whatever its case and separator (`:` or `-`). Any other request, an
//! unknown or malformed MAC included, is answered 404 with an empty body: the server never
//! lists its machines nor shows one machine's data for another's MAC. Every request is logged
//! through `tracing` (method, path, MAC, status) and kept for [`BootServer::requests`]; the
//! Ignition it serves never is: the node's holds its host and kubelet keys.
//!
//! Like Matchbox, the server has no authentication: whoever reaches it with a machine's MAC gets
//! that machine's Ignition. It is meant for the provisioning network, and only for the run.

mod config;
mod mac;
pub mod script;
mod server;

pub use config::{BootMachine, DEFAULT_MIRROR, NetbootConfig, NetbootError};
pub use mac::{MacAddr, MacAddrError};
pub use server::{BootRequest, BootServer};
