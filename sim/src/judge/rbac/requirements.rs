//! What each identity of a cluster must be allowed to do, read from the real components' own
//! roles (`sim/data/rbac/requirements.yaml`).

use std::collections::BTreeMap;

use serde_json::Value;

use super::documents::data_objects;
use super::error::RbacError;
use super::policy::role_from_value;
use super::request::{Request, ResourceRequest};

const REQUIREMENTS: &str = include_str!("../../../data/rbac/requirements.yaml");

/// What each identity must be allowed to do (`sim/data/rbac/requirements.yaml`).
#[derive(Debug, Clone)]
pub struct Requirements {
    identities: BTreeMap<String, Identity>,
}

/// One identity's needs.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Where the needs come from.
    pub source: String,
    /// Every request it must be allowed; names may hold `{node}`.
    requests: Vec<Request>,
}

impl Identity {
    /// Its requests, with `{node}` replaced by `node`.
    pub fn requests(&self, node: &str) -> Vec<Request> {
        self.requests
            .iter()
            .map(|request| match request {
                Request::Resource(r) => Request::Resource(ResourceRequest {
                    name: r.name.replace("{node}", node),
                    ..r.clone()
                }),
                other => other.clone(),
            })
            .collect()
    }
}

impl Requirements {
    /// Loads the embedded requirements and the roles they name.
    pub fn load() -> Result<Requirements, RbacError> {
        let document: Value = serde_yaml::from_str(REQUIREMENTS)
            .map_err(|error| RbacError::Requirement(error.to_string()))?;
        let mut identities = BTreeMap::new();
        for (name, entry) in document["identities"].as_object().into_iter().flatten() {
            let mut requests = Vec::new();
            for role in entry["roles"].as_array().into_iter().flatten() {
                requests.extend(role_requests(name, role)?);
            }
            for request in entry["requests"].as_array().into_iter().flatten() {
                let field = |key: &str| request[key].as_str().unwrap_or_default();
                if field("verb").is_empty() || field("resource").is_empty() {
                    return Err(RbacError::Requirement(format!(
                        "{name}: a request needs verb and resource: {request}"
                    )));
                }
                requests.push(
                    ResourceRequest::new(field("verb"), field("group"), field("resource"))
                        .subresource(field("subresource"))
                        .in_namespace(field("namespace"))
                        .named(field("name"))
                        .into(),
                );
            }
            if requests.is_empty() {
                return Err(RbacError::Requirement(format!("{name} needs nothing")));
            }
            identities.insert(
                name.clone(),
                Identity {
                    source: entry["source"].as_str().unwrap_or_default().to_owned(),
                    requests,
                },
            );
        }
        Ok(Requirements { identities })
    }

    /// One identity's needs.
    pub fn identity(&self, name: &str) -> Result<&Identity, RbacError> {
        self.identities
            .get(name)
            .ok_or_else(|| RbacError::Requirement(format!("no identity {name:?}")))
    }

    /// The names of every identity.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.identities.keys().map(String::as_str)
    }
}

/// The requests of one `roles` entry of the requirements: every rule of the named role.
fn role_requests(identity: &str, entry: &Value) -> Result<Vec<Request>, RbacError> {
    let file = entry["file"].as_str().unwrap_or_default();
    let (kind, name) = match (entry["clusterRole"].as_str(), entry["role"].as_str()) {
        (Some(name), None) => ("ClusterRole", name),
        (None, Some(name)) => ("Role", name),
        _ => {
            return Err(RbacError::Requirement(format!(
                "{identity}: a roles entry names one clusterRole or role: {entry}"
            )));
        }
    };
    let namespace = entry["namespace"].as_str().unwrap_or_default();
    let object = data_objects(file)?
        .into_iter()
        .find(|object| {
            object["kind"] == kind
                && object["metadata"]["name"] == name
                && object["metadata"]["namespace"].as_str().unwrap_or_default() == namespace
        })
        .ok_or_else(|| {
            RbacError::Requirement(format!("{identity}: {file} has no {kind} {name:?}"))
        })?;
    let role = role_from_value(&object, &format!("{kind} {name:?} ({file})"))?;
    Ok(role
        .rules
        .iter()
        .flat_map(|rule| rule.requests(namespace))
        .collect())
}
