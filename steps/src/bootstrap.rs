//! The bootstrap step: once an apiserver of the static control plane answers, every object of
//! `manifests/` (kube-proxy, CoreDNS, the network, the kubelets' RBAC) is applied through the
//! API with server-side apply, from where loko runs.
//!
//! Server-side apply makes the step idempotent by the API's own contract: applying the same
//! object again with the same field manager changes nothing, and an object that changed is
//! converged. So a rerun, a resume after a crash half-way through the objects, or a run after a
//! manifest changed all do the same thing: apply everything again (peer lesson: bootkube, that
//! could not be rerun). Objects removed from the manifests are not deleted.
//!
//! Objects go in dependency order (`rank`): every CustomResourceDefinition first, then
//! namespaces, then what others name (service accounts, config, roles), then bindings, then the
//! rest (workloads, custom resources). Every object is applied even when one before it is
//! refused: one refusal must not leave the cluster without the kubelets' binding, kube-proxy,
//! the network and DNS. The step then fails naming every refused object with the apiserver's
//! reason: permanently if any refusal is (a 4xx other than 404, 409 and 429), else retryably
//! (a custom resource whose definition is not served yet, 404, is retried with the step, as
//! kubectl's users do).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use engine::{StepContext, StepError};
use journal::StepId;
use serde_json::Value;

use crate::kinds::BootstrapOutputs;
use crate::readiness::{admin_client, controller_addrs};

/// The field manager loko's applies are recorded under.
pub const FIELD_MANAGER: &str = "loko";

/// Where an object lives in the API: `(group, version, plural, namespaced)` by `(group, kind)`.
type Resources = BTreeMap<(String, String), (String, bool)>;

/// The built-in kinds the manifests use, with their REST names (Kubernetes API reference).
const BUILT_IN: [(&str, &str, &str, bool); 14] = [
    ("", "Namespace", "namespaces", false),
    ("", "ServiceAccount", "serviceaccounts", true),
    ("", "ConfigMap", "configmaps", true),
    ("", "Secret", "secrets", true),
    ("", "Service", "services", true),
    ("apps", "DaemonSet", "daemonsets", true),
    ("apps", "Deployment", "deployments", true),
    (
        "policy",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        true,
    ),
    (
        "rbac.authorization.k8s.io",
        "ClusterRole",
        "clusterroles",
        false,
    ),
    (
        "rbac.authorization.k8s.io",
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
    ),
    ("rbac.authorization.k8s.io", "Role", "roles", true),
    (
        "rbac.authorization.k8s.io",
        "RoleBinding",
        "rolebindings",
        true,
    ),
    (
        "apiextensions.k8s.io",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
    ),
    (
        "scheduling.k8s.io",
        "PriorityClass",
        "priorityclasses",
        false,
    ),
];

/// One object to apply: where it came from, and its API path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// `manifests/kube-proxy.json`.
    pub file: String,
    /// `DaemonSet kube-system/kube-proxy`.
    pub name: String,
    /// The object's URL path: `/apis/apps/v1/namespaces/kube-system/daemonsets/kube-proxy`.
    pub path: String,
    /// The object as JSON.
    pub body: Value,
    /// A CustomResourceDefinition: applied before every other object.
    pub definition: bool,
}

/// Why the manifests cannot be applied as they are (a bug or a hand-edited asset dir).
#[derive(Debug, thiserror::Error)]
#[error("{file}: {reason}")]
pub struct ManifestError {
    pub file: String,
    pub reason: String,
}

/// Every object of the JSON files under `dir` (`List`s unrolled), in the order of `rank`, each with
/// its API path. `root` is what the files' names are relative to.
pub fn objects(root: &Path, dir: &Path) -> Result<Vec<Applied>, ManifestError> {
    let mut files = Vec::new();
    json_files(dir, &mut files).map_err(|e| ManifestError {
        file: dir.display().to_string(),
        reason: e.to_string(),
    })?;
    files.sort();
    let mut raw = Vec::new();
    for path in files {
        let file = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .display()
            .to_string();
        let bad = |reason: String| ManifestError {
            file: file.clone(),
            reason,
        };
        let text = std::fs::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
        let value: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let items = match value["kind"].as_str() {
            Some("List") => value["items"].as_array().cloned().unwrap_or_default(),
            _ => vec![value],
        };
        raw.extend(items.into_iter().map(|item| (file.clone(), item)));
    }
    let mut resources: Resources = BUILT_IN
        .iter()
        .map(|(group, kind, plural, namespaced)| {
            (
                ((*group).to_owned(), (*kind).to_owned()),
                ((*plural).to_owned(), *namespaced),
            )
        })
        .collect();
    for (_, object) in &raw {
        if object["kind"] == "CustomResourceDefinition" {
            let spec = &object["spec"];
            if let (Some(group), Some(kind), Some(plural)) = (
                spec["group"].as_str(),
                spec["names"]["kind"].as_str(),
                spec["names"]["plural"].as_str(),
            ) {
                resources.insert(
                    (group.to_owned(), kind.to_owned()),
                    (plural.to_owned(), spec["scope"] == "Namespaced"),
                );
            }
        }
    }
    let mut out = Vec::with_capacity(raw.len());
    for (file, object) in raw {
        out.push(locate(&resources, file, object)?);
    }
    // Stable: within each rank, the files' order.
    out.sort_by_key(|a| rank(a.body["kind"].as_str().unwrap_or_default()));
    Ok(out)
}

/// Where a kind goes in the order of applies: a custom resource needs its definition served,
/// a namespaced object its namespace, a binding or workload the accounts, config and roles it
/// names (a DaemonSet whose service account is missing gets no pods until it exists).
fn rank(kind: &str) -> u8 {
    match kind {
        "CustomResourceDefinition" => 0,
        "Namespace" => 1,
        "ServiceAccount" | "ConfigMap" | "Secret" | "ClusterRole" | "Role" | "PriorityClass" => 2,
        "ClusterRoleBinding" | "RoleBinding" => 3,
        _ => 4,
    }
}

fn locate(resources: &Resources, file: String, object: Value) -> Result<Applied, ManifestError> {
    let bad = |reason: String| ManifestError {
        file: file.clone(),
        reason,
    };
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    if api_version.is_empty() || kind.is_empty() || name.is_empty() {
        return Err(bad(
            "an object without apiVersion, kind or metadata.name".into()
        ));
    }
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let Some((plural, namespaced)) = resources.get(&(group.to_owned(), kind.to_owned())) else {
        return Err(bad(format!(
            "{kind} of {api_version} is not a kind loko knows how to apply"
        )));
    };
    let prefix = match group {
        "" => format!("/api/{version}"),
        group => format!("/apis/{group}/{version}"),
    };
    let (path, name) = if *namespaced {
        let namespace = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default");
        (
            format!("{prefix}/namespaces/{namespace}/{plural}/{name}"),
            format!("{kind} {namespace}/{name}"),
        )
    } else {
        (
            format!("{prefix}/{plural}/{name}"),
            format!("{kind} {name}"),
        )
    };
    Ok(Applied {
        definition: kind == "CustomResourceDefinition",
        file,
        name,
        path,
        body: object,
    })
}

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            json_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
    Ok(())
}

/// Applies `manifests/` once an apiserver answers.
pub struct BootstrapStep {
    /// `<cluster>.<dns_zone>` or the spec's `api_address`, the name the apiserver certificate carries.
    pub api_name: String,
    pub port: u16,
    /// Where the controllers' public IPs come from (device step, output key).
    pub controllers: Vec<StepId>,
    /// The cluster's asset_dir (`manifests/`, `tls/ca.crt`, `tls/admin.{crt,key}`).
    pub asset_dir: PathBuf,
    pub poll_every: Duration,
    /// How long to wait for an apiserver to answer.
    pub deadline: Duration,
}

impl BootstrapStep {
    /// One attempt: wait for the API, then apply every object and the kubelets' bootstrap
    /// token.
    pub async fn run(&self, ctx: StepContext) -> Result<BootstrapOutputs, StepError> {
        let mut objects = objects(&self.asset_dir, &self.asset_dir.join("manifests"))
            .map_err(StepError::permanent)?;
        let token = bootstrap_token_object(&self.asset_dir).map_err(StepError::permanent)?;
        let token_id = token.as_ref().map(|(id, _)| id.clone());
        objects.extend(token.map(|(_, object)| object));
        let addrs = controller_addrs(&ctx, &self.controllers, self.port)?;
        let client = admin_client(&self.asset_dir, &self.api_name, &addrs)?;
        let base = format!("https://{}:{}", self.api_name, self.port);
        let start = Instant::now();
        loop {
            let answer = client.get(format!("{base}/healthz")).send().await;
            let last = match answer {
                Ok(r) if r.status().is_success() => break,
                Ok(r) => format!("its /healthz answers {}", r.status()),
                Err(e) => crate::error_chain(&e),
            };
            if start.elapsed() >= self.deadline {
                return Err(StepError::retryable(format!(
                    "no apiserver of the static control plane answers at {base} after {}s: {last}",
                    self.deadline.as_secs()
                )));
            }
            ctx.progress(format!(
                "waiting for the static control plane's apiserver at {base}"
            ));
            ctx.sleep(self.poll_every).await?;
        }
        ctx.progress(format!("applying {} objects of manifests/", objects.len()));
        apply_all(&client, &base, &objects).await?;
        let definitions = objects.iter().filter(|o| o.definition).count();
        Ok(BootstrapOutputs {
            api_server: base,
            objects: objects.len(),
            definitions,
            bootstrap_token_id: token_id,
        })
    }
}

/// An object the apiserver did not take.
struct Refused {
    /// `applying DaemonSet kube-system/x (manifests/x.json): 422 ...: <the apiserver's reason>`.
    message: String,
    /// Whether applying it again may succeed without a change of the manifests.
    retryable: bool,
}

/// Applies every object of `objects`, in their order, to the apiserver at `base` (a client of
/// [`admin_client`]), whatever refusals come before; then fails, if any object was refused,
/// naming each with the apiserver's reason: permanently if any refusal is permanent.
pub async fn apply_all(
    client: &reqwest::Client,
    base: &str,
    objects: &[Applied],
) -> Result<(), StepError> {
    let mut refused = Vec::new();
    for object in objects {
        if let Err(refusal) = apply(client, base, object).await {
            refused.push(refusal);
        }
    }
    if refused.is_empty() {
        return Ok(());
    }
    let message = format!(
        "{} of {} objects of manifests/ refused: {}",
        refused.len(),
        objects.len(),
        refused
            .iter()
            .map(|r| r.message.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    );
    Err(if refused.iter().all(|r| r.retryable) {
        StepError::retryable(message)
    } else {
        StepError::permanent(message)
    })
}

/// The Secret of the kubelets' bootstrap token (`auth/bootstrap-token.json`), with its id:
/// not a file of `manifests/`, so that no manifest holds the token. `None` when there is no
/// token (an asset directory the kubeconfigs step has not written yet).
fn bootstrap_token_object(
    asset_dir: &Path,
) -> Result<Option<(String, Applied)>, crate::assets::AssetError> {
    let dir = crate::assets::AssetDir::create(asset_dir)?;
    let Some(token) = crate::assets::bootstrap_token::read_token(&dir)? else {
        return Ok(None);
    };
    let name = format!("bootstrap-token-{}", token.id);
    Ok(Some((
        token.id.clone(),
        Applied {
            file: crate::assets::bootstrap_token::BOOTSTRAP_TOKEN.to_owned(),
            name: format!("Secret kube-system/{name}"),
            path: format!("/api/v1/namespaces/kube-system/secrets/{name}"),
            body: token.secret_object(),
            definition: false,
        },
    )))
}

/// Server-side apply of one object (`PATCH` with `application/apply-patch+yaml`, of which JSON
/// is a subset), forcing loko's ownership of the fields it sets.
async fn apply(client: &reqwest::Client, base: &str, object: &Applied) -> Result<(), Refused> {
    let url = format!(
        "{base}{}?fieldManager={FIELD_MANAGER}&force=true",
        object.path
    );
    let what = format!("{} ({})", object.name, object.file);
    let answer = client
        .patch(&url)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/apply-patch+yaml",
        )
        .body(object.body.to_string())
        .send()
        .await
        .map_err(|e| Refused {
            message: format!("applying {what}: {}", crate::error_chain(&e)),
            retryable: true,
        })?;
    let status = answer.status();
    if status.is_success() {
        return Ok(());
    }
    // The apiserver's Status says why; it never echoes a Secret's data.
    let body = answer.text().await.unwrap_or_default();
    let message = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_owned))
        .unwrap_or(body);
    let message = format!(
        "applying {what}: {status}: {}",
        journal::redact_shapes(message.trim())
    );
    // 404: a custom resource whose definition is not served yet; 409: a conflict of a
    // concurrent writer; 429 and 5xx: the apiserver or etcd is still coming up.
    let retryable = matches!(status.as_u16(), 404 | 409 | 429) || status.is_server_error();
    Err(Refused { message, retryable })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn write(dir: &Path, rel: &str, value: Value) {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, value.to_string()).unwrap();
    }

    #[test]
    fn definitions_come_first_and_custom_resources_are_located_by_them() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        write(
            root,
            "manifests/a-pool.json",
            json!({"apiVersion": "crd.projectcalico.org/v1", "kind": "IPPool", "metadata": {"name": "default"}}),
        );
        write(
            root,
            "manifests/b/crds.json",
            json!({"apiVersion": "v1", "kind": "List", "items": [{
                "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                "metadata": {"name": "ippools.crd.projectcalico.org"},
                "spec": {"group": "crd.projectcalico.org", "scope": "Cluster",
                         "names": {"kind": "IPPool", "plural": "ippools"}},
            }]}),
        );
        write(
            root,
            "manifests/c.json",
            json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "kube-proxy", "namespace": "kube-system"}}),
        );
        let objects = objects(root, &root.join("manifests")).unwrap();
        let paths: Vec<&str> = objects.iter().map(|o| o.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/ippools.crd.projectcalico.org",
                "/apis/crd.projectcalico.org/v1/ippools/default",
                "/apis/apps/v1/namespaces/kube-system/daemonsets/kube-proxy",
            ]
        );
        assert_eq!(objects[1].file, "manifests/a-pool.json");
        assert_eq!(objects[2].name, "DaemonSet kube-system/kube-proxy");
    }

    #[test]
    fn what_others_need_is_applied_before_them_whatever_the_files_order() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let object = |kind: &str, api: &str| json!({"apiVersion": api, "kind": kind, "metadata": {"name": "x", "namespace": "kube-system"}});
        write(root, "manifests/a.json", object("DaemonSet", "apps/v1"));
        write(
            root,
            "manifests/b.json",
            object("ClusterRoleBinding", "rbac.authorization.k8s.io/v1"),
        );
        write(root, "manifests/c.json", object("ServiceAccount", "v1"));
        write(root, "manifests/d.json", object("Namespace", "v1"));
        let kinds: Vec<String> = objects(root, &root.join("manifests"))
            .unwrap()
            .iter()
            .map(|o| o.body["kind"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            kinds,
            [
                "Namespace",
                "ServiceAccount",
                "ClusterRoleBinding",
                "DaemonSet"
            ]
        );
    }

    #[test]
    fn an_unknown_kind_is_named_with_its_file() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        write(
            root,
            "manifests/x.json",
            json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}),
        );
        let error = objects(root, &root.join("manifests")).unwrap_err();
        assert_eq!(error.file, "manifests/x.json");
        assert!(error.reason.contains("Widget"), "{error}");
    }
}
