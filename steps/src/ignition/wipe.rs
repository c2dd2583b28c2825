//! The Ignition of a retired rack machine's wipe (`boot_server.retire: wipe`): booted from the
//! network like the installer (`super::netboot`), a oneshot unit erases the install disk so
//! that no later boot finds the node or its secrets, then powers the machine off, which is how
//! loko sees it done. Like the installer's, it carries no secret.
//!
//! What each command does is as util-linux documents it: `wipefs --all` erases every signature
//! libblkid sees, but on a whole disk only the partition tables, "not the content of the
//! partitions", so the partitions are named too, in the same call (the kernel rereads the table
//! once, after all of them); `--force` is "required in order to erase a partition-table
//! signature on a block device" (wipefs(8)). wipefs "does not erase the filesystem itself nor any
//! other data", so `blkdiscard` then discards every block where the disk supports it (it fails,
//! exit 2, where it does not: blkdiscard(8)); the first and last MiB (the MBR, GPT's primary and
//! backup headers) are zeroed in any case.

use super::netboot::{script_ignition, shell_quote};
use super::{sshd_away_from_22, unit, units};
use crate::assets::AssetError;

/// Where the wipe's script is; its unit runs it.
pub const WIPE_SCRIPT_PATH: &str = "/opt/wipe";

/// The wipe's Ignition (JSON) for `install_disk`, with `core`'s `ssh_keys` for an operator.
pub fn render_wipe(install_disk: &str, ssh_keys: &[String]) -> Result<String, AssetError> {
    script_ignition(
        &format!("the wipe's Ignition of {install_disk}"),
        ssh_keys,
        (WIPE_SCRIPT_PATH, &wipe_script(install_disk)),
        vec![
            unit("wipe.service", units::WIPE.to_owned()),
            sshd_away_from_22(),
        ],
    )
}

/// The wipe's script. The disk is single-quoted: a path from the spec is never read as shell.
/// A `/dev/disk/by-id/...` link is followed by every command.
pub fn wipe_script(install_disk: &str) -> String {
    let disk = shell_quote(install_disk);
    format!(
        "#!/bin/bash\nset -euxo pipefail\n\
         udevadm settle\n\
         mapfile -t partitions < <(lsblk --list --noheadings --paths --output NAME,TYPE {disk} | awk '$2 == \"part\" {{ print $1 }}')\n\
         wipefs --all --force \"${{partitions[@]}}\" {disk}\n\
         if ! blkdiscard --force {disk}; then\n\
         \x20 echo 'no discard: the data blocks stay, their signatures and tables are gone'\n\
         fi\n\
         sectors=$(blockdev --getsz {disk})\n\
         dd if=/dev/zero of={disk} bs=512 count=2048 conv=fsync\n\
         dd if=/dev/zero of={disk} bs=512 count=2048 seek=$((sectors - 2048)) conv=fsync\n\
         udevadm settle\n\
         systemctl poweroff\n"
    )
}
