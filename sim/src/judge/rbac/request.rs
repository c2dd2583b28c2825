//! Who asks and what: the authenticated user and the attributes of one request, as the
//! apiserver's authorizers see them, and their answer.

/// The apiserver's superuser group: its members are authorized before any authorizer is asked.
pub const SUPERUSER_GROUP: &str = "system:masters";
/// Every authenticated user is in this group.
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";

use serde_json::{Value, json};

use crate::judge::api_status;

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
    pub(super) fn full_resource(&self) -> String {
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
    /// An authorizer allows it and admission refuses it (NodeRestriction): `reason` is the
    /// plugin's.
    Refused {
        /// The admission plugin's reason.
        reason: String,
    },
}

impl Decision {
    /// Whether the request is allowed.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allowed)
    }
}

/// The apiserver's 403 `Status` for a decision that is not [`Decision::Allowed`], or `None`.
pub fn refusal_status(user: &UserInfo, request: &Request, decision: &Decision) -> Option<Value> {
    match decision {
        Decision::Allowed => None,
        Decision::Denied { reason } => Some(forbidden_status(user, request, reason)),
        Decision::Refused { reason } => {
            // admission.NewForbidden: `<resource> "<name>" is forbidden: <reason>`.
            let mut status = forbidden_status(user, request, "");
            let prefix = status["message"]
                .as_str()
                .and_then(|m| m.split_once(" is forbidden: "))
                .map(|(prefix, _)| prefix.to_owned())
                .unwrap_or_default();
            status["message"] = json!(format!("{prefix} is forbidden: {reason}"));
            Some(status)
        }
    }
}

/// The message of [`refusal_status`], or `None` for an allowed request.
pub fn refusal_message(user: &UserInfo, request: &Request, decision: &Decision) -> Option<String> {
    refusal_status(user, request, decision)
        .and_then(|status| status["message"].as_str().map(str::to_owned))
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
    let mut status = api_status::failure(403, "Forbidden", &message);
    status["details"] = details;
    status
}
