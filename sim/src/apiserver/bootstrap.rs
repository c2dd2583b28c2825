//! Who a kubelet is when it registers: the client certificate of its kubeconfig, or the one TLS
//! bootstrap gets it, judged link by link as the real components make it.
//!
//! A kubelet started with `--bootstrap-kubeconfig` and no `--kubeconfig` yet authenticates with
//! that kubeconfig's bootstrap token (k8s.io/kubernetes v1.32
//! `plugin/pkg/auth/authenticator/token/bootstrap/bootstrap.go`, only with the apiserver's
//! `--enable-bootstrap-token-auth`), creates a CertificateSigningRequest for
//! `system:node:<name>` (`pkg/kubelet/certificate/bootstrap`), which a controller-manager's
//! csrapproving controller approves only if its requester may create
//! `certificatesigningrequests/nodeclient` (`pkg/controller/certificates/approver/sarapprove.go`)
//! and its csrsigning controller signs with `--cluster-signing-cert-file`/`-key-file`. The
//! certificate then authenticates only if that signer is the apiserver's `--client-ca-file`.
//! Each broken link leaves the kubelet unregistered with the reason its log would give.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde_yaml::Value;

use super::cluster;
use super::kubelet::Kubelet;
use super::state::ApiState;
use super::store::ObjectStore;
use crate::judge::rbac::{self, Authorizers, Policy, Request, UserInfo};

/// The Secret type of a bootstrap token (k8s.io/cluster-bootstrap/token/api).
const BOOTSTRAP_TOKEN_TYPE: &str = "bootstrap.kubernetes.io/token";
/// The group every bootstrap token authenticates in.
const BOOTSTRAPPERS_GROUP: &str = "system:bootstrappers";

/// The user a kubelet's requests authenticate as once it has its client certificate, or why it
/// never gets one (the kubelet's log line).
pub(super) fn kubelet_user(
    state: &ApiState,
    kubelet: &Kubelet,
    kubeconfig: &str,
) -> Result<UserInfo, String> {
    let certificate = || {
        cluster::kubeconfig_client_certificate(kubeconfig)
            .ok_or_else(|| "its kubeconfig has no client certificate".to_owned())
            .and_then(|pem| UserInfo::from_certificate_pem(&pem))
    };
    if !kubelet.bootstrap {
        return certificate();
    }
    let requester = match kubeconfig_token(kubeconfig) {
        Some(_) if !state.bootstrap_token_auth => {
            return Err("cannot create certificate signing request: Unauthorized (kube-apiserver runs without --enable-bootstrap-token-auth, so it accepts no bootstrap token)".to_owned());
        }
        Some(token) => {
            authenticate_bootstrap_token(&state.store, &token, Utc::now()).map_err(|reason| {
                format!("cannot create certificate signing request: Unauthorized ({reason})")
            })?
        }
        None => certificate()
            .map_err(|reason| format!("its --bootstrap-kubeconfig has no token and {reason}"))?,
    };
    let derived = state.store.derived();
    let policy = &derived.policy;
    let needs = state
        .store
        .requirements()
        .identity("kubelet-bootstrap")
        .map_err(|error| error.to_string())?
        .requests(&kubelet.node_name);
    first_refusal(&state.authorizers, policy, &requester, &needs).map_or(Ok(()), |message| {
        Err(format!(
            "cannot create certificate signing request: {message}"
        ))
    })?;
    let pending = format!(
        "certificate signing request for system:node:{} is pending",
        kubelet.node_name
    );
    let controllers = state.store.csr_controllers();
    if !controllers.iter().any(|c| c.approving) {
        return Err(format!(
            "{pending}: no kube-controller-manager runs the csrapproving controller"
        ));
    }
    let approval = state
        .store
        .requirements()
        .identity("csr-approval-nodeclient")
        .map_err(|error| error.to_string())?
        .requests(&kubelet.node_name);
    if let Some(message) = first_refusal(&state.authorizers, policy, &requester, &approval) {
        return Err(format!(
            "{pending}: the csrapproving controller approves a node's client certificate only if its requester may create certificatesigningrequests/nodeclient ({message})"
        ));
    }
    let signers: Vec<&Result<Vec<u8>, String>> = controllers.iter().map(|c| &c.signer).collect();
    if !signers.iter().any(|signer| signer.is_ok()) {
        let why = signers
            .iter()
            .find_map(|signer| signer.as_ref().err())
            .map_or_else(String::new, |why| format!(": {why}"));
        return Err(format!(
            "certificate signing request for system:node:{} is approved and never issued: no kube-controller-manager signs{why}",
            kubelet.node_name
        ));
    }
    if !signers.iter().any(|signer| {
        signer
            .as_ref()
            .is_ok_and(|der| state.cluster.is_client_ca(der))
    }) {
        return Err("the issued client certificate is refused: x509: certificate signed by unknown authority (the controller-manager's --cluster-signing-cert-file is not the apiserver's --client-ca-file)".to_owned());
    }
    Ok(rbac::node_user(&kubelet.node_name))
}

/// Why a bootstrapped kubelet's certificate will not be renewed before it expires, or `None`.
pub(super) fn renewal_problem(state: &ApiState, kubelet: &Kubelet) -> Option<String> {
    if !kubelet.bootstrap {
        return None;
    }
    if !kubelet.rotate_certificates {
        return Some(
            "the kubelet does not rotate its certificate (no --rotate-certificates): it stops authenticating when the certificate expires".to_owned(),
        );
    }
    let user = rbac::node_user(&kubelet.node_name);
    let renewal = state
        .store
        .requirements()
        .identity("csr-approval-selfnodeclient")
        .ok()?
        .requests(&kubelet.node_name);
    let derived = state.store.derived();
    first_refusal(&state.authorizers, &derived.policy, &user, &renewal).map(|message| {
        format!("its renewal requests stay pending: the csrapproving controller approves them only if the node may create certificatesigningrequests/selfnodeclient ({message})")
    })
}

/// The message of the first request `user` may not make, or `None`.
pub(super) fn first_refusal(
    authorizers: &Authorizers,
    policy: &Policy,
    user: &UserInfo,
    requests: &[Request],
) -> Option<String> {
    requests.iter().find_map(|request| {
        let decision = authorizers.admit(policy, user, request);
        rbac::refusal_message(user, request, &decision)
    })
}

/// The `token` of the kubeconfig's current user.
fn kubeconfig_token(kubeconfig: &str) -> Option<String> {
    let user = cluster::current_entry(kubeconfig, "users", "user")?;
    user.get("token").and_then(Value::as_str).map(str::to_owned)
}

/// The user a bootstrap token authenticates as at `now`, or why it does not (bootstrap.go
/// `TokenAuthenticator.AuthenticateToken`; the apiserver answers 401 and says nothing more).
pub fn authenticate_bootstrap_token(
    store: &ObjectStore,
    token: &str,
    now: DateTime<Utc>,
) -> Result<UserInfo, String> {
    let (id, secret) = token
        .split_once('.')
        .filter(|(id, secret)| {
            let valid = |s: &str, len: usize| {
                s.len() == len
                    && s.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            };
            valid(id, 6) && valid(secret, 16)
        })
        .ok_or("the token is not of the form [a-z0-9]{6}.[a-z0-9]{16}")?;
    let name = format!("bootstrap-token-{id}");
    let object = store
        .get(&format!("/api/v1/namespaces/kube-system/secrets/{name}"))
        .ok_or_else(|| format!("no Secret kube-system/{name} to match the bootstrap token"))?;
    if object["metadata"]["deletionTimestamp"].is_string() {
        return Err(format!("Secret kube-system/{name} is being deleted"));
    }
    let field = |key: &str| -> Option<String> {
        let data = object["data"][key].as_str()?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data)
            .ok()?;
        String::from_utf8(bytes).ok()
    };
    if object["type"] != BOOTSTRAP_TOKEN_TYPE || !object["data"].is_object() {
        return Err(format!(
            "Secret kube-system/{name} has invalid type or data (type must be {BOOTSTRAP_TOKEN_TYPE})"
        ));
    }
    if field("token-secret").as_deref() != Some(secret) {
        return Err(format!(
            "Secret kube-system/{name} does not hold this token's secret"
        ));
    }
    if field("token-id").as_deref() != Some(id) {
        return Err(format!("Secret kube-system/{name} has another token-id"));
    }
    // bootstrapsecretutil.HasExpired: an unparseable expiration counts as expired.
    if let Some(expiration) = field("expiration") {
        match DateTime::parse_from_rfc3339(&expiration) {
            Ok(at) if at > now => {}
            Ok(at) => {
                return Err(format!(
                    "the bootstrap token {id} expired at {}",
                    at.to_rfc3339()
                ));
            }
            Err(_) => {
                return Err(format!(
                    "the bootstrap token {id} has an unparseable expiration {expiration:?}"
                ));
            }
        }
    }
    if field("usage-bootstrap-authentication").as_deref() != Some("true") {
        return Err(format!(
            "Secret kube-system/{name} is not marked for authentication (usage-bootstrap-authentication: \"true\")"
        ));
    }
    let mut groups = vec![BOOTSTRAPPERS_GROUP.to_owned()];
    for extra in field("auth-extra-groups")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
    {
        if !valid_extra_group(extra) {
            return Err(format!(
                "Secret kube-system/{name}: auth-extra-groups {extra:?} does not match ^system:bootstrappers:[a-z0-9:-]{{0,255}}[a-z0-9]$"
            ));
        }
        groups.push(extra.to_owned());
    }
    let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
    Ok(UserInfo::authenticated(
        &format!("system:bootstrap:{id}"),
        &groups,
    ))
}

/// `bootstrapapi.BootstrapGroupPattern`: `^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$`.
fn valid_extra_group(group: &str) -> bool {
    let Some(rest) = group.strip_prefix("system:bootstrappers:") else {
        return false;
    };
    let Some(last) = rest.bytes().last() else {
        return false;
    };
    rest.len() <= 256
        && (last.is_ascii_lowercase() || last.is_ascii_digit())
        && rest
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b':' || b == b'-')
}
