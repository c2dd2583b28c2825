//! The per-node root directory: the emulated node's filesystem and its command shims.
//!
//! Layout of `<root_dir>/<hostname>/`:
//! - `home/core/` is `$HOME`; `opt/`, `etc/`, `var/`, ... hold what Ignition and SSH commands write.
//! - `.sim/bin/` holds the `sudo`, `systemctl`, `journalctl` and `chown` shims (first in `PATH`).
//! - `.sim/exec` is the wrapper every SSH request runs through (both SSH backends use it).
//! - `.sim/units/<unit>` holds a unit's state, `.sim/journal/<unit>.log` its log.
//! - `.sim/ssh/` holds the host key and authorized keys (mode 0700).
//!
//! Without privileges there is no chroot or mount namespace, so node paths are kept off the host
//! by rewriting: the wrapper prefixes absolute `/opt`, `/etc`, `/var`, `/run`, `/mnt`, `/srv` and
//! `/home` paths in the command line with the node root before handing it to a real `/bin/sh`.
//! Paths hidden from the command line (inside scripts, variables built at run time, absolute sftp
//! paths) are not rewritten: that is the emulation's known limit.
//!
//! A cluster's objects (what its etcd holds) live beside the roots, in `<root_dir>/.etcd/`
//! (`crate::apiserver::ObjectStores`), so that they survive a controller being recreated.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Component, Path, PathBuf};

use super::error::NodesError;
use crate::ignition::NodeIgnition;

const EXEC_SCRIPT: &str = include_str!("shims/exec.sh");
const REWRITE_SCRIPT: &str = include_str!("shims/rewrite.pl");
const SHIMS: [(&str, &str); 4] = [
    ("sudo", include_str!("shims/sudo.sh")),
    ("systemctl", include_str!("shims/systemctl.sh")),
    ("journalctl", include_str!("shims/journalctl.sh")),
    ("chown", include_str!("shims/chown.sh")),
];

/// The prepared root directory of one node.
#[derive(Debug, Clone)]
pub struct NodeRoot {
    dir: PathBuf,
}

impl NodeRoot {
    /// Creates (or, for a device seen before, reuses) the node root and writes the Ignition files.
    ///
    /// A root left by another device id is wiped first: a recreated device is a fresh machine.
    pub fn prepare(
        root_dir: &Path,
        hostname: &str,
        device_id: &str,
        ignition: &NodeIgnition,
    ) -> Result<Self, NodesError> {
        let root = NodeRoot {
            dir: root_dir.join(hostname),
        };
        let io_error = |path: &Path| {
            let path = path.to_owned();
            move |source| NodesError::RootDir { path, source }
        };
        let previous_device = fs::read_to_string(root.sim_dir().join("device-id")).ok();
        if previous_device.as_deref() != Some(device_id) && root.dir.exists() {
            remove_tree(&root.dir).map_err(io_error(&root.dir))?;
        }
        for dir in ["home/core", "opt", "etc", "var/log", "run", "mnt", "srv"] {
            let path = root.dir.join(dir);
            fs::create_dir_all(&path).map_err(io_error(&path))?;
        }
        for dir in [
            root.sim_dir().join("bin"),
            root.units_dir(),
            root.journal_dir(),
        ] {
            fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        }
        create_private_dir(&root.ssh_dir()).map_err(io_error(&root.ssh_dir()))?;
        let path = root.sim_dir().join("device-id");
        fs::write(&path, device_id).map_err(io_error(&path))?;

        root.write_scripts(hostname)?;
        root.write_units(ignition)?;
        for file in &ignition.files {
            let Some(path) = root.node_path(&file.path) else {
                tracing::warn!(hostname, path = %file.path, "Ignition file path is not absolute and clean, skipped");
                continue;
            };
            write_file(&path, &file.contents, file.mode.unwrap_or(0o644))
                .map_err(io_error(&path))?;
        }
        Ok(root)
    }

    /// The wrapper script every SSH request runs through (`/bin/sh <exec_wrapper>`).
    pub fn exec_wrapper(&self) -> PathBuf {
        self.sim_dir().join("exec")
    }

    /// Private directory for the host key, authorized keys and sshd configuration.
    pub fn ssh_dir(&self) -> PathBuf {
        self.sim_dir().join("ssh")
    }

    /// The node's SSH host key in OpenSSH format (what sshd and the embedded server present).
    pub fn host_key_path(&self) -> PathBuf {
        self.ssh_dir().join("ssh_host_ed25519_key")
    }

    /// `core`'s authorized keys, one OpenSSH line each.
    pub fn authorized_keys_path(&self) -> PathBuf {
        self.ssh_dir().join("authorized_keys")
    }

    /// Appends a line to a unit's emulated journal.
    pub fn journal(&self, unit: &str, message: &str) {
        use std::io::Write as _;
        let path = self.journal_dir().join(format!("{unit}.log"));
        let line = format!(
            "{} {} {}: {message}\n",
            chrono::Utc::now().format("%b %d %H:%M:%S"),
            self.hostname(),
            unit.trim_end_matches(".service"),
        );
        let written = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut file| file.write_all(line.as_bytes()));
        if let Err(error) = written {
            tracing::warn!(path = %path.display(), %error, "cannot write the emulated journal");
        }
    }

    /// The host path for an absolute node path; `None` for relative paths or `..` components.
    pub fn node_path(&self, path: &str) -> Option<PathBuf> {
        let path = Path::new(path);
        let mut host = self.dir.clone();
        let mut components = path.components();
        if components.next() != Some(Component::RootDir) {
            return None;
        }
        for component in components {
            match component {
                Component::Normal(part) => host.push(part),
                Component::CurDir => {}
                _ => return None,
            }
        }
        Some(host)
    }

    fn hostname(&self) -> String {
        self.dir
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    fn sim_dir(&self) -> PathBuf {
        self.dir.join(".sim")
    }

    fn units_dir(&self) -> PathBuf {
        self.sim_dir().join("units")
    }

    fn journal_dir(&self) -> PathBuf {
        self.sim_dir().join("journal")
    }

    fn write_scripts(&self, hostname: &str) -> Result<(), NodesError> {
        let header = format!(
            "#!/bin/sh\n# Generated by the loko simulator for node {hostname}.\nNODE_ROOT={}\nNODE_HOSTNAME={}\n",
            shell_quote(&self.dir.to_string_lossy()),
            shell_quote(hostname),
        );
        let mut scripts = vec![
            (self.exec_wrapper(), format!("{header}{EXEC_SCRIPT}"), 0o755),
            (
                self.sim_dir().join("rewrite.pl"),
                REWRITE_SCRIPT.to_owned(),
                0o644,
            ),
        ];
        for (name, body) in SHIMS {
            scripts.push((
                self.sim_dir().join("bin").join(name),
                format!("{header}{body}"),
                0o755,
            ));
        }
        for (path, text, mode) in scripts {
            write_file(&path, text.as_bytes(), mode)
                .map_err(|source| NodesError::RootDir { path, source })?;
        }
        Ok(())
    }

    /// Sets what `systemctl is-active <unit>` answers on the node.
    pub fn set_unit_state(&self, unit: &str, state: &str) {
        let path = self.units_dir().join(unit);
        if let Err(error) = fs::write(&path, format!("{state}\n")) {
            tracing::warn!(path = %path.display(), %error, "cannot write the emulated unit state");
        }
    }

    fn write_units(&self, ignition: &NodeIgnition) -> Result<(), NodesError> {
        for unit in &ignition.units {
            let path = self.units_dir().join(&unit.name);
            if path.exists() {
                // A restarted node keeps the states its units reached.
                continue;
            }
            let state = if unit.enabled {
                "active\n"
            } else {
                "inactive\n"
            };
            fs::write(&path, state).map_err(|source| NodesError::RootDir { path, source })?;
        }
        Ok(())
    }
}

fn write_file(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(path, contents)?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

fn create_private_dir(path: &Path) -> io::Result<()> {
    fs::create_dir_all(path)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o700))
}

/// Removes a node root, first making its directories writable (the etcd step leaves them 0500).
fn remove_tree(path: &Path) -> io::Result<()> {
    fn make_writable(path: &Path) -> io::Result<()> {
        let metadata = fs::symlink_metadata(path)?;
        if metadata.is_dir() {
            fs::set_permissions(path, fs::Permissions::from_mode(0o700))?;
            for entry in fs::read_dir(path)? {
                make_writable(&entry?.path())?;
            }
        }
        Ok(())
    }
    make_writable(path)?;
    fs::remove_dir_all(path)
}

/// Quotes `text` as one single-quoted POSIX shell word.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_paths_stay_inside_the_root() {
        let root = NodeRoot {
            dir: PathBuf::from("/r/n"),
        };
        assert_eq!(
            root.node_path("/etc/ssh/key"),
            Some(PathBuf::from("/r/n/etc/ssh/key"))
        );
        assert_eq!(root.node_path("/etc/../../x"), None);
        assert_eq!(root.node_path("etc/x"), None);
    }

    fn rewrite(root: &str, command: &str) -> String {
        use std::io::Write as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let script = dir.path().join("rewrite.pl");
        std::fs::write(&script, REWRITE_SCRIPT).expect("write script");
        let mut child = std::process::Command::new("/usr/bin/perl")
            .arg(&script)
            .env("NODE_ROOT", root)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("run perl");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(command.as_bytes())
            .expect("feed perl");
        let output = child.wait_with_output().expect("perl output");
        String::from_utf8(output.stdout).expect("utf-8")
    }

    #[test]
    fn node_paths_in_command_lines_are_rewritten_into_the_root() {
        let root = "/var/sim/n";
        assert_eq!(
            rewrite(
                root,
                "sudo mkdir -p /etc/ssl/etcd/etcd && sudo mv $HOME/assets /opt/assets/"
            ),
            "sudo mkdir -p /var/sim/n/etc/ssl/etcd/etcd && sudo mv $HOME/assets /var/sim/n/opt/assets/"
        );
        // Adjacent paths, quotes, `=` and operators all start a path.
        assert_eq!(
            rewrite(root, "ls /etc /opt;cat '/var/x'>/run/y --dir=/srv"),
            "ls /var/sim/n/etc /var/sim/n/opt;cat '/var/sim/n/var/x'>/var/sim/n/run/y --dir=/var/sim/n/srv"
        );
        // Paths already in the root, relative paths, other roots and look-alikes stay.
        assert_eq!(
            rewrite(
                root,
                "cat /var/sim/n/etc/x $HOME/etc/y etc/z /usr/bin/env /etcetera /tmp/opt"
            ),
            "cat /var/sim/n/etc/x $HOME/etc/y etc/z /usr/bin/env /etcetera /tmp/opt"
        );
        assert_eq!(
            rewrite(root, "a\n/home/core/x\n"),
            "a\n/var/sim/n/home/core/x\n"
        );
    }

    #[test]
    fn shell_quote_survives_quotes() {
        assert_eq!(shell_quote("a'b"), r"'a'\''b'");
    }
}
