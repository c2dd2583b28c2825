//! ClusterRoles, Roles and their bindings as an apiserver holds them, and the RBAC authorizer's
//! evaluation of a request against them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

use super::documents::{data_objects, manifest_objects};
use super::error::RbacError;
use super::request::{Decision, Request, ResourceRequest, SUPERUSER_GROUP, UserInfo};

/// One rule of a role.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rule {
    verbs: Vec<String>,
    api_groups: Vec<String>,
    resources: Vec<String>,
    resource_names: Vec<String>,
    non_resource_urls: Vec<String>,
}

impl Rule {
    fn from_value(value: &Value, what: &str) -> Result<Rule, RbacError> {
        let strings = |key: &str| -> Result<Vec<String>, RbacError> {
            match value.get(key) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|item| {
                        item.as_str()
                            .map(str::to_owned)
                            .ok_or_else(|| RbacError::Invalid {
                                what: what.to_owned(),
                                reason: format!("rule field {key} holds a non-string {item}"),
                            })
                    })
                    .collect(),
                Some(other) => Err(RbacError::Invalid {
                    what: what.to_owned(),
                    reason: format!("rule field {key} is not a list: {other}"),
                }),
            }
        };
        let rule = Rule {
            verbs: strings("verbs")?,
            api_groups: strings("apiGroups")?,
            resources: strings("resources")?,
            resource_names: strings("resourceNames")?,
            non_resource_urls: strings("nonResourceURLs")?,
        };
        if rule.verbs.is_empty() {
            return Err(RbacError::Invalid {
                what: what.to_owned(),
                reason: "a rule without verbs".to_owned(),
            });
        }
        Ok(rule)
    }

    /// `rbac.RuleAllows` of the apiserver.
    pub(super) fn allows(&self, request: &Request) -> bool {
        match request {
            Request::Resource(r) => {
                matches(&self.verbs, &r.verb)
                    && matches(&self.api_groups, &r.group)
                    && self.resource_matches(r)
                    && (self.resource_names.is_empty()
                        || (!r.name.is_empty() && self.resource_names.contains(&r.name)))
            }
            Request::NonResource { verb, path } => {
                matches(&self.verbs, verb)
                    && self.non_resource_urls.iter().any(|url| {
                        url == "*"
                            || url == path
                            || url
                                .strip_suffix('*')
                                .is_some_and(|prefix| path.starts_with(prefix))
                    })
            }
        }
    }

    fn resource_matches(&self, request: &ResourceRequest) -> bool {
        let full = request.full_resource();
        self.resources.iter().any(|resource| {
            resource == "*"
                || *resource == full
                || (!request.subresource.is_empty()
                    && resource.strip_prefix("*/") == Some(request.subresource.as_str()))
        })
    }

    /// Every request this rule allows and nothing more (one per verb, group, resource, name or
    /// URL), at `namespace` (empty: the cluster scope).
    pub(super) fn requests(&self, namespace: &str) -> Vec<Request> {
        let mut out = Vec::new();
        for verb in &self.verbs {
            for url in &self.non_resource_urls {
                out.push(Request::NonResource {
                    verb: verb.clone(),
                    path: url.clone(),
                });
            }
            for group in &self.api_groups {
                for resource in &self.resources {
                    let (resource, subresource) =
                        resource.split_once('/').unwrap_or((resource.as_str(), ""));
                    let request = ResourceRequest::new(verb, group, resource)
                        .subresource(subresource)
                        .in_namespace(namespace);
                    if self.resource_names.is_empty() {
                        out.push(request.into());
                    } else {
                        for name in &self.resource_names {
                            out.push(request.clone().named(name).into());
                        }
                    }
                }
            }
        }
        out
    }
}

fn matches(allowed: &[String], value: &str) -> bool {
    allowed.iter().any(|a| a == "*" || a == value)
}

#[derive(Debug, Clone)]
pub(super) struct Role {
    pub(super) rules: Vec<Rule>,
    labels: BTreeMap<String, String>,
    /// `aggregationRule.clusterRoleSelectors[].matchLabels`.
    aggregation: Vec<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Subject {
    User(String),
    Group(String),
    ServiceAccount { namespace: String, name: String },
}

impl Subject {
    fn matches(&self, user: &UserInfo) -> bool {
        match self {
            Subject::User(name) => user.name == *name,
            Subject::Group(group) => user.groups.iter().any(|g| g == group),
            Subject::ServiceAccount { namespace, name } => {
                user.name == format!("system:serviceaccount:{namespace}:{name}")
            }
        }
    }
}

#[derive(Debug, Clone)]
struct Binding {
    name: String,
    /// Empty for a ClusterRoleBinding.
    namespace: String,
    /// `ClusterRole` or `Role`.
    role_kind: String,
    role_name: String,
    subjects: Vec<Subject>,
}

/// ClusterRoles, Roles and bindings, as an apiserver holds them.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    cluster_roles: BTreeMap<String, Role>,
    /// By (namespace, name).
    roles: BTreeMap<(String, String), Role>,
    bindings: Vec<Binding>,
}

impl Policy {
    /// Kubernetes' bootstrap policy: the ClusterRoles and ClusterRoleBindings every apiserver
    /// creates at start (`sim/data/rbac/kubernetes-bootstrap-*.yaml`).
    pub fn bootstrap() -> Result<Policy, RbacError> {
        let mut policy = Policy::default();
        for file in [
            "kubernetes-bootstrap-cluster-roles.yaml",
            "kubernetes-bootstrap-cluster-role-bindings.yaml",
        ] {
            for object in data_objects(file)? {
                policy.add_object(&object, file)?;
            }
        }
        Ok(policy)
    }

    /// The bootstrap policy plus every RBAC object under `dir` (an asset directory's `manifests/`).
    pub fn bootstrap_with_manifests(dir: &Path) -> Result<Policy, RbacError> {
        let mut policy = Policy::bootstrap()?;
        policy.add_manifest_dir(dir)?;
        Ok(policy)
    }

    /// Adds every RBAC object of the manifests under `dir`; returns how many there were.
    pub fn add_manifest_dir(&mut self, dir: &Path) -> Result<usize, RbacError> {
        let mut added = 0;
        for (path, object) in manifest_objects(dir)? {
            if self.add_object(&object, &path.display().to_string())? {
                added += 1;
            }
        }
        Ok(added)
    }

    /// Adds one object if it is a ClusterRole, Role, ClusterRoleBinding or RoleBinding (of
    /// `rbac.authorization.k8s.io`); other objects are ignored. `origin` names it in errors.
    pub fn add_object(&mut self, object: &Value, origin: &str) -> Result<bool, RbacError> {
        let kind = object["kind"].as_str().unwrap_or_default();
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        if !api_version.starts_with("rbac.authorization.k8s.io/") {
            return Ok(false);
        }
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let namespace = object["metadata"]["namespace"].as_str().unwrap_or_default();
        let what = format!("{kind} {name:?} ({origin})");
        let invalid = |reason: &str| RbacError::Invalid {
            what: what.clone(),
            reason: reason.to_owned(),
        };
        if name.is_empty() {
            return Err(invalid("no metadata.name"));
        }
        match kind {
            "ClusterRole" | "Role" => {
                let role = role_from_value(object, &what)?;
                if kind == "ClusterRole" {
                    self.cluster_roles.insert(name.to_owned(), role);
                } else {
                    if namespace.is_empty() {
                        return Err(invalid("a Role needs metadata.namespace"));
                    }
                    self.roles
                        .insert((namespace.to_owned(), name.to_owned()), role);
                }
            }
            "ClusterRoleBinding" | "RoleBinding" => {
                if kind == "RoleBinding" && namespace.is_empty() {
                    return Err(invalid("a RoleBinding needs metadata.namespace"));
                }
                let role_ref = &object["roleRef"];
                let role_kind = role_ref["kind"].as_str().unwrap_or_default();
                let role_name = role_ref["name"].as_str().unwrap_or_default();
                let role_kind_ok =
                    role_kind == "ClusterRole" || (kind == "RoleBinding" && role_kind == "Role");
                if !role_kind_ok || role_name.is_empty() {
                    return Err(invalid(&format!(
                        "roleRef must name a ClusterRole{}, got {role_ref}",
                        if kind == "RoleBinding" {
                            " or Role"
                        } else {
                            ""
                        }
                    )));
                }
                let binding_namespace = if kind == "RoleBinding" { namespace } else { "" };
                let subjects = object["subjects"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .map(|subject| subject_from_value(subject, binding_namespace, &what))
                    .collect::<Result<Vec<_>, _>>()?;
                // A binding replaces one of the same name, as a second create would fail and an
                // apply would replace it.
                self.bindings
                    .retain(|b| !(b.name == name && b.namespace == binding_namespace));
                self.bindings.push(Binding {
                    name: name.to_owned(),
                    namespace: binding_namespace.to_owned(),
                    role_kind: role_kind.to_owned(),
                    role_name: role_name.to_owned(),
                    subjects,
                });
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Whether `user` may make `request`.
    pub fn authorize(&self, user: &UserInfo, request: &Request) -> Decision {
        if user.groups.iter().any(|g| g == SUPERUSER_GROUP) {
            return Decision::Allowed;
        }
        let namespace = match request {
            Request::Resource(r) => r.namespace.as_str(),
            Request::NonResource { .. } => "",
        };
        let mut missing = BTreeSet::new();
        for binding in &self.bindings {
            let applies = binding.namespace.is_empty()
                || (!namespace.is_empty() && binding.namespace == namespace);
            if !applies || !binding.subjects.iter().any(|s| s.matches(user)) {
                continue;
            }
            let rules = match self.binding_rules(binding) {
                Ok(rules) => rules,
                Err(missing_role) => {
                    missing.insert(missing_role);
                    continue;
                }
            };
            if rules.iter().any(|rule| rule.allows(request)) {
                return Decision::Allowed;
            }
        }
        let reason = if missing.is_empty() {
            String::new()
        } else {
            format!(
                "RBAC: {}",
                missing.into_iter().collect::<Vec<_>>().join(", ")
            )
        };
        Decision::Denied { reason }
    }

    /// The rules a binding grants, or the apiserver's error for a role that does not exist.
    fn binding_rules(&self, binding: &Binding) -> Result<Vec<Rule>, String> {
        if binding.role_kind == "Role" {
            return self
                .roles
                .get(&(binding.namespace.clone(), binding.role_name.clone()))
                .map(|role| role.rules.clone())
                .ok_or_else(|| {
                    format!(
                        "role.rbac.authorization.k8s.io {:?} not found",
                        binding.role_name
                    )
                });
        }
        self.cluster_role_rules(&binding.role_name).ok_or_else(|| {
            format!(
                "clusterrole.rbac.authorization.k8s.io {:?} not found",
                binding.role_name
            )
        })
    }

    /// A ClusterRole's rules, with those its aggregationRule collects (as the clusterrole
    /// aggregation controller writes them into it).
    pub(super) fn cluster_role_rules(&self, name: &str) -> Option<Vec<Rule>> {
        let role = self.cluster_roles.get(name)?;
        if role.aggregation.is_empty() {
            return Some(role.rules.clone());
        }
        let mut rules = Vec::new();
        for (other_name, other) in &self.cluster_roles {
            let selected = other_name != name
                && role.aggregation.iter().any(|selector| {
                    selector
                        .iter()
                        .all(|(key, value)| other.labels.get(key) == Some(value))
                });
            if selected {
                rules.extend(other.rules.iter().cloned());
            }
        }
        Some(rules)
    }
}

pub(super) fn role_from_value(object: &Value, what: &str) -> Result<Role, RbacError> {
    let rules = object["rules"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|rule| Rule::from_value(rule, what))
        .collect::<Result<Vec<_>, _>>()?;
    let labels = string_map(&object["metadata"]["labels"]);
    let aggregation = object["aggregationRule"]["clusterRoleSelectors"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|selector| string_map(&selector["matchLabels"]))
        .collect();
    Ok(Role {
        rules,
        labels,
        aggregation,
    })
}

fn string_map(value: &Value) -> BTreeMap<String, String> {
    value
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
        .collect()
}

fn subject_from_value(
    subject: &Value,
    binding_namespace: &str,
    what: &str,
) -> Result<Subject, RbacError> {
    let name = subject["name"].as_str().unwrap_or_default().to_owned();
    let invalid = |reason: String| RbacError::Invalid {
        what: what.to_owned(),
        reason,
    };
    if name.is_empty() {
        return Err(invalid(format!("a subject without a name: {subject}")));
    }
    match subject["kind"].as_str().unwrap_or_default() {
        "User" => Ok(Subject::User(name)),
        "Group" => Ok(Subject::Group(name)),
        "ServiceAccount" => {
            let namespace = subject["namespace"]
                .as_str()
                .filter(|ns| !ns.is_empty())
                .unwrap_or(binding_namespace);
            if namespace.is_empty() {
                return Err(invalid(format!(
                    "a ServiceAccount subject needs a namespace: {subject}"
                )));
            }
            Ok(Subject::ServiceAccount {
                namespace: namespace.to_owned(),
                name,
            })
        }
        other => Err(invalid(format!("unknown subject kind {other:?}"))),
    }
}
