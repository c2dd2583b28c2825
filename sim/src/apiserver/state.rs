//! What every request handler of an apiserver emulator serves from: its [`ApiState`], the
//! caller its connection authenticated as, and the JSON answer.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::cluster::ClusterIdentity;
use super::kubelet::KubeletRegistry;
use super::store::ObjectStore;
use crate::judge::rbac::{self, UserInfo};

/// One apiserver emulator's state: its cluster's identity and objects, the kubelets, and the
/// authorizers its flags enable.
pub(super) struct ApiState {
    pub(super) cluster: ClusterIdentity,
    pub(super) registry: KubeletRegistry,
    pub(super) started_at: DateTime<Utc>,
    pub(super) addr: SocketAddr,
    /// The cluster's objects, with the RBAC policy and network verdict derived from them.
    pub(super) store: Arc<ObjectStore>,
    /// Nodes whose refusal was already logged, so a poll loop does not repeat it.
    pub(super) refused_logged: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// The Node authorizer and NodeRestriction, as its flags enable them.
    pub(super) authorizers: rbac::Authorizers,
    /// `--enable-bootstrap-token-auth`.
    pub(super) bootstrap_token_auth: bool,
}

/// The authenticated caller of one connection (from its client certificate).
#[derive(Clone)]
pub(super) struct Caller(pub(super) Result<UserInfo, String>);

/// A JSON answer.
pub(super) fn json_response(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}
