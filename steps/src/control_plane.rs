//! The SSH steps that install the control plane, as Lokomotive's `null_resource`s did, but
//! rerunnable: every step converges the node to the same files.
//!
//! - [`EtcdSecretsStep`] (each controller): the etcd CA, server, peer and client certificates
//!   into `/etc/ssl/etcd`, owned by etcd, mode 500.
//! - [`ControlPlaneStep`] (each controller): the static control plane, its pods into
//!   `/etc/kubernetes/manifests` and the files they read into [`PKI_DIR`] (keys 0600, the
//!   directory 0700), staged and renamed into place. Lokomotive's bootkube step moved `~/assets`
//!   first, so a rerun failed with `mv: cannot stat '/home/core/assets'` (peer lesson); this one
//!   converges: a rerun installs the same files again.
//!
//! Remote commands spell absolute paths out on the command line (no variables), which keeps
//! them readable in the journal and lets the simulator map them into a node's root.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use engine::{StepContext, StepError};
use journal::StepId;

use crate::assets::kubeconfig::CONTROL_PLANE_KUBECONFIGS;
pub use crate::assets::manifests::PKI_DIR;
use crate::kinds::{
    ControlPlaneOutputs, DeviceAddress, DeviceKind, EtcdSecretsOutputs, IgnitionKind,
};
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
        let ip = DeviceKind::address(ctx, &self.device_step, DeviceAddress::PublicIpv4)?;
        let host_key = ctx
            .outputs_of::<IgnitionKind>(&self.host_key_step)?
            .ssh_host_key;
        Ok(SshTarget {
            node: self.hostname.clone(),
            addr: SocketAddr::new(ip.into(), self.port),
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

fn read_asset(asset_dir: &Path, rel: &str) -> Result<Vec<u8>, StepError> {
    let path = asset_dir.join(rel);
    std::fs::read(&path)
        .map_err(|e| StepError::permanent(format!("cannot read {}: {e}", path.display())))
}

fn failed(node: &str, what: &str, out: &crate::ssh::CommandOutput) -> StepError {
    StepError::retryable(format!(
        "{node}: {what} exited {}: {}",
        out.status,
        journal::redact_shapes(out.stderr.trim())
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
    pub async fn run(&self, ctx: StepContext) -> Result<EtcdSecretsOutputs, StepError> {
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
        Ok(EtcdSecretsOutputs {
            node: self.node.hostname.clone(),
            files: ETCD_FILES.len(),
        })
    }
}

/// The files of asset_dir a controller's static control plane reads, and their names in
/// [`PKI_DIR`]: its certificates and keys, and the scheduler's and controller-manager's
/// kubeconfigs. The aggregation files only with `enable_aggregation`.
pub fn control_plane_pki(aggregation: bool) -> Vec<(&'static str, &'static str)> {
    let mut files = vec![
        ("tls/ca.crt", "ca.crt"),
        // The controller-manager signs the kubelets' serving certificates with it.
        ("tls/ca.key", "ca.key"),
        ("tls/apiserver.crt", "apiserver.crt"),
        ("tls/apiserver.key", "apiserver.key"),
        ("tls/service-account.pub", "service-account.pub"),
        ("tls/service-account.key", "service-account.key"),
        ("tls/etcd-client-ca.crt", "etcd-client-ca.crt"),
        ("tls/etcd-client.crt", "etcd-client.crt"),
        ("tls/etcd-client.key", "etcd-client.key"),
    ];
    files.extend(
        CONTROL_PLANE_KUBECONFIGS
            .iter()
            .zip([
                "kube-scheduler.kubeconfig",
                "kube-controller-manager.kubeconfig",
            ])
            .map(|((_, rel), name)| (*rel, name)),
    );
    if aggregation {
        files.extend([
            ("tls/aggregation-ca.crt", "aggregation-ca.crt"),
            ("tls/aggregation-client.crt", "aggregation-client.crt"),
            ("tls/aggregation-client.key", "aggregation-client.key"),
        ]);
    }
    files
}

/// The asset directory of the static pods; each file goes to [`STATIC_POD_DIR`].
pub const STATIC_MANIFESTS: &str = "static-manifests";
/// Where every controller's kubelet reads its static pods (its `--pod-manifest-path`).
pub const STATIC_POD_DIR: &str = "/etc/kubernetes/manifests";

/// One file the control-plane step puts on a controller.
#[derive(Clone, PartialEq, Eq)]
pub struct NodeFile {
    /// The absolute path on the node.
    pub path: String,
    pub contents: Vec<u8>,
    pub mode: u32,
}

impl std::fmt::Debug for NodeFile {
    // Keys: never the contents.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NodeFile({}, {:o})", self.path, self.mode)
    }
}

/// What the control-plane step puts on every controller: the files of
/// [`control_plane_pki`] in [`PKI_DIR`] (keys and kubeconfigs 0600) and the static pods in
/// [`STATIC_POD_DIR`], PKI first.
pub fn control_plane_files(
    asset_dir: &Path,
    aggregation: bool,
) -> Result<Vec<NodeFile>, StepError> {
    let mut files = Vec::new();
    for (from, to) in control_plane_pki(aggregation) {
        let mode = if to.ends_with(".key") || to.ends_with(".kubeconfig") {
            0o600
        } else {
            0o644
        };
        files.push(NodeFile {
            path: format!("{PKI_DIR}/{to}"),
            contents: read_asset(asset_dir, from)?,
            mode,
        });
    }
    let mut manifests = Vec::new();
    let dir = asset_dir.join(STATIC_MANIFESTS);
    collect(&dir, &dir, &mut manifests)?;
    if manifests.is_empty() {
        return Err(StepError::permanent(format!(
            "{} holds no static pod; the manifests step writes them",
            dir.display()
        )));
    }
    files.extend(manifests.into_iter().map(|(rel, contents, mode)| NodeFile {
        path: format!("{STATIC_POD_DIR}/{rel}"),
        contents,
        mode,
    }));
    Ok(files)
}

// Everything lands in a private staging directory first; then each file is renamed into place
// (a rename is atomic), the PKI before the manifests, so the kubelet never reads half a
// manifest nor starts a pod whose files are not there yet. A rerun stages and renames again:
// same bytes, same pods.
const INSTALL_CONTROL_PLANE: &str = "sudo rm -rf /etc/kubernetes/.loko-control-plane \
    && sudo mkdir -p -m 0700 /etc/kubernetes/.loko-control-plane \
    && sudo tar -x --no-same-owner -C /etc/kubernetes/.loko-control-plane \
    && sudo mkdir -p /etc/kubernetes/pki /etc/kubernetes/manifests \
    && sudo chmod 0700 /etc/kubernetes/pki \
    && sudo sh -c 'mv -f /etc/kubernetes/.loko-control-plane/pki/* /etc/kubernetes/pki/ \
        && mv -f /etc/kubernetes/.loko-control-plane/manifests/* /etc/kubernetes/manifests/' \
    && sudo rm -rf /etc/kubernetes/.loko-control-plane";

/// Copies the static control plane (its pods and the files they read) to one controller,
/// whose kubelet then runs it. Never through the Ignition: Packet's metadata service serves a
/// device's userdata to every process on it.
pub struct ControlPlaneStep {
    pub ssh: Ssh,
    pub node: NodeAccess,
    pub asset_dir: PathBuf,
    pub aggregation: bool,
}

impl ControlPlaneStep {
    /// One attempt. Idempotent: a rerun installs the same files again.
    pub async fn run(&self, ctx: StepContext) -> Result<ControlPlaneOutputs, StepError> {
        let target = self.node.target(&ctx)?;
        let node = &self.node.hostname;
        let installed = control_plane_files(&self.asset_dir, self.aggregation)?;
        let pods: Vec<&str> = installed
            .iter()
            .filter_map(|f| f.path.strip_prefix(STATIC_POD_DIR))
            .map(|name| name.trim_start_matches('/'))
            .collect();
        // Staged as `pki/…` and `manifests/…`, the layout INSTALL_CONTROL_PLANE moves.
        let mut files = Vec::with_capacity(installed.len());
        for file in &installed {
            let staged = if let Some(name) = file.path.strip_prefix(PKI_DIR) {
                format!("pki{name}")
            } else if let Some(name) = file.path.strip_prefix(STATIC_POD_DIR) {
                format!("manifests{name}")
            } else {
                return Err(StepError::permanent(format!(
                    "{} is neither in {PKI_DIR} nor in {STATIC_POD_DIR}",
                    file.path
                )));
            };
            files.push((staged, file.contents.clone(), file.mode));
        }
        let archive = tar_archive(&files).map_err(|e| {
            StepError::permanent(format!("cannot pack the control plane of {node}: {e}"))
        })?;
        ctx.progress(format!("installing the static control plane on {node}"));
        let out = self
            .ssh
            .run(&target, INSTALL_CONTROL_PLANE, archive)
            .await?;
        if out.status != 0 {
            return Err(failed(node, "installing the static control plane", &out));
        }
        Ok(ControlPlaneOutputs {
            node: node.clone(),
            static_pods: pods.iter().map(|pod| (*pod).to_owned()).collect(),
            pki_files: files.len() - pods.len(),
        })
    }
}

/// Every regular file under `dir`, with its path relative to `root`.
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
                    StepError::permanent(format!(
                        "{} is outside {}",
                        path.display(),
                        root.display()
                    ))
                })?
                .to_string_lossy()
                .into_owned();
            let content = std::fs::read(&path).map_err(|e| {
                StepError::permanent(format!("cannot read {}: {e}", path.display()))
            })?;
            out.push((rel, content, 0o644));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_install_command_moves_into_the_directories_the_pods_and_kubelet_read() {
        for dir in [PKI_DIR, STATIC_POD_DIR] {
            assert!(
                INSTALL_CONTROL_PLANE.contains(&format!("mkdir -p {PKI_DIR} {STATIC_POD_DIR}"))
                    && INSTALL_CONTROL_PLANE.contains(&format!("* {dir}/")),
                "{dir}"
            );
        }
        assert!(INSTALL_CONTROL_PLANE.contains(&format!("chmod 0700 {PKI_DIR}")));
    }
}
