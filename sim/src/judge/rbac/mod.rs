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
//!
//! [`Authorizers`] adds the Node authorizer and the NodeRestriction admission plugin in front of
//! RBAC (`node.rs`), for an apiserver whose flags enable them.
//!
//! `request.rs` holds the user, the request, the decision and its 403; `policy.rs` the roles,
//! bindings and their evaluation; `requirements.rs` the
//! requirements; `documents.rs` the reading of RBAC objects (the embedded data, an asset
//! directory's manifests).

mod documents;
mod error;
mod node;
mod policy;
mod request;
mod requirements;
#[cfg(test)]
mod tests;

pub use documents::{data_objects, manifest_objects};
pub use error::RbacError;
pub use node::{Authorizers, NODES_GROUP, node_identity, node_restriction, node_user};
pub use policy::{Policy, Rule};
pub use request::{
    AUTHENTICATED_GROUP, Decision, Request, ResourceRequest, SUPERUSER_GROUP, UserInfo,
    forbidden_status, refusal_message, refusal_status,
};
pub use requirements::{Identity, Requirements};
