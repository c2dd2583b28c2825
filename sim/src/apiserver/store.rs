//! What a cluster's etcd holds, as far as the emulator keeps it: the objects applied through any
//! of the cluster's apiservers (those naming the same `--etcd-servers`), on disk beside the node
//! roots, so that a rebooted controller, or a restarted simulator, serves them again. The RBAC
//! policy and the network's verdict are derived from them after every write, and kept with a
//! copy of the objects, which the pods are judged from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use serde_json::Value;

use super::events::{ApiEvents, NodeChanges};
use super::network;
use crate::judge::rbac::{Policy, RbacError, Requirements};

/// The REST names of the built-in kinds the emulator stores: `(group, plural, kind, namespaced)`
/// (Kubernetes v1.32, `kubectl api-resources`). Custom resources are served once their
/// CustomResourceDefinition is stored, as the real apiserver serves them.
const BUILT_IN: [(&str, &str, &str, bool); 15] = [
    ("", "namespaces", "Namespace", false),
    ("", "serviceaccounts", "ServiceAccount", true),
    ("", "configmaps", "ConfigMap", true),
    ("", "secrets", "Secret", true),
    ("", "services", "Service", true),
    ("", "pods", "Pod", true),
    ("apps", "daemonsets", "DaemonSet", true),
    ("apps", "deployments", "Deployment", true),
    (
        "policy",
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        true,
    ),
    (
        "rbac.authorization.k8s.io",
        "clusterroles",
        "ClusterRole",
        false,
    ),
    (
        "rbac.authorization.k8s.io",
        "clusterrolebindings",
        "ClusterRoleBinding",
        false,
    ),
    ("rbac.authorization.k8s.io", "roles", "Role", true),
    (
        "rbac.authorization.k8s.io",
        "rolebindings",
        "RoleBinding",
        true,
    ),
    (
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        false,
    ),
    (
        "scheduling.k8s.io",
        "priorityclasses",
        "PriorityClass",
        false,
    ),
];

/// A resource the apiserver serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// The kind its objects have.
    pub kind: String,
    /// Whether its objects live in a namespace.
    pub namespaced: bool,
    /// The CustomResourceDefinition that serves it; `None` for a built-in kind.
    pub definition: Option<Value>,
}

/// What the stored objects mean for the apiserver.
pub struct Derived {
    /// Kubernetes' bootstrap policy plus every stored RBAC object.
    pub policy: Policy,
    /// Why nodes are not Ready (the network cannot come up), or `None`.
    pub network_problem: Option<String>,
    /// The stored objects, by URL path, which the pods the cluster runs are derived from.
    pub objects: Vec<(PathBuf, Value)>,
}

struct Inner {
    /// By URL path of the object (`/apis/apps/v1/namespaces/kube-system/daemonsets/x`).
    objects: BTreeMap<String, Value>,
    derived: Arc<Derived>,
}

/// What a running kube-controller-manager of the cluster does with certificate signing
/// requests: its csrapproving and csrsigning controllers, read from its static pod's flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsrController {
    /// The node whose static pod it is.
    pub node: String,
    /// Whether `--controllers` runs csrapproving (on by default).
    pub approving: bool,
    /// The DER of `--cluster-signing-cert-file` when csrsigning runs with a signing pair (the
    /// controller is skipped without one), else why nothing is signed.
    pub signer: Result<Vec<u8>, String>,
}

/// One cluster's objects.
pub struct ObjectStore {
    file: PathBuf,
    requirements: Requirements,
    inner: RwLock<Inner>,
    /// The controller-managers running now, by node: they are processes, not objects, and are
    /// not kept on disk.
    csr_controllers: std::sync::Mutex<BTreeMap<String, CsrController>>,
    /// Cordons, Node deletions and evictions: not persisted, as a restarted simulator's
    /// kubelets register their Nodes again.
    node_changes: Mutex<NodeChanges>,
    events: ApiEvents,
}

impl std::fmt::Debug for ObjectStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStore")
            .field("file", &self.file)
            .finish()
    }
}

impl ObjectStore {
    /// Opens the store kept in `file` (empty when it does not exist).
    pub fn open(file: PathBuf) -> Result<ObjectStore, String> {
        let objects: BTreeMap<String, Value> = match std::fs::read(&file) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", file.display()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(format!("{}: {e}", file.display())),
        };
        let requirements = Requirements::load().map_err(|e| e.to_string())?;
        let derived = Arc::new(derive(&objects, &requirements).map_err(|e| e.to_string())?);
        Ok(ObjectStore {
            file,
            requirements,
            inner: RwLock::new(Inner { objects, derived }),
            csr_controllers: Default::default(),
            node_changes: Mutex::default(),
            events: ApiEvents::default(),
        })
    }

    /// Records the controller-manager a node runs now (`None`: none, or one that stopped).
    pub fn set_csr_controller(&self, node: &str, controller: Option<CsrController>) {
        let mut controllers = self
            .csr_controllers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match controller {
            Some(controller) => controllers.insert(node.to_owned(), controller),
            None => controllers.remove(node),
        };
    }

    /// The controller-managers running now.
    pub fn csr_controllers(&self) -> Vec<CsrController> {
        self.csr_controllers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    /// What drains changed of the cluster's nodes.
    pub(super) fn node_changes(&self) -> std::sync::MutexGuard<'_, NodeChanges> {
        self.node_changes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The simulator's log of changes, which this cluster's apiservers append to.
    pub(super) fn events(&self) -> &ApiEvents {
        &self.events
    }

    /// The policy and network verdict of the objects stored now.
    pub fn derived(&self) -> Arc<Derived> {
        Arc::clone(&self.read().derived)
    }

    /// The requirements the verdicts are judged by.
    pub fn requirements(&self) -> &Requirements {
        &self.requirements
    }

    /// The object at `path`.
    pub fn get(&self, path: &str) -> Option<Value> {
        self.read().objects.get(path).cloned()
    }

    /// How many objects are stored.
    pub fn len(&self) -> usize {
        self.read().objects.len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The resource `plural` of `group` (at `version`, for custom resources), if served.
    pub fn resource(&self, group: &str, version: &str, plural: &str) -> Option<Resource> {
        if let Some((_, _, kind, namespaced)) = BUILT_IN
            .iter()
            .find(|(g, p, _, _)| *g == group && *p == plural)
        {
            return Some(Resource {
                kind: (*kind).to_owned(),
                namespaced: *namespaced,
                definition: None,
            });
        }
        let inner = self.read();
        inner.objects.values().find_map(|object| {
            let spec = &object["spec"];
            let serves = object["kind"] == "CustomResourceDefinition"
                && spec["group"] == group
                && spec["names"]["plural"] == plural
                && spec["versions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|v| v["name"] == version && v["served"] != false);
            serves.then(|| Resource {
                kind: spec["names"]["kind"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                namespaced: spec["scope"] == "Namespaced",
                definition: Some(object.clone()),
            })
        })
    }

    /// Stores `object` at `path`; `Ok(true)` when it is new. The file is written before the
    /// answer, as etcd commits before the apiserver answers.
    pub fn put(&self, path: &str, mut object: Value) -> Result<bool, String> {
        if object["kind"] == "Secret" {
            merge_string_data(&mut object);
        }
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        let created = inner.objects.insert(path.to_owned(), object).is_none();
        inner.derived =
            Arc::new(derive(&inner.objects, &self.requirements).map_err(|e| e.to_string())?);
        let text = serde_json::to_vec(&inner.objects).map_err(|e| e.to_string())?;
        write_atomically(&self.file, &text).map_err(|e| format!("{}: {e}", self.file.display()))?;
        Ok(created)
    }

    /// Stores `object` where the API serves it, as `kubectl create` would; the URL path, or
    /// why it has none (a kind the store does not serve).
    pub fn create(&self, object: Value) -> Result<String, String> {
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let kind = object["kind"].as_str().unwrap_or_default();
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let plural = BUILT_IN
            .iter()
            .find(|(g, _, k, _)| *g == group && *k == kind)
            .map(|(_, plural, _, _)| (*plural).to_owned())
            .or_else(|| {
                self.read().objects.values().find_map(|crd| {
                    let names = &crd["spec"]["names"];
                    (crd["kind"] == "CustomResourceDefinition"
                        && crd["spec"]["group"] == group
                        && names["kind"] == kind)
                        .then(|| names["plural"].as_str().unwrap_or_default().to_owned())
                })
            })
            .ok_or_else(|| format!("no resource serves {kind} of {api_version}"))?;
        let resource = self
            .resource(group, version, &plural)
            .ok_or_else(|| format!("{api_version} does not serve {plural}"))?;
        let prefix = match group {
            "" => format!("/api/{version}"),
            group => format!("/apis/{group}/{version}"),
        };
        let path = if resource.namespaced {
            let namespace = object["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default");
            format!("{prefix}/namespaces/{namespace}/{plural}/{name}")
        } else {
            format!("{prefix}/{plural}/{name}")
        };
        self.put(&path, object)?;
        Ok(path)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }
}

fn derive(
    objects: &BTreeMap<String, Value>,
    requirements: &Requirements,
) -> Result<Derived, RbacError> {
    let mut policy = Policy::bootstrap()?;
    let listed: Vec<(PathBuf, Value)> = objects
        .iter()
        .map(|(path, object)| (PathBuf::from(path), object.clone()))
        .collect();
    for (path, object) in &listed {
        policy.add_object(object, &path.display().to_string())?;
    }
    let network_problem = network::problem(&listed, &policy, requirements);
    Ok(Derived {
        policy,
        network_problem,
        objects: listed,
    })
}

fn write_atomically(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = file.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(tmp, file)
}

/// Every cluster's store, by `--etcd-servers`, kept under one directory.
#[derive(Debug, Clone)]
pub struct ObjectStores {
    dir: PathBuf,
    open: Arc<Mutex<BTreeMap<String, Arc<ObjectStore>>>>,
    events: ApiEvents,
}

impl ObjectStores {
    /// Stores kept under `dir`.
    pub fn new(dir: PathBuf) -> ObjectStores {
        ObjectStores {
            dir,
            open: Arc::default(),
            events: ApiEvents::default(),
        }
    }

    /// The log every cluster's apiservers append their changes to.
    pub fn events(&self) -> &ApiEvents {
        &self.events
    }

    /// The store of the cluster whose apiservers name `etcd_servers`.
    pub fn get(&self, etcd_servers: &str) -> Result<Arc<ObjectStore>, String> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(store) = open.get(etcd_servers) {
            return Ok(Arc::clone(store));
        }
        let name: String = etcd_servers
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .take(200)
            .collect();
        let mut store = ObjectStore::open(self.dir.join(name).join("objects.json"))?;
        store.events = self.events.clone();
        let store = Arc::new(store);
        open.insert(etcd_servers.to_owned(), Arc::clone(&store));
        Ok(store)
    }
}

/// A Secret's `stringData` written into its `data`, base64-encoded, as the apiserver's
/// conversion does on every write (k8s.io/kubernetes pkg/apis/core/v1/conversion.go
/// `Convert_v1_Secret_To_core_Secret`): `stringData` is never stored.
fn merge_string_data(secret: &mut Value) {
    use base64::Engine as _;
    let Some(Value::Object(strings)) = secret.as_object_mut().and_then(|o| o.remove("stringData"))
    else {
        return;
    };
    if !secret["data"].is_object() {
        secret["data"] = Value::Object(serde_json::Map::new());
    }
    for (key, value) in strings {
        let text = value.as_str().unwrap_or_default();
        secret["data"][key] =
            Value::from(base64::engine::general_purpose::STANDARD.encode(text.as_bytes()));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::merge_string_data;

    #[test]
    fn a_secrets_string_data_is_stored_as_data() {
        let mut secret =
            json!({"kind": "Secret", "data": {"a": "eA=="}, "stringData": {"b": "yz"}});
        merge_string_data(&mut secret);
        assert_eq!(
            secret,
            json!({"kind": "Secret", "data": {"a": "eA==", "b": "eXo="}})
        );
    }
}
