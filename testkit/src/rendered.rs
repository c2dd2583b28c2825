//! What loko renders for a cluster, offline: the PKI, kubeconfigs, manifests (the static control
//! plane's and the cluster's) and every
//! node's Ignition, written into a temporary asset directory exactly as `loko run` writes them.
//! The fidelity tests judge these files against the upstream components' facts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use specs::DesiredCluster;
use steps::assets::AssetDir;
use steps::assets::pki::{PkiInputs, ensure_pki};

/// A rendered cluster; the directory is removed on drop.
pub struct Rendered {
    /// Keeps the asset directory alive.
    _tmp: tempfile::TempDir,
    /// The asset directory (`tls/`, `auth/`, `static-manifests/`, `manifests/`, `ignition/`).
    pub root: PathBuf,
    /// The cluster it was rendered from.
    pub cluster: DesiredCluster,
    /// Each node's Ignition as the installed system reads it (for an iPXE node, the
    /// post-install Ignition its installer carries), by hostname.
    pub ignitions: BTreeMap<String, Value>,
    /// Each node's Ignition as sent to Packet (for an iPXE node, the installer's).
    pub userdata: BTreeMap<String, Value>,
}

/// The path of an example spec of the repository (`examples/<name>`).
pub fn example_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
}

/// Loads `examples/<name>` and renders it.
pub fn render_example(name: &str) -> Rendered {
    let spec = specs::load(&example_path(name))
        .unwrap_or_else(|e| panic!("examples/{name} does not load: {e}"));
    render(spec.desired())
}

/// Renders every asset of `cluster` into a fresh temporary directory.
pub fn render(cluster: DesiredCluster) -> Rendered {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let root = tmp.path().join("assets");
    let dir = AssetDir::create(&root).expect("the asset directory");
    ensure_pki(
        &dir,
        &PkiInputs::from_desired(&cluster),
        std::time::SystemTime::now(),
    )
    .expect("the PKI renders");
    let token =
        steps::assets::bootstrap_token::ensure_token(&dir, std::time::SystemTime::now(), true)
            .expect("the bootstrap token");
    steps::assets::kubeconfig::write_kubeconfigs(&dir, &cluster, &token)
        .expect("kubeconfigs render");
    steps::assets::manifests::render_manifests(&dir, &cluster).expect("manifests render");
    let kubelet =
        steps::assets::kubeconfig::kubelet_kubeconfig(&dir, &cluster).expect("kubelet kubeconfig");
    let mut ignitions = BTreeMap::new();
    let mut userdata = BTreeMap::new();
    for node in &cluster.nodes {
        let host_key = steps::ignition::ensure_host_key(&dir, &node.hostname).expect("host key");
        let text = steps::ignition::render(&cluster, node, &host_key, &kubelet)
            .unwrap_or_else(|e| panic!("the Ignition of {} renders: {e}", node.hostname));
        steps::ignition::write(&dir, &node.hostname, &text).expect("Ignition written");
        let sent: Value = serde_json::from_str(&text).expect("Ignition is JSON");
        let installed = postinstall(&sent).unwrap_or_else(|| sent.clone());
        ignitions.insert(node.hostname.clone(), installed);
        userdata.insert(node.hostname.clone(), sent);
    }
    Rendered {
        _tmp: tmp,
        root,
        cluster,
        ignitions,
        userdata,
    }
}

/// The Ignition an iPXE installer carries for the installed system, if `ignition` is one.
fn postinstall(ignition: &Value) -> Option<Value> {
    let file = ignition["storage"]["files"]
        .as_array()?
        .iter()
        .find(|f| f["path"] == steps::ignition::POSTINSTALL_PATH)?;
    let bytes = data_url(file["contents"]["source"].as_str()?)?;
    serde_json::from_slice(&bytes).ok()
}

/// Decodes an Ignition `data:` URL (base64 or percent-encoded).
pub fn data_url(url: &str) -> Option<Vec<u8>> {
    sim::ignition::decode_data_url(url)
}

impl Rendered {
    /// The contents of a file an Ignition writes, by node and path.
    pub fn file(&self, hostname: &str, path: &str) -> Option<Vec<u8>> {
        let files = self.ignitions.get(hostname)?["storage"]["files"].as_array()?;
        let file = files.iter().find(|f| f["path"] == path)?;
        data_url(file["contents"]["source"].as_str()?)
    }

    /// The systemd units of a node's Ignition: (name, enabled, masked, contents).
    pub fn units(&self, hostname: &str) -> Vec<(String, bool, bool, Option<String>)> {
        self.ignitions[hostname]["systemd"]["units"]
            .as_array()
            .map(|units| {
                units
                    .iter()
                    .map(|u| {
                        (
                            u["name"].as_str().unwrap_or_default().to_owned(),
                            u["enabled"].as_bool().unwrap_or(false),
                            u["mask"].as_bool().unwrap_or(false),
                            u["contents"].as_str().map(str::to_owned),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// What loko's control-plane step puts on every controller (over SSH, never in the
    /// Ignition): node path → (contents, mode).
    pub fn controller_files(&self) -> BTreeMap<String, (Vec<u8>, u32)> {
        steps::control_plane::control_plane_files(
            &self.root,
            self.cluster.settings.enable_aggregation,
        )
        .unwrap_or_else(|e| panic!("the control plane's files: {e}"))
        .into_iter()
        .map(|f| (f.path, (f.contents, f.mode)))
        .collect()
    }

    /// Every rendered manifest file (relative path under the asset directory, parsed JSON).
    pub fn manifests(&self) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        for top in ["static-manifests", "manifests"] {
            collect(&self.root, &self.root.join(top), &mut out);
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, Value)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "json" || e == "yaml") {
            let text = std::fs::read_to_string(&path).expect("manifest readable");
            let value: Value = if path.extension().is_some_and(|e| e == "json") {
                serde_json::from_str(&text).expect("manifest is JSON")
            } else {
                serde_yaml::from_str(&text).expect("manifest is YAML")
            };
            let rel = path
                .strip_prefix(root)
                .expect("under root")
                .display()
                .to_string();
            out.push((rel, value));
        }
    }
}
