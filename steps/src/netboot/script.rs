//! The iPXE scripts the boot server answers, as Matchbox renders a Typhoon install profile.

use super::config::NetbootConfig;

/// Flatcar's PXE kernel in a release directory (Typhoon's `profiles.tf`).
pub const KERNEL: &str = "flatcar_production_pxe.vmlinuz";
/// Flatcar's PXE initrd in a release directory; the kernel finds it by this name (`initrd=`).
pub const INITRD: &str = "flatcar_production_pxe_image.cpio.gz";

/// The script for a machine that asked for `/boot.ipxe` without its MAC (a DHCP server's one
/// `filename` for every machine, as Matchbox's `/boot.ipxe`): it asks again with the MAC of
/// the NIC it booted from. `netX` is iPXE's name for the last NIC opened, the one that booted;
/// `net0` would name the first NIC, another one's MAC on a machine with two.
pub fn chain(server_url: &str) -> String {
    format!("#!ipxe\nchain {server_url}/boot.ipxe?mac=${{netX/mac}}\n")
}

/// A known machine's script: Flatcar's PXE kernel and initrd from the mirror, booted once
/// (`flatcar.first_boot`) with the installer's Ignition from this server. iPXE fills in
/// `${netX/mac}`; the server answers only a MAC it knows.
pub fn install(config: &NetbootConfig, server_url: &str) -> String {
    let mirror = config.mirror.trim_end_matches('/');
    let mut args = vec![
        format!("initrd={INITRD}"),
        "flatcar.first_boot=yes".to_owned(),
        format!("ignition.config.url={server_url}/ignition?mac=${{netX/mac}}"),
    ];
    args.extend(config.kernel_args.iter().cloned());
    format!(
        "#!ipxe\nkernel {mirror}/{KERNEL} {}\ninitrd {mirror}/{INITRD}\nboot\n",
        args.join(" ")
    )
}
