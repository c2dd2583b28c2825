//! Reading RBAC objects: the upstream data files embedded from `sim/data/rbac/`, and the
//! manifests of an asset directory.

use std::path::{Path, PathBuf};

use serde::Deserialize as _;
use serde_json::Value;

use super::error::RbacError;

/// The data files of `sim/data/rbac/`, embedded so the judge needs nothing at run time.
const DATA: &[(&str, &str)] = &[
    (
        "kubernetes-bootstrap-cluster-roles.yaml",
        include_str!("../../../data/rbac/kubernetes-bootstrap-cluster-roles.yaml"),
    ),
    (
        "kubernetes-bootstrap-cluster-role-bindings.yaml",
        include_str!("../../../data/rbac/kubernetes-bootstrap-cluster-role-bindings.yaml"),
    ),
    (
        "calico-v3.29.2-rbac.yaml",
        include_str!("../../../data/rbac/calico-v3.29.2-rbac.yaml"),
    ),
    (
        "flannel-v0.26.4-rbac.yaml",
        include_str!("../../../data/rbac/flannel-v0.26.4-rbac.yaml"),
    ),
    (
        "coredns-rbac.yaml",
        include_str!("../../../data/rbac/coredns-rbac.yaml"),
    ),
    (
        "pod-checkpointer-rbac.yaml",
        include_str!("../../../data/rbac/pod-checkpointer-rbac.yaml"),
    ),
];

/// The objects of one embedded data file.
pub fn data_objects(file: &str) -> Result<Vec<Value>, RbacError> {
    let (_, text) = DATA
        .iter()
        .find(|(name, _)| *name == file)
        .ok_or_else(|| RbacError::Requirement(format!("no data file {file:?}")))?;
    parse_documents(text, Path::new(file), false)
}

/// Every object in the manifests under `dir` (recursively; files ending `.json`, `.yaml` or
/// `.yml`; `List`s unpacked; directories starting with `.` skipped, as bootkube skips them),
/// with the file each came from, in path order.
pub fn manifest_objects(dir: &Path) -> Result<Vec<(PathBuf, Value)>, RbacError> {
    let mut files = Vec::new();
    collect_files(dir, &mut files)?;
    files.sort();
    let mut objects = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).map_err(|source| RbacError::Read {
            path: path.clone(),
            source,
        })?;
        let json = path.extension().is_some_and(|e| e == "json");
        for object in parse_documents(&text, &path, json)? {
            objects.push((path.clone(), object));
        }
    }
    Ok(objects)
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), RbacError> {
    let entries = std::fs::read_dir(dir).map_err(|source| RbacError::Read {
        path: dir.to_owned(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| RbacError::Read {
            path: dir.to_owned(),
            source,
        })?;
        let path = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if path.is_dir() {
            if !hidden {
                collect_files(&path, out)?;
            }
        } else if path
            .extension()
            .is_some_and(|e| e == "json" || e == "yaml" || e == "yml")
        {
            out.push(path);
        }
    }
    Ok(())
}

/// The objects of a JSON document or a multi-document YAML text, `List`s unpacked.
pub(super) fn parse_documents(
    text: &str,
    path: &Path,
    json: bool,
) -> Result<Vec<Value>, RbacError> {
    let parse_error = |reason: String| RbacError::Parse {
        path: path.to_owned(),
        reason,
    };
    let documents: Vec<Value> = if json {
        vec![serde_json::from_str(text).map_err(|e| parse_error(e.to_string()))?]
    } else {
        serde_yaml::Deserializer::from_str(text)
            .map(|document| Value::deserialize(document).map_err(|e| parse_error(e.to_string())))
            .collect::<Result<_, _>>()?
    };
    let mut objects = Vec::new();
    for document in documents {
        if document.is_null() {
            continue;
        }
        let is_list = document["kind"]
            .as_str()
            .is_some_and(|kind| kind == "List" || kind.ends_with("List"))
            && document["items"].is_array();
        if is_list {
            objects.extend(document["items"].as_array().into_iter().flatten().cloned());
        } else {
            objects.push(document);
        }
    }
    Ok(objects)
}
