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

mod mac;
pub mod script;
mod server;

pub use mac::{MacAddr, MacAddrError};
pub use server::{BootRequest, BootServer};

use std::net::SocketAddr;

/// Flatcar's stable release of the day, as Typhoon's `profiles.tf` downloads it (the spec's
/// `boot_server.mirror` by default).
pub const DEFAULT_MIRROR: &str = specs::DEFAULT_FLATCAR_MIRROR;

/// What every machine boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetbootConfig {
    /// The release directory holding the PXE kernel and initrd ([`script::KERNEL`],
    /// [`script::INITRD`]).
    pub mirror: String,
    /// The channel `flatcar-install -C` installs (`stable`).
    pub channel: String,
    /// The version `flatcar-install -V` installs (`current`).
    pub version: String,
    /// More kernel arguments (Typhoon's `kernel_args`, empty by default), e.g. a serial console.
    pub kernel_args: Vec<String>,
    /// `core`'s SSH keys in the installer, for an operator debugging an install (port 2222).
    pub ssh_keys: Vec<String>,
}

impl Default for NetbootConfig {
    fn default() -> Self {
        NetbootConfig {
            mirror: DEFAULT_MIRROR.to_owned(),
            channel: "stable".to_owned(),
            version: "current".to_owned(),
            kernel_args: Vec::new(),
            ssh_keys: Vec::new(),
        }
    }
}

/// One machine the server boots.
#[derive(Clone)]
pub struct BootMachine {
    /// The MAC of the NIC it boots from.
    pub mac: MacAddr,
    /// The node's hostname, for logs.
    pub hostname: String,
    /// The disk Flatcar is installed on (`/dev/sda`).
    pub install_disk: String,
    /// The node's own Ignition (secret: host and kubelet keys).
    pub ignition: String,
}

impl std::fmt::Debug for BootMachine {
    // The Ignition holds private keys; it never goes to logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BootMachine")
            .field("mac", &self.mac)
            .field("hostname", &self.hostname)
            .field("install_disk", &self.install_disk)
            .field("ignition", &format_args!("<{} bytes>", self.ignition.len()))
            .finish()
    }
}

/// Why the boot server did not start.
#[derive(Debug, thiserror::Error)]
pub enum NetbootError {
    /// The address could not be bound.
    #[error("boot server: cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The server listens on every address and was not told which one the machines reach.
    #[error("boot server: listening on {addr}, it needs the URL the machines reach it at")]
    NoAdvertisedUrl {
        /// The bound address.
        addr: SocketAddr,
    },
    /// Two machines boot from the same MAC: one of them would get the other's Ignition.
    #[error("boot server: machines {first} and {second} both boot from MAC {mac}")]
    DuplicateMac {
        /// The MAC.
        mac: MacAddr,
        /// The first machine listed with it.
        first: String,
        /// The second.
        second: String,
    },
    /// The installer's Ignition of a machine could not be rendered.
    #[error("boot server: the installer of {hostname}: {source}")]
    Installer {
        /// The machine.
        hostname: String,
        /// Why.
        source: crate::assets::AssetError,
    },
}
