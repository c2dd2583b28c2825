//! The Node authorizer and the NodeRestriction admission plugin, as an apiserver with
//! `--authorization-mode=Node,RBAC` and `--enable-admission-plugins=NodeRestriction` applies
//! them to a kubelet's requests (k8s.io/kubernetes v1.32
//! `plugin/pkg/auth/authorizer/node/node_authorizer.go`,
//! `plugin/pkg/admission/noderestriction/admission.go`, `pkg/auth/nodeidentifier`).
//!
//! Only the resources a kubelet's registration and heartbeat touch are subdivided here (its
//! Node and its Lease); every other request of a node falls back, as upstream, to the rules of
//! ClusterRole `system:node` of the bootstrap policy. The graph of pods, secrets and volumes a
//! node may read is not modeled: no pod calls the emulator.

use super::policy::Policy;
use super::request::{Decision, Request, UserInfo};

/// The user name prefix of a node's identity.
const NODE_USER_PREFIX: &str = "system:node:";
/// The group every node identity is in.
pub const NODES_GROUP: &str = "system:nodes";
/// The namespace of the nodes' heartbeat leases.
const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// The node a user is, as `nodeidentifier.NewDefaultNodeIdentifier` reads it: user
/// `system:node:<name>` in group `system:nodes`; `Some("")` for such a user without a name.
pub fn node_identity(user: &UserInfo) -> Option<&str> {
    let name = user.name.strip_prefix(NODE_USER_PREFIX)?;
    user.groups.iter().any(|g| g == NODES_GROUP).then_some(name)
}

/// The user a kubelet's client certificate names after TLS bootstrap: CN `system:node:<name>`,
/// O `system:nodes` (the kubelet's CSR template, pkg/kubelet/certificate).
pub fn node_user(node: &str) -> UserInfo {
    UserInfo::authenticated(&format!("{NODE_USER_PREFIX}{node}"), &[NODES_GROUP])
}

/// The authorizers an apiserver chains (`--authorization-mode`) and its NodeRestriction
/// admission plugin: what a request of a given user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Authorizers {
    /// `Node` is in `--authorization-mode`.
    pub node: bool,
    /// `NodeRestriction` is in `--enable-admission-plugins`.
    pub node_restriction: bool,
}

impl Authorizers {
    /// Whether `user` may make `request`: the Node authorizer first (it only ever allows or has
    /// no opinion), then RBAC, then NodeRestriction for a node's writes, as the apiserver's
    /// filter chain and admission do.
    pub fn admit(&self, policy: &Policy, user: &UserInfo, request: &Request) -> Decision {
        let node_reason = if self.node {
            match authorize_node(policy, user, request) {
                NodeDecision::Allow => None,
                NodeDecision::NoOpinion(reason) => Some(reason),
            }
        } else {
            Some(String::new())
        };
        if let Some(node_reason) = node_reason
            && let Decision::Denied { reason } = policy.authorize(user, request)
        {
            // The union authorizer reports every authorizer's reason.
            let reason = [node_reason, reason]
                .into_iter()
                .filter(|r| !r.is_empty())
                .collect::<Vec<_>>()
                .join(", ");
            return Decision::Denied { reason };
        }
        if self.node_restriction
            && let Some(refusal) = node_restriction(user, request)
        {
            return Decision::Refused { reason: refusal };
        }
        Decision::Allowed
    }
}

/// The Node authorizer's answer.
enum NodeDecision {
    Allow,
    NoOpinion(String),
}

/// `NodeAuthorizer.Authorize` for the resources modeled: a node's Node
/// (`authorizeNode`, AuthorizeNodeWithSelectors being on by default in v1.32) and its Lease
/// (`authorizeLease`); anything else by the rules of `system:node`.
fn authorize_node(policy: &Policy, user: &UserInfo, request: &Request) -> NodeDecision {
    let Some(node) = node_identity(user) else {
        return NodeDecision::NoOpinion(String::new());
    };
    if node.is_empty() {
        return NodeDecision::NoOpinion(format!("unknown node for user {:?}", user.name));
    }
    if let Request::Resource(r) = request {
        match (r.group.as_str(), r.resource.as_str()) {
            ("", "nodes") => {
                match (r.subresource.as_str(), r.verb.as_str()) {
                    // NodeRestriction limits a node to its own Node.
                    ("", "create" | "update" | "patch") | ("status", "update" | "patch") => {
                        return NodeDecision::Allow;
                    }
                    ("", "get" | "list" | "watch") => {
                        return if r.name == node {
                            NodeDecision::Allow
                        } else if r.name.is_empty() {
                            NodeDecision::NoOpinion(format!(
                                "node '{node}' cannot read all nodes, only its own Node object"
                            ))
                        } else {
                            NodeDecision::NoOpinion(format!(
                                "node '{node}' cannot read '{}', only its own Node object",
                                r.name
                            ))
                        };
                    }
                    _ => return NodeDecision::NoOpinion(String::new()),
                }
            }
            ("coordination.k8s.io", "leases") => {
                if !matches!(
                    r.verb.as_str(),
                    "get" | "create" | "update" | "patch" | "delete"
                ) {
                    return NodeDecision::NoOpinion(
                        "can only get, create, update, patch, or delete a node lease".to_owned(),
                    );
                }
                if r.namespace != NODE_LEASE_NAMESPACE {
                    return NodeDecision::NoOpinion(format!(
                        "can only access leases in the {NODE_LEASE_NAMESPACE:?} system namespace"
                    ));
                }
                // The authorizer does not know a create's name; NodeRestriction checks it.
                if r.verb != "create" && r.name != node {
                    return NodeDecision::NoOpinion(
                        "can only access node lease with the same name as the requesting node"
                            .to_owned(),
                    );
                }
                return NodeDecision::Allow;
            }
            _ => {}
        }
    }
    match policy.cluster_role_rules("system:node") {
        Some(rules) if rules.iter().any(|rule| rule.allows(request)) => NodeDecision::Allow,
        _ => NodeDecision::NoOpinion(String::new()),
    }
}

/// NodeRestriction's refusal of a node's write to another node's Node or Lease
/// (`admitNode`, `admitLease`), or `None`. A create names no object in its URL: the object it
/// carries is the kubelet's own, which is all a kubelet ever creates.
pub fn node_restriction(user: &UserInfo, request: &Request) -> Option<String> {
    let node = node_identity(user)?;
    let Request::Resource(r) = request else {
        return None;
    };
    if !matches!(r.verb.as_str(), "create" | "update" | "patch" | "delete") {
        return None;
    }
    if node.is_empty() {
        return Some(format!(
            "could not determine node from user {:?}",
            user.name
        ));
    }
    let target = if r.name.is_empty() && r.verb == "create" {
        node
    } else {
        r.name.as_str()
    };
    match (r.group.as_str(), r.resource.as_str()) {
        ("", "nodes") if target != node => Some(format!(
            "node {node:?} is not allowed to modify node {target:?}"
        )),
        ("coordination.k8s.io", "leases") if r.namespace != NODE_LEASE_NAMESPACE => Some(format!(
            "can only access leases in the {NODE_LEASE_NAMESPACE:?} system namespace"
        )),
        ("coordination.k8s.io", "leases") if target != node => {
            Some("can only access node lease with the same name as the requesting node".to_owned())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::request::{ResourceRequest, refusal_message};
    use super::*;

    const BOTH: Authorizers = Authorizers {
        node: true,
        node_restriction: true,
    };

    fn nodes(verb: &str, name: &str, subresource: &str) -> Request {
        ResourceRequest::new(verb, "", "nodes")
            .named(name)
            .subresource(subresource)
            .into()
    }

    fn lease(verb: &str, namespace: &str, name: &str) -> Request {
        ResourceRequest::new(verb, "coordination.k8s.io", "leases")
            .in_namespace(namespace)
            .named(name)
            .into()
    }

    /// Typhoon v1.32.3's kubelet-delete ClusterRole and binding (terraform-render-bootstrap
    /// resources/manifests/kubelet-delete-cluster-role{,-binding}.yaml), the part about nodes.
    fn with_kubelet_delete() -> Policy {
        let mut policy = Policy::bootstrap().expect("bootstrap policy");
        policy
            .add_object(
                &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                    "metadata": {"name": "kubelet-delete"},
                    "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["delete"]}]}),
                "test",
            )
            .expect("role");
        policy
            .add_object(
                &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                    "metadata": {"name": "kubelet-delete"},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "kubelet-delete"},
                    "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:nodes"}]}),
                "test",
            )
            .expect("binding");
        policy
    }

    #[test]
    fn a_node_identity_needs_its_prefix_and_group() {
        assert_eq!(node_identity(&node_user("a")), Some("a"));
        assert_eq!(
            node_identity(&UserInfo::authenticated("system:node:a", &[])),
            None
        );
        assert_eq!(
            node_identity(&UserInfo::authenticated("kubelet", &[NODES_GROUP])),
            None
        );
    }

    #[test]
    fn the_node_authorizer_lets_a_node_register_and_read_only_itself() {
        let policy = Policy::bootstrap().expect("bootstrap policy");
        let a = node_user("a");
        for request in [
            nodes("get", "a", ""),
            nodes("create", "", ""),
            nodes("patch", "a", "status"),
            lease("update", "kube-node-lease", "a"),
            lease("create", "kube-node-lease", ""),
        ] {
            assert_eq!(
                BOTH.admit(&policy, &a, &request),
                Decision::Allowed,
                "{request}"
            );
            // No binding of system:nodes: RBAC alone refuses.
            assert!(
                !Authorizers::default()
                    .admit(&policy, &a, &request)
                    .is_allowed(),
                "{request}"
            );
        }
        assert_eq!(
            BOTH.admit(&policy, &a, &nodes("get", "b", "")),
            Decision::Denied {
                reason: "node 'a' cannot read 'b', only its own Node object".to_owned()
            }
        );
        assert!(
            !BOTH
                .admit(&policy, &a, &lease("update", "kube-node-lease", "b"))
                .is_allowed()
        );
    }

    #[test]
    fn one_nodes_certificate_cannot_change_another_node() {
        let policy = Policy::bootstrap().expect("bootstrap policy");
        let a = node_user("a");
        let request = nodes("patch", "b", "status");
        let decision = BOTH.admit(&policy, &a, &request);
        assert_eq!(
            decision,
            Decision::Refused {
                reason: "node \"a\" is not allowed to modify node \"b\"".to_owned()
            }
        );
        assert_eq!(
            refusal_message(&a, &request, &decision).as_deref(),
            Some("nodes \"b\" is forbidden: node \"a\" is not allowed to modify node \"b\"")
        );
        // Without NodeRestriction the Node authorizer would let it through.
        let no_admission = Authorizers {
            node: true,
            node_restriction: false,
        };
        assert_eq!(no_admission.admit(&policy, &a, &request), Decision::Allowed);
    }

    #[test]
    fn a_node_may_delete_its_own_node_through_kubelet_delete_and_no_other() {
        let policy = with_kubelet_delete();
        let a = node_user("a");
        assert_eq!(
            BOTH.admit(&policy, &a, &nodes("delete", "a", "")),
            Decision::Allowed
        );
        assert!(matches!(
            BOTH.admit(&policy, &a, &nodes("delete", "b", "")),
            Decision::Refused { .. }
        ));
        // The Node authorizer grants no delete: without the binding, RBAC refuses.
        let bare = Policy::bootstrap().expect("bootstrap policy");
        assert!(matches!(
            BOTH.admit(&bare, &a, &nodes("delete", "a", "")),
            Decision::Denied { .. }
        ));
    }
}
