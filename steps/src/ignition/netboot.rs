//! The Ignition of a network-booted installer (Typhoon's `butane/install.yaml`): a unit that
//! fetches the node's own Ignition from loko's boot server, writes Flatcar to the machine's
//! install disk with it, and reboots into the installed system.
//!
//! Unlike the Packet iPXE installer, the node's Ignition is not inline: the installer Ignition
//! travels in the kernel's `ignition.config.url` and may be read by anything on the boot
//! network, so it carries no secret; the node's Ignition is fetched once, by URL, as Matchbox's
//! `os=installed` profile is.

use super::{Config, Meta, Passwd, Storage, Systemd, Unit, User, VERSION, file, installer_units};
use crate::assets::AssetError;

/// Where the installer writes the node's Ignition before `flatcar-install` reads it.
pub const NODE_IGNITION_PATH: &str = "/opt/node-ignition.json";

/// What the installer needs to know about the machine it runs on.
#[derive(Debug, Clone)]
pub struct InstallerParams<'a> {
    /// The URL of the node's own Ignition on the boot server.
    pub node_ignition_url: &'a str,
    /// The disk `flatcar-install -d` writes to (`/dev/sda`).
    pub install_disk: &'a str,
    /// The Flatcar channel (`stable`).
    pub channel: &'a str,
    /// The Flatcar version (`current` or `4081.2.1`).
    pub version: &'a str,
    /// `core`'s SSH keys, so that an operator can log into the installer (port 2222).
    pub ssh_keys: &'a [String],
}

/// The installer's Ignition (JSON).
pub fn render_installer(params: &InstallerParams<'_>) -> Result<String, AssetError> {
    script_ignition(
        "the network installer's Ignition",
        params.ssh_keys,
        ("/opt/installer", &installer_script(params)),
        installer_units(),
    )
}

/// The Ignition (JSON) of a system booted from the network to run one script (`path`,
/// `script`) through `units`, with `core`'s `ssh_keys`; `what` names it in an error.
pub(super) fn script_ignition(
    what: &str,
    ssh_keys: &[String],
    (path, script): (&str, &str),
    units: Vec<Unit>,
) -> Result<String, AssetError> {
    let config = Config {
        ignition: Meta { version: VERSION },
        passwd: Passwd {
            users: vec![User {
                name: "core",
                ssh_authorized_keys: ssh_keys.to_vec(),
            }],
        },
        storage: Storage {
            files: vec![file(path, 0o500, script.as_bytes())],
        },
        systemd: Systemd { units },
    };
    serde_json::to_string(&config).map_err(|e| AssetError::Generate {
        what: what.to_owned(),
        reason: e.to_string(),
    })
}

/// The installer's script. Each argument is single-quoted: the URL holds `?` and `&`, and a
/// disk path from the spec must never be read as shell.
pub fn installer_script(params: &InstallerParams<'_>) -> String {
    format!(
        "#!/bin/bash\nset -euxo pipefail\n\
         curl --fail --silent --show-error --retry 10 -o {out} {url}\n\
         flatcar-install -d {disk} -C {channel} -V {version} -i {out}\n\
         udevadm settle\n\
         systemctl reboot\n",
        out = NODE_IGNITION_PATH,
        url = shell_quote(params.node_ignition_url),
        disk = shell_quote(params.install_disk),
        channel = shell_quote(params.channel),
        version = shell_quote(params.version),
    )
}

pub(super) fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quote_in_a_word_stays_inside_it() {
        assert_eq!(
            shell_quote("/dev/disk/by-id/a'b"),
            r"'/dev/disk/by-id/a'\''b'"
        );
    }
}
