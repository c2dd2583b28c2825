//! Kubernetes RBAC, evaluated as the apiserver's RBAC authorizer evaluates it
//! (k8s.io/kubernetes `plugin/pkg/auth/authorizer/rbac`), with the apiserver's privileged group.
//!
//! A [`Policy`] holds ClusterRoles, Roles and their bindings: the bootstrap policy every
//! apiserver creates at start ([`Policy::bootstrap`], data in `sim/data/rbac/`) plus the RBAC
//! objects of an asset directory's `manifests/` ([`Policy::add_manifest_dir`]). A
//! [`Request`] is allowed when any rule of any role bound to the user covers it:
//!
//! - ClusterRoleBindings grant everywhere; RoleBindings only in their own namespace, and never a
//!   non-resource URL (those have no namespace).
//! - Subjects: `User` by name, `Group` by membership, `ServiceAccount` as user
//!   `system:serviceaccount:<ns>:<name>` (a RoleBinding's subject without a namespace is in the
//!   binding's namespace).
//! - Rules: verbs, apiGroups, resources (`pods/status` names a subresource, `*/status` every
//!   resource's), resourceNames (a request without a name, such as a create or a list, matches no
//!   rule that lists names), nonResourceURLs (`/api/*` is a prefix); `*` matches anything.
//! - ClusterRoles with an `aggregationRule` get the rules of every ClusterRole whose labels match.
//! - Group `system:masters` may do anything, before RBAC is asked, as the apiserver's
//!   `--authorization-mode` chain makes it.
//!
//! [`Requirements`] says what each identity of a cluster must be allowed to do, from the real
//! components' own roles (`sim/data/rbac/requirements.yaml`); nothing here knows loko.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize as _;
use serde_json::{Value, json};

/// The apiserver's superuser group: its members are authorized before any authorizer is asked.
pub const SUPERUSER_GROUP: &str = "system:masters";
/// Every authenticated user is in this group.
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";

/// The data files of `sim/data/rbac/`, embedded so the judge needs nothing at run time.
const DATA: &[(&str, &str)] = &[
    (
        "kubernetes-bootstrap-cluster-roles.yaml",
        include_str!("../../data/rbac/kubernetes-bootstrap-cluster-roles.yaml"),
    ),
    (
        "kubernetes-bootstrap-cluster-role-bindings.yaml",
        include_str!("../../data/rbac/kubernetes-bootstrap-cluster-role-bindings.yaml"),
    ),
    (
        "calico-v3.29.2-rbac.yaml",
        include_str!("../../data/rbac/calico-v3.29.2-rbac.yaml"),
    ),
    (
        "flannel-v0.26.4-rbac.yaml",
        include_str!("../../data/rbac/flannel-v0.26.4-rbac.yaml"),
    ),
    (
        "coredns-rbac.yaml",
        include_str!("../../data/rbac/coredns-rbac.yaml"),
    ),
    (
        "pod-checkpointer-rbac.yaml",
        include_str!("../../data/rbac/pod-checkpointer-rbac.yaml"),
    ),
];
const REQUIREMENTS: &str = include_str!("../../data/rbac/requirements.yaml");

/// What went wrong reading RBAC objects or the judge's data.
#[derive(Debug, thiserror::Error)]
pub enum RbacError {
    /// A manifest file or directory cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file is not JSON or YAML.
    #[error("{path}: not a JSON or YAML manifest: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        reason: String,
    },
    /// An RBAC object lacks a field the apiserver requires.
    #[error("{what}: {reason}")]
    Invalid {
        /// The object (kind and name) and where it came from.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// A requirement names an identity, file or role the data does not have.
    #[error("RBAC requirements: {0}")]
    Requirement(String),
}

/// An authenticated user as the authorizer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// The user name (a certificate's CN, `system:serviceaccount:<ns>:<name>`).
    pub name: String,
    /// Its groups (a certificate's O values, plus `system:authenticated`).
    pub groups: Vec<String>,
}

impl UserInfo {
    /// A user with these groups, plus `system:authenticated` as every authenticator adds it.
    pub fn authenticated(name: &str, groups: &[&str]) -> UserInfo {
        let mut all: Vec<String> = groups.iter().map(|g| (*g).to_owned()).collect();
        if !all.iter().any(|g| g == AUTHENTICATED_GROUP) {
            all.push(AUTHENTICATED_GROUP.to_owned());
        }
        UserInfo {
            name: name.to_owned(),
            groups: all,
        }
    }

    /// The user a service account's token authenticates as.
    pub fn service_account(namespace: &str, name: &str) -> UserInfo {
        UserInfo::authenticated(
            &format!("system:serviceaccount:{namespace}:{name}"),
            &[
                "system:serviceaccounts",
                &format!("system:serviceaccounts:{namespace}"),
            ],
        )
    }

    /// The user of an X.509 client certificate (DER), as the apiserver's x509 authenticator
    /// reads it: the subject's CN is the name, each O a group.
    pub fn from_certificate_der(der: &[u8]) -> Result<UserInfo, String> {
        let (_, certificate) = x509_parser::parse_x509_certificate(der)
            .map_err(|error| format!("not an X.509 certificate: {error}"))?;
        let subject = certificate.subject();
        let name = subject
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .ok_or("the certificate's subject has no common name")?
            .to_owned();
        let groups: Vec<&str> = subject
            .iter_organization()
            .filter_map(|o| o.as_str().ok())
            .collect();
        Ok(UserInfo::authenticated(&name, &groups))
    }

    /// The user of the first certificate of a PEM text.
    pub fn from_certificate_pem(pem: &[u8]) -> Result<UserInfo, String> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(pem)
            .map_err(|error| format!("no PEM certificate: {error}"))?;
        UserInfo::from_certificate_der(&pem.contents)
    }

    /// `User "x"` or, for a service account, `ServiceAccount ns/name`.
    pub fn describe(&self) -> String {
        match self
            .name
            .strip_prefix("system:serviceaccount:")
            .and_then(|rest| rest.split_once(':'))
        {
            Some((namespace, name)) => format!("ServiceAccount {namespace}/{name}"),
            None => format!("User {:?}", self.name),
        }
    }
}

/// One request's authorization attributes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Request {
    /// A request on an API resource.
    Resource(ResourceRequest),
    /// A request on a path that is not a resource (`/healthz`, `/version`, `/api`).
    NonResource {
        /// The verb (`get`, `post`, ...).
        verb: String,
        /// The URL path.
        path: String,
    },
}

/// A request on an API resource.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct ResourceRequest {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`, ...
    pub verb: String,
    /// The API group (`""` for the core group).
    pub group: String,
    /// The resource (plural, lower case).
    pub resource: String,
    /// The subresource (`status`), or empty.
    pub subresource: String,
    /// The namespace, empty at the cluster scope.
    pub namespace: String,
    /// The object's name, empty for lists and creates.
    pub name: String,
}

impl ResourceRequest {
    /// A request at the cluster scope on no particular object.
    pub fn new(verb: &str, group: &str, resource: &str) -> ResourceRequest {
        ResourceRequest {
            verb: verb.to_owned(),
            group: group.to_owned(),
            resource: resource.to_owned(),
            ..ResourceRequest::default()
        }
    }

    /// The same request on the named object.
    pub fn named(mut self, name: &str) -> ResourceRequest {
        self.name = name.to_owned();
        self
    }

    /// The same request in a namespace.
    pub fn in_namespace(mut self, namespace: &str) -> ResourceRequest {
        self.namespace = namespace.to_owned();
        self
    }

    /// The same request on a subresource.
    pub fn subresource(mut self, subresource: &str) -> ResourceRequest {
        self.subresource = subresource.to_owned();
        self
    }

    /// `resource` or `resource/subresource`.
    fn full_resource(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }
}

impl From<ResourceRequest> for Request {
    fn from(request: ResourceRequest) -> Request {
        Request::Resource(request)
    }
}

impl std::fmt::Display for Request {
    /// Short: `list ipamblocks.crd.projectcalico.org`, `patch nodes/status "n1"`,
    /// `get leases.coordination.k8s.io "n1" in namespace kube-node-lease`, `get path /healthz`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Request::NonResource { verb, path } => write!(f, "{verb} path {path}"),
            Request::Resource(r) => {
                write!(f, "{} {}", r.verb, r.resource)?;
                if !r.group.is_empty() {
                    write!(f, ".{}", r.group)?;
                }
                if !r.subresource.is_empty() {
                    write!(f, "/{}", r.subresource)?;
                }
                if !r.name.is_empty() {
                    write!(f, " {:?}", r.name)?;
                }
                if !r.namespace.is_empty() {
                    write!(f, " in namespace {}", r.namespace)?;
                }
                Ok(())
            }
        }
    }
}

/// The authorizer's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Some rule allows it.
    Allowed,
    /// Nothing allows it; `reason` is what the RBAC authorizer reports (roles a binding names
    /// that do not exist), often empty.
    Denied {
        /// The authorizer's reason.
        reason: String,
    },
}

impl Decision {
    /// Whether the request is allowed.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allowed)
    }
}

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
    fn allows(&self, request: &Request) -> bool {
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
    fn requests(&self, namespace: &str) -> Vec<Request> {
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
struct Role {
    rules: Vec<Rule>,
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
    fn cluster_role_rules(&self, name: &str) -> Option<Vec<Rule>> {
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

fn role_from_value(object: &Value, what: &str) -> Result<Role, RbacError> {
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

/// The apiserver's `Status` for a refused request: its message (`nodes is forbidden: User
/// "kubelet" cannot list resource "nodes" in API group "" at the cluster scope`) and details.
pub fn forbidden_status(user: &UserInfo, request: &Request, reason: &str) -> Value {
    let mut message = match request {
        Request::NonResource { verb, path } => {
            format!("User {:?} cannot {verb} path {path:?}", user.name)
        }
        Request::Resource(r) => {
            let scope = if r.namespace.is_empty() {
                "at the cluster scope".to_owned()
            } else {
                format!("in the namespace {:?}", r.namespace)
            };
            format!(
                "User {:?} cannot {} resource {:?} in API group {:?} {scope}",
                user.name,
                r.verb,
                r.full_resource(),
                r.group
            )
        }
    };
    if !reason.is_empty() {
        message = format!("{message}: {reason}");
    }
    let (message, details) = match request {
        Request::NonResource { .. } => (format!("forbidden: {message}"), json!({})),
        Request::Resource(r) => {
            let qualified = if r.group.is_empty() {
                r.resource.clone()
            } else {
                format!("{}.{}", r.resource, r.group)
            };
            let mut details = json!({"kind": r.resource});
            if !r.group.is_empty() {
                details["group"] = json!(r.group);
            }
            if r.name.is_empty() {
                (format!("{qualified} is forbidden: {message}"), details)
            } else {
                details["name"] = json!(r.name);
                (
                    format!("{qualified} {:?} is forbidden: {message}", r.name),
                    details,
                )
            }
        }
    };
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "Forbidden",
        "details": details,
        "code": 403,
    })
}

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
fn parse_documents(text: &str, path: &Path, json: bool) -> Result<Vec<Value>, RbacError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(yaml: &str) -> Policy {
        let mut policy = Policy::default();
        for object in parse_documents(yaml, Path::new("test.yaml"), false).expect("YAML") {
            policy.add_object(&object, "test").expect("RBAC object");
        }
        policy
    }

    fn user(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo::authenticated(name, groups)
    }

    const PODS_READER: &str = "
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: reader}
rules:
- {apiGroups: [''], resources: [pods], verbs: [get, list]}
- {apiGroups: [''], resources: [nodes/status], verbs: [patch]}
- {apiGroups: [coordination.k8s.io], resources: [leases], resourceNames: [mine], verbs: [update]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: reader}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: reader}
subjects:
- {kind: User, name: alice}
- {kind: Group, name: readers}
";

    fn allowed(policy: &Policy, user: &UserInfo, request: ResourceRequest) -> bool {
        policy.authorize(user, &request.into()).is_allowed()
    }

    #[test]
    fn a_role_allows_what_it_grants_and_nothing_else() {
        let policy = policy(PODS_READER);
        let alice = user("alice", &[]);
        assert!(allowed(
            &policy,
            &alice,
            ResourceRequest::new("list", "", "pods")
        ));
        assert!(allowed(
            &policy,
            &alice,
            ResourceRequest::new("get", "", "pods")
                .in_namespace("x")
                .named("p")
        ));
        assert!(!allowed(
            &policy,
            &alice,
            ResourceRequest::new("delete", "", "pods")
        ));
        assert!(!allowed(
            &policy,
            &alice,
            ResourceRequest::new("list", "", "nodes")
        ));
        assert!(!allowed(
            &policy,
            &alice,
            ResourceRequest::new("list", "apps", "pods")
        ));
        // By group membership, not by name.
        assert!(allowed(
            &policy,
            &user("bob", &["readers"]),
            ResourceRequest::new("list", "", "pods")
        ));
        assert!(!allowed(
            &policy,
            &user("bob", &[]),
            ResourceRequest::new("list", "", "pods")
        ));
    }

    #[test]
    fn subresources_are_distinct_resources() {
        let policy = policy(PODS_READER);
        let alice = user("alice", &[]);
        let status = ResourceRequest::new("patch", "", "nodes")
            .subresource("status")
            .named("n");
        assert!(allowed(&policy, &alice, status));
        assert!(!allowed(
            &policy,
            &alice,
            ResourceRequest::new("patch", "", "nodes").named("n")
        ));
        assert!(!allowed(
            &policy,
            &alice,
            ResourceRequest::new("get", "", "pods").subresource("log")
        ));
    }

    #[test]
    fn resource_names_restrict_to_named_objects() {
        let policy = policy(PODS_READER);
        let alice = user("alice", &[]);
        let lease = || ResourceRequest::new("update", "coordination.k8s.io", "leases");
        assert!(allowed(&policy, &alice, lease().named("mine")));
        assert!(!allowed(&policy, &alice, lease().named("yours")));
        // No name (a create, a list) never matches a rule that lists names.
        assert!(!allowed(&policy, &alice, lease()));
    }

    #[test]
    fn wildcards_match_anything_and_subresource_wildcards_only_that_subresource() {
        let policy = policy(
            "
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: all}
rules:
- {apiGroups: ['*'], resources: ['*'], verbs: [list]}
- {apiGroups: [''], resources: ['*/status'], verbs: [update]}
- {nonResourceURLs: [/api/*, /healthz], verbs: [get]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: all}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: all}
subjects: [{kind: User, name: u}]
",
        );
        let u = user("u", &[]);
        assert!(allowed(
            &policy,
            &u,
            ResourceRequest::new("list", "crd.projectcalico.org", "ipamblocks")
        ));
        assert!(!allowed(
            &policy,
            &u,
            ResourceRequest::new("get", "", "pods")
        ));
        assert!(allowed(
            &policy,
            &u,
            ResourceRequest::new("update", "", "pods").subresource("status")
        ));
        assert!(!allowed(
            &policy,
            &u,
            ResourceRequest::new("update", "", "pods")
        ));
        let get = |path: &str| Request::NonResource {
            verb: "get".to_owned(),
            path: path.to_owned(),
        };
        assert!(policy.authorize(&u, &get("/api/v1")).is_allowed());
        assert!(policy.authorize(&u, &get("/healthz")).is_allowed());
        assert!(!policy.authorize(&u, &get("/healthz/etcd")).is_allowed());
        assert!(!policy.authorize(&u, &get("/version")).is_allowed());
    }

    #[test]
    fn a_role_binding_grants_only_in_its_namespace() {
        let policy = policy(
            "
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: r, namespace: kube-system}
rules: [{apiGroups: [''], resources: [secrets], verbs: [get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: r, namespace: kube-system}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: r}
subjects: [{kind: ServiceAccount, name: sa}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: cr}
rules: [{apiGroups: [''], resources: [configmaps], verbs: [get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: cr, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cr}
subjects: [{kind: ServiceAccount, name: sa, namespace: kube-system}]
",
        );
        // The subject without a namespace is in the binding's namespace.
        let sa = UserInfo::service_account("kube-system", "sa");
        let secret = || ResourceRequest::new("get", "", "secrets").named("s");
        assert!(allowed(&policy, &sa, secret().in_namespace("kube-system")));
        assert!(!allowed(&policy, &sa, secret().in_namespace("default")));
        assert!(!allowed(&policy, &sa, secret()), "not at the cluster scope");
        let configmap = || ResourceRequest::new("get", "", "configmaps").named("c");
        assert!(allowed(&policy, &sa, configmap().in_namespace("default")));
        assert!(!allowed(
            &policy,
            &sa,
            configmap().in_namespace("kube-system")
        ));
        assert!(!allowed(&policy, &sa, configmap()));
    }

    #[test]
    fn a_service_account_is_its_user_and_groups() {
        let sa = UserInfo::service_account("kube-system", "calico-node");
        assert_eq!(sa.name, "system:serviceaccount:kube-system:calico-node");
        assert_eq!(
            sa.groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:kube-system",
                "system:authenticated"
            ]
        );
        assert_eq!(sa.describe(), "ServiceAccount kube-system/calico-node");
        let policy = policy(
            "
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: b}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view-nodes}
subjects: [{kind: Group, name: 'system:serviceaccounts:kube-system'}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: view-nodes}
rules: [{apiGroups: [''], resources: [nodes], verbs: [list]}]
",
        );
        assert!(allowed(
            &policy,
            &sa,
            ResourceRequest::new("list", "", "nodes")
        ));
        let other = UserInfo::service_account("default", "calico-node");
        assert!(!allowed(
            &policy,
            &other,
            ResourceRequest::new("list", "", "nodes")
        ));
    }

    #[test]
    fn without_a_binding_nothing_is_allowed_and_missing_roles_are_reported() {
        let mut policy = policy(PODS_READER);
        let carol = user("carol", &[]);
        assert_eq!(
            policy.authorize(&carol, &ResourceRequest::new("list", "", "pods").into()),
            Decision::Denied {
                reason: String::new()
            }
        );
        let dangling = serde_json::json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "d"},
            "roleRef": {"kind": "ClusterRole", "name": "nowhere"},
            "subjects": [{"kind": "User", "name": "carol"}],
        });
        policy.add_object(&dangling, "test").expect("binding");
        assert_eq!(
            policy.authorize(&carol, &ResourceRequest::new("list", "", "pods").into()),
            Decision::Denied {
                reason: "RBAC: clusterrole.rbac.authorization.k8s.io \"nowhere\" not found"
                    .to_owned()
            }
        );
    }

    #[test]
    fn system_masters_is_a_superuser_and_bootstrap_bindings_apply() {
        let policy = Policy::bootstrap().expect("bootstrap policy");
        let admin = user("kubernetes-admin", &["system:masters"]);
        assert!(allowed(
            &policy,
            &admin,
            ResourceRequest::new("delete", "x.io", "anything")
        ));
        let scheduler = user("system:kube-scheduler", &[]);
        assert!(allowed(
            &policy,
            &scheduler,
            ResourceRequest::new("update", "", "persistentvolumes").named("pv")
        ));
        assert!(allowed(
            &policy,
            &scheduler,
            ResourceRequest::new("create", "", "pods")
                .subresource("binding")
                .in_namespace("d")
                .named("p")
        ));
        // Nobody is bound to system:node by default.
        let kubelet = user("kubelet", &["system:nodes"]);
        assert!(!allowed(
            &policy,
            &kubelet,
            ResourceRequest::new("get", "", "nodes").named("n")
        ));
        let discovery = Request::NonResource {
            verb: "get".to_owned(),
            path: "/apis/apps/v1".to_owned(),
        };
        assert!(policy.authorize(&kubelet, &discovery).is_allowed());
    }

    #[test]
    fn aggregated_cluster_roles_collect_the_rules_of_matching_roles() {
        let policy = policy(
            "
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: agg}
aggregationRule:
  clusterRoleSelectors: [{matchLabels: {to-agg: 'true'}}]
rules: []
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: part, labels: {to-agg: 'true'}}
rules: [{apiGroups: [''], resources: [services], verbs: [get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: other}
rules: [{apiGroups: [''], resources: [secrets], verbs: [get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: agg}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: agg}
subjects: [{kind: User, name: u}]
",
        );
        let u = user("u", &[]);
        assert!(allowed(
            &policy,
            &u,
            ResourceRequest::new("get", "", "services")
        ));
        assert!(!allowed(
            &policy,
            &u,
            ResourceRequest::new("get", "", "secrets")
        ));
    }

    #[test]
    fn forbidden_messages_read_as_the_apiservers() {
        let kubelet = user("kubelet", &["system:nodes"]);
        let status = forbidden_status(
            &kubelet,
            &ResourceRequest::new("list", "", "nodes").into(),
            "",
        );
        assert_eq!(
            status["message"],
            "nodes is forbidden: User \"kubelet\" cannot list resource \"nodes\" in API group \"\" at the cluster scope"
        );
        assert_eq!(status["code"], 403);
        assert_eq!(status["reason"], "Forbidden");
        let lease = ResourceRequest::new("update", "coordination.k8s.io", "leases")
            .in_namespace("kube-node-lease")
            .named("n1");
        assert_eq!(
            forbidden_status(&kubelet, &lease.into(), "")["message"],
            "leases.coordination.k8s.io \"n1\" is forbidden: User \"kubelet\" cannot update resource \"leases\" in API group \"coordination.k8s.io\" in the namespace \"kube-node-lease\""
        );
        let status = ResourceRequest::new("patch", "", "nodes")
            .subresource("status")
            .named("n1");
        assert_eq!(
            forbidden_status(&kubelet, &status.into(), "")["message"],
            "nodes \"n1\" is forbidden: User \"kubelet\" cannot patch resource \"nodes/status\" in API group \"\" at the cluster scope"
        );
        let path = Request::NonResource {
            verb: "get".to_owned(),
            path: "/metrics".to_owned(),
        };
        assert_eq!(
            forbidden_status(&kubelet, &path, "")["message"],
            "forbidden: User \"kubelet\" cannot get path \"/metrics\""
        );
    }

    #[test]
    fn requirements_expand_every_rule_and_substitute_the_node() {
        let requirements = Requirements::load().expect("requirements");
        let calico = requirements.identity("calico-node").expect("calico-node");
        let requests = calico.requests("n1");
        assert!(
            requests.contains(
                &ResourceRequest::new("list", "crd.projectcalico.org", "ipamblocks").into()
            )
        );
        assert!(
            requests.contains(
                &ResourceRequest::new("create", "", "serviceaccounts")
                    .subresource("token")
                    .named("calico-cni-plugin")
                    .into()
            )
        );
        let checkpointer = requirements
            .identity("pod-checkpointer")
            .expect("checkpointer");
        assert!(
            checkpointer.requests("n1").contains(
                &ResourceRequest::new("get", "", "secrets")
                    .in_namespace("kube-system")
                    .into()
            )
        );
        let delete = requirements.identity("delete-node").expect("delete-node");
        assert_eq!(
            delete.requests("worker-1"),
            [Request::from(
                ResourceRequest::new("delete", "", "nodes").named("worker-1")
            )]
        );
        for name in requirements.names() {
            assert!(
                !requirements
                    .identity(name)
                    .expect("listed")
                    .source
                    .is_empty(),
                "{name}"
            );
        }
    }

    #[test]
    fn system_node_grants_what_registering_a_node_takes() {
        // The registration subset must be what the kubelet's own role allows, or the emulator
        // would refuse kubelets that a real cluster admits.
        let mut policy = Policy::bootstrap().expect("bootstrap");
        let binding = serde_json::json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "nodes"},
            "roleRef": {"kind": "ClusterRole", "name": "system:node"},
            "subjects": [{"kind": "Group", "name": "system:nodes"}],
        });
        policy.add_object(&binding, "test").expect("binding");
        let kubelet = user("kubelet", &["system:nodes"]);
        let requirements = Requirements::load().expect("requirements");
        for identity in ["kubelet", "kubelet-registration"] {
            for request in requirements
                .identity(identity)
                .expect("identity")
                .requests("n1")
            {
                assert!(
                    policy.authorize(&kubelet, &request).is_allowed(),
                    "{identity}: {request}"
                );
            }
        }
        // delete-node is not part of system:node: upstream bound a role of its own for it.
        for request in requirements
            .identity("delete-node")
            .expect("identity")
            .requests("n1")
        {
            assert!(
                !policy.authorize(&kubelet, &request).is_allowed(),
                "{request}"
            );
        }
    }

    #[test]
    fn manifests_are_read_from_json_yaml_lists_and_subdirectories() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("calico")).expect("mkdir");
        std::fs::create_dir_all(dir.path().join(".hidden")).expect("mkdir");
        std::fs::write(
            dir.path().join("calico/role.json"),
            r#"{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRole","metadata":{"name":"r"},"rules":[{"apiGroups":[""],"resources":["pods"],"verbs":["get"]}]}"#,
        )
        .expect("write");
        std::fs::write(
            dir.path().join("bindings.yaml"),
            "apiVersion: v1\nkind: List\nitems:\n- apiVersion: rbac.authorization.k8s.io/v1\n  kind: ClusterRoleBinding\n  metadata: {name: r}\n  roleRef: {kind: ClusterRole, name: r}\n  subjects: [{kind: User, name: u}]\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
        )
        .expect("write");
        std::fs::write(
            dir.path().join(".hidden/x.yaml"),
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: x}\nroleRef: {kind: ClusterRole, name: cluster-admin}\nsubjects: [{kind: User, name: u}]\n",
        )
        .expect("write");
        let mut policy = Policy::default();
        assert_eq!(policy.add_manifest_dir(dir.path()).expect("manifests"), 2);
        let u = user("u", &[]);
        assert!(allowed(
            &policy,
            &u,
            ResourceRequest::new("get", "", "pods")
        ));
        assert!(!allowed(
            &policy,
            &u,
            ResourceRequest::new("get", "", "secrets")
        ));
        assert_eq!(manifest_objects(dir.path()).expect("objects").len(), 3);
    }
}
