//! The facts about the real components, loaded from `sim/data/*.json` (embedded at build time, so
//! the demo needs nothing beside the binary). Each file names its upstream source in `_source`
//! and per entry; `sim/tests/it/judge_data.rs` checks the copies against the reference data when it
//! is present.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use serde::Deserialize;

/// `sim/data/kubernetes-v1.32-flags.json`.
pub const KUBERNETES_FLAGS_JSON: &str = include_str!("../../data/kubernetes-v1.32-flags.json");
/// `sim/data/other-flags.json`.
pub const OTHER_FLAGS_JSON: &str = include_str!("../../data/other-flags.json");
/// `sim/data/images.json`.
pub const IMAGES_JSON: &str = include_str!("../../data/images.json");
/// `sim/data/kubelet-node-label-rule.json`.
pub const LABEL_RULE_JSON: &str = include_str!("../../data/kubelet-node-label-rule.json");
/// `sim/data/flatcar-node.json`.
pub const FLATCAR_JSON: &str = include_str!("../../data/flatcar-node.json");
/// `sim/data/cni.json`.
pub const CNI_JSON: &str = include_str!("../../data/cni.json");
/// `sim/data/docker-run-options.json`.
pub const DOCKER_RUN_JSON: &str = include_str!("../../data/docker-run-options.json");

/// How a program reads its command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Parser {
    /// spf13/pflag (Kubernetes components, bootkube): `--name`, single-dash shorthands.
    Pflag,
    /// Go's `flag` package: `-name` and `--name` are the same.
    GoFlag,
}

/// A program's command line as its source defines it.
#[derive(Debug, Clone, Deserialize)]
pub struct Component {
    /// The binary's name.
    pub binary: String,
    /// How it parses flags.
    pub parser: Parser,
    /// Whether `_` in a flag name reads as `-` (the kubelet's WordSepNormalizeFunc).
    #[serde(default)]
    pub normalize_underscores: bool,
    /// Whether it takes words that are not flags.
    pub positional_arguments: bool,
    /// Flag names without dashes.
    #[serde(default)]
    pub flags: BTreeSet<String>,
    /// More flag names from another source.
    #[serde(default)]
    pub supplement: Option<Supplement>,
    /// Names it no longer (or never) accepted, with the evidence.
    #[serde(default)]
    pub removed: BTreeMap<String, String>,
    /// Subcommand → its flags (a program whose first word must be a subcommand).
    #[serde(default)]
    pub subcommands: BTreeMap<String, BTreeSet<String>>,
    /// Subcommand → flags it cannot run without.
    #[serde(default)]
    pub required_flags: BTreeMap<String, Vec<String>>,
    /// Environment variables it exits without.
    #[serde(default)]
    pub required_env: Vec<String>,
    /// Flag defaults that matter to the judge.
    #[serde(default)]
    pub defaults: BTreeMap<String, String>,
    /// CRI API versions it has clients for.
    #[serde(default)]
    pub cri_api_versions: Vec<String>,
    /// Where the facts come from.
    #[serde(default)]
    pub source: Option<String>,
}

/// Flag names added from a second source.
#[derive(Debug, Clone, Deserialize)]
pub struct Supplement {
    /// Where they come from.
    pub source: String,
    /// The names.
    pub flags: BTreeSet<String>,
}

impl Component {
    /// Whether `name` (without dashes) is a flag of the program (or of `subcommand`).
    pub fn accepts(&self, subcommand: Option<&str>, name: &str) -> bool {
        let name = if self.normalize_underscores {
            name.replace('_', "-")
        } else {
            name.to_owned()
        };
        if let Some(sub) = subcommand
            && self
                .subcommands
                .get(sub)
                .is_some_and(|flags| flags.contains(&name))
        {
            return true;
        }
        self.flags.contains(&name)
            || self
                .supplement
                .as_ref()
                .is_some_and(|s| s.flags.contains(&name))
    }
}

/// What an image runs.
#[derive(Debug, Clone, Deserialize)]
pub struct Image {
    /// Repositories (registry host included) holding this image.
    pub repositories: Vec<String>,
    /// ENTRYPOINT.
    pub entrypoint: Vec<String>,
    /// CMD.
    pub cmd: Vec<String>,
    /// `PATH` inside the image, for a relative argv[0].
    pub path: String,
    /// Absolute path → component name (a key of [`Facts::components`] or a plain tool).
    pub binaries: BTreeMap<String, String>,
    /// Where the facts come from.
    pub source: String,
    /// A sentence of the reference's images.md that states the fact (checked when present).
    #[serde(default)]
    pub reference_quote: Option<String>,
    /// The CNI plugins the image carries, and how it installs them on the host.
    #[serde(default)]
    pub cni: Option<CniInstall>,
}

impl Image {
    /// The component `argv0` runs in this image, if the image holds it.
    pub fn resolve(&self, argv0: &str) -> Option<(&str, &str)> {
        if argv0.starts_with('/') {
            return self
                .binaries
                .get_key_value(argv0)
                .map(|(path, component)| (path.as_str(), component.as_str()));
        }
        if argv0.contains('/') {
            return None;
        }
        self.path.split(':').find_map(|dir| {
            self.binaries
                .get_key_value(&format!("{dir}/{argv0}"))
                .map(|(path, component)| (path.as_str(), component.as_str()))
        })
    }
}

/// CNI plugin binaries an image holds, and the program (if any) that installs them on a node.
#[derive(Debug, Clone, Deserialize)]
pub struct CniInstall {
    /// The installer's path in the image; `None` when the image is only copied from (`cp`).
    #[serde(default)]
    pub installer: Option<String>,
    /// Path in the image → plugin name (the `type` a CNI configuration names).
    pub plugins: BTreeMap<String, String>,
    /// The container directory the installer copies every plugin to (a host directory is
    /// mounted there).
    #[serde(default)]
    pub copies_to: Option<String>,
    /// The variable holding the network configuration the installer writes.
    #[serde(default)]
    pub config_env: Option<String>,
    /// The container directory the installer writes the configuration to.
    #[serde(default)]
    pub writes_config_to: Option<String>,
    /// Variables the installer fails without.
    #[serde(default)]
    pub required_env: Vec<String>,
    /// Where the fact comes from.
    pub source: String,
}

/// What the container runtime needs of CNI, and the defaults of plugins that delegate.
#[derive(Debug, Clone, Deserialize)]
pub struct CniFacts {
    /// The node's container runtime.
    pub runtime: CniRuntime,
    /// Plugin name → what it runs when its configuration does not say.
    pub delegating_plugins: BTreeMap<String, DelegatingPlugin>,
}

/// Where the runtime finds CNI plugins and configurations.
#[derive(Debug, Clone, Deserialize)]
pub struct CniRuntime {
    /// Host directory of plugin binaries.
    pub bin_dir: String,
    /// Host directory of network configurations.
    pub conf_dir: String,
    /// Plugins every pod sandbox runs, whatever the configuration.
    pub always_needs: Vec<String>,
    /// Where the fact comes from.
    pub source: String,
}

/// A plugin that hands the pod's interface to another plugin.
#[derive(Debug, Clone, Deserialize)]
pub struct DelegatingPlugin {
    /// The delegate's `type` when the configuration gives none.
    pub delegate_default_type: String,
    /// The delegate's IPAM `type` when the configuration gives none.
    pub ipam_default_type: String,
    /// Where the fact comes from.
    pub source: String,
}

/// The kubelet's `--node-labels` rule.
#[derive(Debug, Clone, Deserialize)]
pub struct LabelRule {
    /// Namespaces (and their subdomains) that make a key a Kubernetes label.
    pub kubernetes_namespaces: Vec<String>,
    /// Kubernetes labels a kubelet may set anyway.
    pub allowed_keys: BTreeSet<String>,
    /// Namespaces (and their subdomains) a kubelet may set.
    pub allowed_namespaces: Vec<String>,
    /// Namespaces NodeRestriction forbids in addition.
    pub node_restriction_forbidden_namespaces: Vec<String>,
    /// The kubelet's error text.
    pub kubelet_error: String,
}

/// A file a Flatcar service writes, with the variables it holds.
#[derive(Debug, Clone, Deserialize)]
pub struct EnvironmentProducer {
    /// The file.
    pub path: String,
    /// The unit that writes it.
    pub unit: String,
    /// Prefix of the variables it defines.
    pub variables_prefix: String,
    /// Where the fact comes from.
    pub source: String,
}

/// A runtime socket on a Flatcar node.
#[derive(Debug, Clone, Deserialize)]
pub struct CriSocket {
    /// `unix://` endpoint.
    pub endpoint: String,
    /// CRI API versions served.
    pub api_versions: Vec<String>,
    /// Where the fact comes from.
    pub source: String,
}

/// A socket that does not exist on a Flatcar node.
#[derive(Debug, Clone, Deserialize)]
pub struct AbsentSocket {
    /// `unix://` endpoint.
    pub endpoint: String,
    /// Why not.
    pub why: String,
}

/// The Docker Engine API socket.
#[derive(Debug, Clone, Deserialize)]
pub struct DockerSocket {
    /// `unix://` endpoint.
    pub endpoint: String,
    /// What it is.
    pub why: String,
}

/// What a Flatcar node provides.
#[derive(Debug, Clone, Deserialize)]
pub struct Flatcar {
    /// Environment files written by Flatcar's own services.
    pub environment_file_producers: Vec<EnvironmentProducer>,
    /// CRI sockets.
    pub cri_sockets: Vec<CriSocket>,
    /// Sockets that are not there.
    pub absent_sockets: Vec<AbsentSocket>,
    /// The Docker API socket.
    pub docker_api_socket: DockerSocket,
    /// Units Flatcar ships, by name: their text.
    pub builtin_units: BTreeMap<String, String>,
    /// Where the built-in units come from.
    pub builtin_units_source: String,
    /// Built-in units enabled without any Ignition.
    pub enabled_by_default: Vec<String>,
    /// What the resolv.conf files of a node name.
    pub resolv_conf: ResolvConfFacts,
}

/// The resolv.conf files of a Flatcar node, as a process there (the kubelet) reads them.
#[derive(Debug, Clone, Deserialize)]
pub struct ResolvConfFacts {
    /// The node's upstream resolvers.
    pub upstream_nameservers: Vec<String>,
    /// Where they come from.
    pub upstream_source: String,
    /// By path: `"upstream"`, or the nameservers the file lists.
    pub files: BTreeMap<String, ResolvConfFile>,
}

/// What a resolv.conf file lists.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Nameservers {
    /// These addresses.
    Listed(Vec<String>),
    /// A name for a set the facts hold: `"upstream"`.
    Named(String),
}

/// One resolv.conf file of a Flatcar node.
#[derive(Debug, Clone, Deserialize)]
pub struct ResolvConfFile {
    /// `"upstream"` for the node's upstream resolvers, or the addresses listed.
    pub nameservers: Nameservers,
    /// Where the fact comes from.
    pub source: String,
}

impl ResolvConfFacts {
    /// The nameservers of file `path` on the node, or `None` when the facts do not know it.
    pub fn nameservers(&self, path: &str) -> Option<Vec<String>> {
        match &self.files.get(path)?.nameservers {
            Nameservers::Named(name) if name == "upstream" => {
                Some(self.upstream_nameservers.clone())
            }
            Nameservers::Listed(list) => Some(list.clone()),
            Nameservers::Named(_) => None,
        }
    }
}

/// `docker run`'s options.
#[derive(Debug, Clone, Deserialize)]
pub struct DockerRunOptions {
    /// Options without a value.
    pub boolean: BTreeSet<String>,
    /// Options with a value.
    pub with_value: BTreeSet<String>,
    /// One-letter forms.
    pub shorthands: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct ComponentsFile {
    components: BTreeMap<String, Component>,
}

#[derive(Deserialize)]
struct ImagesFile {
    images: Vec<Image>,
}

/// Every fact the judge uses.
#[derive(Debug, Clone)]
pub struct Facts {
    /// Program name → its command line.
    pub components: BTreeMap<String, Component>,
    /// Images by what they run.
    pub images: Vec<Image>,
    /// The kubelet's self-label rule.
    pub label_rule: LabelRule,
    /// What Flatcar provides.
    pub flatcar: Flatcar,
    /// `docker run`'s options.
    pub docker_run: DockerRunOptions,
    /// The container runtime's CNI needs.
    pub cni: CniFacts,
}

impl Facts {
    /// Reads the data files.
    pub fn load() -> Result<Facts, String> {
        fn read<T: serde::de::DeserializeOwned>(name: &str, text: &str) -> Result<T, String> {
            serde_json::from_str(text).map_err(|error| format!("sim/data/{name}: {error}"))
        }
        let mut components =
            read::<ComponentsFile>("kubernetes-v1.32-flags.json", KUBERNETES_FLAGS_JSON)?
                .components;
        components.extend(read::<ComponentsFile>("other-flags.json", OTHER_FLAGS_JSON)?.components);
        Ok(Facts {
            components,
            images: read::<ImagesFile>("images.json", IMAGES_JSON)?.images,
            label_rule: read("kubelet-node-label-rule.json", LABEL_RULE_JSON)?,
            flatcar: read("flatcar-node.json", FLATCAR_JSON)?,
            docker_run: read("docker-run-options.json", DOCKER_RUN_JSON)?,
            cni: read("cni.json", CNI_JSON)?,
        })
    }

    /// The image facts for an image reference (`repo[:tag][@digest]`), if known.
    pub fn image(&self, reference: &str) -> Option<&Image> {
        let repository = repository(reference);
        self.images
            .iter()
            .find(|image| image.repositories.contains(&repository))
    }
}

/// The repository of an image reference, with Docker Hub's implicit registry spelled out.
pub fn repository(reference: &str) -> String {
    let without_digest = reference.split('@').next().unwrap_or(reference);
    let last_slash = without_digest.rfind('/').map_or(0, |i| i + 1);
    let name = match without_digest[last_slash..].find(':') {
        Some(colon) => &without_digest[..last_slash + colon],
        None => without_digest,
    };
    let first = name.split('/').next().unwrap_or(name);
    let has_registry =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    if has_registry {
        name.to_owned()
    } else if name.contains('/') {
        format!("docker.io/{name}")
    } else {
        format!("docker.io/library/{name}")
    }
}

/// The facts embedded in the simulator.
///
/// # Panics
/// If the embedded data does not parse; `facts_load` in this module's tests makes that a
/// build-time failure rather than a runtime one.
pub fn facts() -> &'static Facts {
    static FACTS: OnceLock<Facts> = OnceLock::new();
    FACTS.get_or_init(|| match Facts::load() {
        Ok(facts) => facts,
        Err(error) => panic!("the simulator's embedded facts do not parse: {error}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_load() {
        let facts = Facts::load().expect("the data files parse");
        for name in [
            "kubelet",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "kube-proxy",
            "etcd",
            "bootkube",
            "pod-checkpointer",
            "coredns",
            "flanneld",
        ] {
            assert!(facts.components.contains_key(name), "{name}");
        }
        for image in &facts.images {
            for component in image.binaries.values() {
                // Every binary is either a judged component or a plain tool without flags data.
                let _ = facts.components.get(component);
            }
        }
    }

    #[test]
    fn image_references_name_their_repository() {
        assert_eq!(
            repository("quay.io/poseidon/kubelet:v1.32.3"),
            "quay.io/poseidon/kubelet"
        );
        assert_eq!(
            repository("kinvolk/pod-checkpointer:83e25e59"),
            "docker.io/kinvolk/pod-checkpointer"
        );
        assert_eq!(repository("alpine"), "docker.io/library/alpine");
        assert_eq!(
            repository("localhost:5000/x/y:1@sha256:ab"),
            "localhost:5000/x/y"
        );
        let facts = facts();
        let kubelet = facts
            .image("quay.io/poseidon/kubelet:v1.32.3")
            .expect("kubelet image");
        assert_eq!(
            kubelet.resolve("kubelet"),
            Some(("/usr/local/bin/kubelet", "kubelet"))
        );
        assert_eq!(kubelet.resolve("/kubelet"), None);
    }

    #[test]
    fn the_kubelet_normalizes_underscores() {
        let kubelet = &facts().components["kubelet"];
        assert!(kubelet.accepts(None, "cluster_dns"));
        assert!(kubelet.accepts(None, "pod-manifest-path"));
        assert!(!kubelet.accepts(None, "static-pod-path"));
    }
}
