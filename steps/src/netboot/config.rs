//! What the boot server serves and why it may not start. Apart from `mod.rs` so that
//! `script.rs` and `server.rs` import it without importing their parent.

use std::net::SocketAddr;

use super::mac::MacAddr;

/// Flatcar's stable release of the day, as Typhoon's `profiles.tf` downloads it (the spec's
/// `boot_server.mirror` by default).
pub const DEFAULT_MIRROR: &str = specs::DEFAULT_FLATCAR_MIRROR;

/// What every machine boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetbootConfig {
    /// The release directory holding the PXE kernel and initrd ([`super::script::KERNEL`],
    /// [`super::script::INITRD`]).
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
    /// The wipe's Ignition of a retired machine could not be rendered.
    #[error("boot server: the wipe of machine {machine}: {source}")]
    Wipe {
        /// The machine.
        machine: String,
        /// Why.
        source: crate::assets::AssetError,
    },
}
