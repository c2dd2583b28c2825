//! The SSH steps that bootstrap the control plane, as Lokomotive's `null_resource`s did, but
//! rerunnable: every step checks the node's state before acting.
//!
//! - [`EtcdSecretsStep`] (each controller): the etcd CA, server, peer and client certificates
//!   into `/etc/ssl/etcd`, owned by etcd, mode 500.
//! - [`BootkubeStep`] (controller 0): the assets into `/opt/bootkube/assets`, then
//!   `systemctl start bootkube` exactly once. Lokomotive's version moved `~/assets` first, so a
//!   rerun failed with `mv: cannot stat '/home/core/assets'` (peer lesson); here the step asks
//!   the node where it stands (`init_bootkube.done`? assets present?) and continues from there.
//!
//! Remote commands spell absolute paths out on the command line (no variables), which keeps
//! them readable in the journal and lets the simulator map them into a node's root.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use engine::{StepContext, StepError};
use journal::{Outputs, StepId};

use crate::ssh::{Ssh, SshTarget, tar_archive};

/// How to reach a node: its address comes from its device step, its pinned host key from its
/// Ignition step.
#[derive(Clone, Debug)]
pub struct NodeAccess {
    pub hostname: String,
    pub device_step: StepId,
    pub host_key_step: StepId,
    pub port: u16,
    pub user: String,
}

impl NodeAccess {
    /// The SSH target, from the dependencies' outputs.
    pub fn target(&self, ctx: &StepContext) -> Result<SshTarget, StepError> {
        let ip: String = ctx.output_of(&self.device_step)?.get("public_ipv4")?;
        let ip = ip.parse().map_err(|_| {
            StepError::permanent(format!(
                "{} published public_ipv4={ip:?}, not an IP address",
                self.device_step
            ))
        })?;
        let host_key: String = ctx.output_of(&self.host_key_step)?.get("ssh_host_key")?;
        Ok(SshTarget {
            node: self.hostname.clone(),
            addr: SocketAddr::new(ip, self.port),
            user: self.user.clone(),
            host_key,
        })
    }
}

/// The files of asset_dir that a controller's etcd needs, and where they go under
/// `/etc/ssl/etcd` (the layout of Lokomotive's `copy-controller-secrets`).
pub const ETCD_FILES: [(&str, &str); 9] = [
    ("tls/etcd-client-ca.crt", "etcd-client-ca.crt"),
    ("tls/etcd-client.crt", "etcd-client.crt"),
    ("tls/etcd-client.key", "etcd-client.key"),
    ("tls/etcd/server-ca.crt", "etcd/server-ca.crt"),
    ("tls/etcd/server.crt", "etcd/server.crt"),
    ("tls/etcd/server.key", "etcd/server.key"),
    ("tls/etcd/peer-ca.crt", "etcd/peer-ca.crt"),
    ("tls/etcd/peer.crt", "etcd/peer.crt"),
    ("tls/etcd/peer.key", "etcd/peer.key"),
];

/// The parts of asset_dir bootkube reads. Not the journal, not other nodes' SSH host keys.
pub const BOOTKUBE_ASSETS: [&str; 4] = ["auth", "tls", "manifests", "bootstrap-manifests"];

fn read_asset(asset_dir: &Path, rel: &str) -> Result<Vec<u8>, StepError> {
    let path = asset_dir.join(rel);
    std::fs::read(&path)
        .map_err(|e| StepError::permanent(format!("cannot read {}: {e}", path.display())))
}

fn failed(node: &str, what: &str, out: &crate::ssh::CommandOutput) -> StepError {
    StepError::retryable(format!(
        "{node}: {what} exited {}: {}",
        out.status,
        journal::redact(out.stderr.trim())
    ))
}

/// Copies the etcd certificates to one controller.
pub struct EtcdSecretsStep {
    pub ssh: Ssh,
    pub node: NodeAccess,
    pub asset_dir: PathBuf,
}

impl EtcdSecretsStep {
    /// One attempt. Idempotent: files are overwritten in place.
    pub async fn run(&self, ctx: StepContext) -> Result<Outputs, StepError> {
        let target = self.node.target(&ctx)?;
        let mut files = Vec::with_capacity(ETCD_FILES.len());
        for (from, to) in ETCD_FILES {
            let mode = if to.ends_with(".key") { 0o600 } else { 0o644 };
            files.push((to.to_owned(), read_asset(&self.asset_dir, from)?, mode));
        }
        let archive = tar_archive(&files)
            .map_err(|e| StepError::permanent(format!("cannot pack the etcd certificates: {e}")))?;
        let command = "sudo mkdir -p /etc/ssl/etcd/etcd \
            && sudo tar -x --no-same-owner -C /etc/ssl/etcd \
            && sudo chown -R etcd:etcd /etc/ssl/etcd \
            && sudo chmod -R 500 /etc/ssl/etcd";
        let out = self.ssh.run(&target, command, archive).await?;
        if out.status != 0 {
            return Err(failed(
                &self.node.hostname,
                "installing the etcd certificates",
                &out,
            ));
        }
        Ok(Outputs::new()
            .with("node", &self.node.hostname)?
            .with("files", ETCD_FILES.len())?)
    }
}

/// Where bootkube stands on controller 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BootkubeState {
    /// `/opt/bootkube/init_bootkube.done` exists: the cluster was bootstrapped.
    Done,
    /// The assets are in place; bootkube has not completed.
    Copied,
    /// Nothing yet.
    Fresh,
}

const PROBE: &str = "if test -f /opt/bootkube/init_bootkube.done; then echo done; \
    elif test -d /opt/bootkube/assets; then echo copied; else echo fresh; fi";

// The assets land in a temporary directory that is renamed into place, so a copy interrupted
// half-way is never mistaken for a complete one.
const COPY: &str = "sudo rm -rf /opt/bootkube/assets.partial \
    && sudo mkdir -p /opt/bootkube/assets.partial \
    && sudo tar -x --no-same-owner -C /opt/bootkube/assets.partial \
    && sudo mv /opt/bootkube/assets.partial /opt/bootkube/assets";

const START: &str = "sudo systemctl start bootkube";
const UNIT_LOG: &str = "sudo journalctl -u bootkube --no-pager";

/// Copies the assets to controller 0 and starts bootkube once.
pub struct BootkubeStep {
    pub ssh: Ssh,
    pub node: NodeAccess,
    pub asset_dir: PathBuf,
}

impl BootkubeStep {
    /// One attempt; see the module docs.
    pub async fn run(&self, ctx: StepContext) -> Result<Outputs, StepError> {
        let target = self.node.target(&ctx)?;
        let node = &self.node.hostname;
        let state = self.probe(&target).await?;
        ctx.progress(format!("bootkube on {node}: {state:?}"));
        let outcome = match state {
            BootkubeState::Done => "already bootstrapped",
            BootkubeState::Fresh | BootkubeState::Copied => {
                if state == BootkubeState::Fresh {
                    let archive = self.assets_archive()?;
                    ctx.progress(format!(
                        "copying {} KiB of assets to {node}",
                        archive.len() / 1024
                    ));
                    let out = self.ssh.run(&target, COPY, archive).await?;
                    if out.status != 0 {
                        return Err(failed(node, "copying the assets", &out));
                    }
                }
                ctx.intent("start bootkube", Outputs::new().with("node", node)?)
                    .await?;
                ctx.progress(format!(
                    "started bootkube on {node}; waiting for it to finish"
                ));
                let out = self.ssh.run(&target, START, Vec::new()).await?;
                if out.status != 0 {
                    let log = self.ssh.run(&target, UNIT_LOG, Vec::new()).await?;
                    let tail: Vec<&str> = log.stdout.lines().rev().take(30).collect();
                    let tail: Vec<&str> = tail.into_iter().rev().collect();
                    return Err(StepError::retryable(format!(
                        "{node}: bootkube failed (exit {}): {}\n--- journalctl -u bootkube (last lines) ---\n{}",
                        out.status,
                        journal::redact(out.stderr.trim()),
                        journal::redact(&tail.join("\n"))
                    )));
                }
                "started"
            }
        };
        Ok(Outputs::new()
            .with("node", node)?
            .with("bootkube", outcome)?)
    }

    async fn probe(&self, target: &SshTarget) -> Result<BootkubeState, StepError> {
        let out = self.ssh.run(target, PROBE, Vec::new()).await?;
        match out.stdout.trim() {
            "done" => Ok(BootkubeState::Done),
            "copied" => Ok(BootkubeState::Copied),
            "fresh" => Ok(BootkubeState::Fresh),
            other => Err(StepError::retryable(format!(
                "{}: unexpected answer to the bootkube state probe: {other:?} (stderr: {})",
                self.node.hostname,
                out.stderr.trim()
            ))),
        }
    }

    fn assets_archive(&self) -> Result<Vec<u8>, StepError> {
        let mut files = Vec::new();
        for top in BOOTKUBE_ASSETS {
            collect(&self.asset_dir, &self.asset_dir.join(top), &mut files)?;
        }
        tar_archive(&files)
            .map_err(|e| StepError::permanent(format!("cannot pack the assets: {e}")))
    }
}

/// Every regular file under `dir`, with its path relative to `root` and a mode that keeps keys
/// private.
fn collect(
    root: &Path,
    dir: &Path,
    out: &mut Vec<(String, Vec<u8>, u32)>,
) -> Result<(), StepError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| StepError::permanent(format!("cannot read {}: {e}", dir.display())))?;
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            collect(root, &path, out)?;
        } else if path.is_file() {
            let rel = path
                .strip_prefix(root)
                .map_err(|_| {
                    StepError::permanent(format!("{} is outside asset_dir", path.display()))
                })?
                .to_string_lossy()
                .into_owned();
            let mode = if rel.ends_with(".key") || rel.starts_with("auth/") {
                0o600
            } else {
                0o644
            };
            let content = std::fs::read(&path).map_err(|e| {
                StepError::permanent(format!("cannot read {}: {e}", path.display()))
            })?;
            out.push((rel, content, mode));
        }
    }
    Ok(())
}
