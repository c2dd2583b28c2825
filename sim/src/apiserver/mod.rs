//! A Kubernetes apiserver emulator: what bootkube leaves running on controller 0, as far as loko
//! and `kubectl get nodes` can tell.
//!
//! It serves HTTPS with the apiserver certificate and key that were copied to the controller, and
//! admits only clients whose certificate chains to the copied cluster CA (the TLS handshake fails
//! for everyone else, as the real apiserver's `--client-ca-file` makes it). It answers the health
//! endpoints, `/version`, the discovery documents kubectl reads, and `/api/v1/nodes`.
//!
//! Every request is authorized as the real apiserver's x509 authenticator and RBAC authorizer
//! would: the client certificate's CN is the user and its O values the groups, judged by
//! [`crate::judge::rbac`] against Kubernetes' bootstrap policy plus the RBAC objects in the
//! assets' `manifests/` (what bootkube creates). A refused request gets the apiserver's 403
//! `Status` (`nodes is forbidden: User "x" cannot list resource "nodes" in API group "" at the
//! cluster scope`).
//!
//! Nodes come from a [`KubeletRegistry`]: a node is listed when its kubelet kubeconfig names this
//! cluster's apiserver (the host of the admin kubeconfig's server, or its `<cluster>-private`
//! variant), carries this cluster's CA inline, and its client certificate's identity may do what
//! registering a node and renewing its lease take. A kubelet configured for another cluster, or
//! one the RBAC objects do not let in, never shows up. A listed node is Ready only when the
//! network DaemonSet of the manifests (calico-node or flannel) exists with its service account,
//! its service account may make every request its upstream role holds, and (Calico) every CRD its
//! version ships is there; otherwise the Ready condition is False and its message says why.

mod cluster;
mod network;
mod objects;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use crate::judge::rbac::{self, Policy, Requirements, UserInfo};
use cluster::ClusterIdentity;

/// Port the apiserver listens on, as in the Lokomotive modules.
pub const APISERVER_PORT: u16 = 6443;

/// What went wrong starting an apiserver emulator.
#[derive(Debug, thiserror::Error)]
pub enum ApiserverError {
    /// An asset is missing or unreadable.
    #[error("apiserver asset {path}: {reason}")]
    Asset {
        /// The asset file.
        path: PathBuf,
        /// Why it cannot be used (never its contents).
        reason: String,
    },
    /// The certificates do not make a valid TLS configuration.
    #[error("apiserver TLS configuration from {assets}: {reason}")]
    Tls {
        /// The assets directory.
        assets: PathBuf,
        /// rustls' reason.
        reason: String,
    },
    /// The listening socket could not be bound.
    #[error("apiserver cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A kubelet as the apiserver sees it: registered when its node boots, gone when it is deleted.
#[derive(Clone)]
pub struct Kubelet {
    /// Node name (the device hostname).
    pub node_name: String,
    /// The kubelet kubeconfig from the node's Ignition, if any.
    pub kubeconfig: Option<String>,
    /// Labels from the kubelet's `--node-labels`.
    pub labels: BTreeMap<String, String>,
    /// Private IPv4 (the node's InternalIP).
    pub internal_ip: Ipv4Addr,
    /// Public IPv4 (the node's ExternalIP).
    pub external_ip: Ipv4Addr,
    /// When the node booted.
    pub registered_at: DateTime<Utc>,
}

impl std::fmt::Debug for Kubelet {
    // The kubeconfig holds the kubelet's private key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kubelet")
            .field("node_name", &self.node_name)
            .field("has_kubeconfig", &self.kubeconfig.is_some())
            .field("labels", &self.labels)
            .field("internal_ip", &self.internal_ip)
            .field("external_ip", &self.external_ip)
            .finish()
    }
}

/// The running kubelets of a simulated cloud, shared by the nodes and every apiserver emulator.
#[derive(Debug, Clone, Default)]
pub struct KubeletRegistry {
    kubelets: Arc<RwLock<BTreeMap<String, Kubelet>>>,
}

impl KubeletRegistry {
    /// Records a booted node's kubelet (replacing an older one of the same name).
    pub fn register(&self, kubelet: Kubelet) {
        let mut kubelets = self
            .kubelets
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        kubelets.insert(kubelet.node_name.clone(), kubelet);
    }

    /// Forgets a node's kubelet (its device was stopped or deleted).
    pub fn unregister(&self, node_name: &str) {
        let mut kubelets = self
            .kubelets
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        kubelets.remove(node_name);
    }

    fn snapshot(&self) -> Vec<Kubelet> {
        let kubelets = self
            .kubelets
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        kubelets.values().cloned().collect()
    }
}

/// A running apiserver emulator; dropping it stops it and closes its connections.
#[derive(Debug)]
pub struct Apiserver {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Apiserver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct ApiState {
    cluster: ClusterIdentity,
    registry: KubeletRegistry,
    started_at: DateTime<Utc>,
    addr: SocketAddr,
    /// The bootstrap policy and the RBAC objects bootkube created.
    policy: Policy,
    requirements: Requirements,
    /// Why nodes are not Ready (the network cannot come up), or `None`.
    network_problem: Option<String>,
    /// Nodes whose refusal was already logged, so a poll loop does not repeat it.
    refused_logged: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

/// The authenticated caller of one connection (from its client certificate).
#[derive(Clone)]
struct Caller(Result<UserInfo, String>);

impl Apiserver {
    /// Loads the bootkube assets in `assets_dir` (`auth/kubeconfig`, `tls/ca.crt`,
    /// `tls/apiserver.crt`, `tls/apiserver.key`) and serves on `listen`.
    pub async fn start(
        listen: SocketAddr,
        assets_dir: &Path,
        registry: KubeletRegistry,
    ) -> Result<Apiserver, ApiserverError> {
        let cluster = ClusterIdentity::from_assets(assets_dir)?;
        let tls = tls_config(assets_dir)?;
        let manifests = assets_dir.join("manifests");
        let rbac_error = |error: rbac::RbacError| ApiserverError::Asset {
            path: manifests.clone(),
            reason: error.to_string(),
        };
        let mut policy = Policy::bootstrap().map_err(rbac_error)?;
        let requirements = Requirements::load().map_err(rbac_error)?;
        // bootkube only warns when manifests/ is missing, and creates nothing.
        let objects = if manifests.is_dir() {
            let objects = rbac::manifest_objects(&manifests).map_err(rbac_error)?;
            for (path, object) in &objects {
                policy
                    .add_object(object, &path.display().to_string())
                    .map_err(rbac_error)?;
            }
            objects
        } else {
            Vec::new()
        };
        let network_problem = network::problem(&objects, &policy, &requirements);
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| ApiserverError::Bind {
                addr: listen,
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| ApiserverError::Bind {
                addr: listen,
                source,
            })?;
        let state = Arc::new(ApiState {
            cluster,
            registry,
            started_at: Utc::now(),
            addr,
            policy,
            requirements,
            network_problem,
            refused_logged: Default::default(),
        });
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let task = tokio::spawn(serve(listener, acceptor, router(state)));
        tracing::info!(%addr, "apiserver emulator started");
        Ok(Apiserver { addr, task })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

async fn serve(listener: TcpListener, acceptor: tokio_rustls::TlsAcceptor, router: Router) {
    // Connections live in this set so that dropping the server ends them too.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(%error, "apiserver emulator accept failed");
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let router = router.clone();
                connections.spawn(async move {
                    let tls = match acceptor.accept(tcp).await {
                        Ok(tls) => tls,
                        Err(error) => {
                            tracing::info!(%peer, %error, "apiserver emulator refused a TLS client");
                            return;
                        }
                    };
                    // The verifier required a certificate of the cluster CA; who it names is
                    // the caller.
                    let caller = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|chain| chain.first())
                        .ok_or_else(|| "no client certificate".to_owned())
                        .and_then(|certificate| UserInfo::from_certificate_der(certificate));
                    let service =
                        TowerToHyperService::new(router.layer(axum::Extension(Caller(caller))));
                    let served = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                    if let Err(error) = served {
                        tracing::debug!(%peer, %error, "apiserver emulator connection ended");
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

fn tls_config(assets_dir: &Path) -> Result<rustls::ServerConfig, ApiserverError> {
    let ca_path = assets_dir.join("tls/ca.crt");
    let cert_path = assets_dir.join("tls/apiserver.crt");
    let key_path = assets_dir.join("tls/apiserver.key");
    let certificates = |path: &Path| -> Result<Vec<CertificateDer<'static>>, ApiserverError> {
        let certificates = CertificateDer::pem_file_iter(path)
            .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
            .map_err(|error| ApiserverError::Asset {
                path: path.to_owned(),
                reason: error.to_string(),
            })?;
        if certificates.is_empty() {
            return Err(ApiserverError::Asset {
                path: path.to_owned(),
                reason: "holds no PEM certificate".to_owned(),
            });
        }
        Ok(certificates)
    };
    let mut roots = rustls::RootCertStore::empty();
    for ca in certificates(&ca_path)? {
        roots.add(ca).map_err(|error| ApiserverError::Asset {
            path: ca_path.clone(),
            reason: format!("not a usable CA certificate: {error}"),
        })?;
    }
    let chain = certificates(&cert_path)?;
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|error| ApiserverError::Asset {
        path: key_path.clone(),
        reason: format!("no PEM private key: {error}"),
    })?;

    let tls_error = |error: &dyn std::fmt::Display| ApiserverError::Tls {
        assets: assets_dir.to_owned(),
        reason: error.to_string(),
    };
    // One provider, chosen explicitly, so the emulator never depends on a process-wide default.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|error| tls_error(&error))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| tls_error(&error))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|error| tls_error(&error))?;
    // HTTP/1.1 only: every kubectl speaks it, and it keeps the emulator small.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/healthz", get(ok))
        .route("/livez", get(ok))
        .route("/readyz", get(ok))
        .route("/version", get(version))
        .route("/api", get(api_versions))
        .route("/apis", get(api_groups))
        .route("/api/v1", get(api_resources))
        .route("/api/v1/nodes", get(list_nodes))
        .route("/api/v1/nodes/{name}", get(get_node))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authorize,
        ))
        .with_state(state)
}

/// Authorizes the request by the caller's certificate, as the apiserver's filter chain does
/// before any handler runs.
async fn authorize(
    State(state): State<Arc<ApiState>>,
    axum::Extension(Caller(caller)): axum::Extension<Caller>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let user = match caller {
        Ok(user) => user,
        Err(reason) => {
            tracing::info!(%reason, "apiserver emulator cannot authenticate a client");
            return json_response(
                StatusCode::UNAUTHORIZED,
                objects::status(401, "Unauthorized", "Unauthorized"),
            );
        }
    };
    let attributes = request_attributes(
        request.method(),
        request.uri().path(),
        request.uri().query().unwrap_or_default(),
    );
    match state.policy.authorize(&user, &attributes) {
        rbac::Decision::Allowed => next.run(request).await,
        rbac::Decision::Denied { reason } => {
            tracing::info!(user = %user.name, request = %attributes, "apiserver emulator forbade a request");
            json_response(
                StatusCode::FORBIDDEN,
                rbac::forbidden_status(&user, &attributes, &reason),
            )
        }
    }
}

/// The authorization attributes of a request, as the apiserver's `RequestInfoFactory` reads
/// them: `/api/v1/...` and `/apis/<group>/<version>/...` with an optional
/// `namespaces/<ns>/` are resource requests, everything else a non-resource path.
fn request_attributes(method: &axum::http::Method, path: &str, query: &str) -> rbac::Request {
    use axum::http::Method;
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match segments.as_slice() {
        ["api", _version, rest @ ..] if !rest.is_empty() => ("", rest),
        ["apis", group, _version, rest @ ..] if !rest.is_empty() => (*group, rest),
        _ => {
            return rbac::Request::NonResource {
                verb: method.as_str().to_ascii_lowercase(),
                path: path.to_owned(),
            };
        }
    };
    let (namespace, rest) = match rest {
        ["namespaces", namespace, rest @ ..] if !rest.is_empty() => (*namespace, rest),
        _ => ("", rest),
    };
    let resource = rest.first().copied().unwrap_or_default();
    let name = rest.get(1).copied().unwrap_or_default();
    let subresource = rest.get(2).copied().unwrap_or_default();
    let watch = query
        .split('&')
        .any(|pair| pair == "watch=true" || pair == "watch=1");
    let verb = match *method {
        Method::GET | Method::HEAD if name.is_empty() && watch => "watch",
        Method::GET | Method::HEAD if name.is_empty() => "list",
        Method::GET | Method::HEAD => "get",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if name.is_empty() => "deletecollection",
        Method::DELETE => "delete",
        _ => "",
    };
    rbac::ResourceRequest::new(verb, group, resource)
        .in_namespace(namespace)
        .named(name)
        .subresource(subresource)
        .into()
}

async fn ok() -> &'static str {
    "ok"
}

async fn version() -> Response {
    json_response(StatusCode::OK, objects::version())
}

async fn api_versions(State(state): State<Arc<ApiState>>) -> Response {
    json_response(StatusCode::OK, objects::api_versions(state.addr))
}

async fn api_groups() -> Response {
    json_response(StatusCode::OK, objects::api_groups())
}

async fn api_resources() -> Response {
    json_response(StatusCode::OK, objects::core_v1_resources())
}

async fn list_nodes(
    State(state): State<Arc<ApiState>>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let selector = query.get("labelSelector").map(String::as_str).unwrap_or("");
    let nodes: Vec<Value> = ready_kubelets(&state)
        .iter()
        .filter(|kubelet| objects::selector_matches(selector, &objects::node_labels(kubelet)))
        .map(|kubelet| objects::node(kubelet, state.network_problem.as_deref()))
        .collect();
    if wants_table(&headers) {
        json_response(
            StatusCode::OK,
            objects::node_table(&nodes, state.started_at),
        )
    } else {
        json_response(StatusCode::OK, objects::node_list(nodes))
    }
}

async fn get_node(
    State(state): State<Arc<ApiState>>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let Some(node) = ready_kubelets(&state)
        .iter()
        .find(|kubelet| kubelet.node_name == name)
        .map(|kubelet| objects::node(kubelet, state.network_problem.as_deref()))
    else {
        return json_response(
            StatusCode::NOT_FOUND,
            objects::status_not_found("nodes", &name),
        );
    };
    if wants_table(&headers) {
        json_response(
            StatusCode::OK,
            objects::node_table(&[node], state.started_at),
        )
    } else {
        json_response(StatusCode::OK, node)
    }
}

async fn not_found(uri: axum::http::Uri) -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        objects::status(
            404,
            "NotFound",
            &format!(
                "the server could not find the requested resource ({})",
                uri.path()
            ),
        ),
    )
}

/// The kubelets that registered their Node: configured for this cluster, and allowed to.
fn ready_kubelets(state: &ApiState) -> Vec<Kubelet> {
    state
        .registry
        .snapshot()
        .into_iter()
        .filter(|kubelet| {
            let Some(kubeconfig) = kubelet.kubeconfig.as_deref() else {
                return false;
            };
            if !state.cluster.admits_kubelet(kubeconfig) {
                return false;
            }
            match registration_refusal(state, &kubelet.node_name, kubeconfig) {
                None => true,
                Some(refusal) => {
                    let first = state
                        .refused_logged
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .insert(kubelet.node_name.clone());
                    if first {
                        tracing::warn!(node = %kubelet.node_name, "kubelet cannot register: {refusal}");
                    }
                    false
                }
            }
        })
        .collect()
}

/// Why the kubelet with this kubeconfig cannot register its node, or `None` if it can.
fn registration_refusal(state: &ApiState, node: &str, kubeconfig: &str) -> Option<String> {
    let user = match cluster::kubeconfig_client_certificate(kubeconfig)
        .ok_or_else(|| "its kubeconfig has no client certificate".to_owned())
        .and_then(|pem| UserInfo::from_certificate_pem(&pem))
    {
        Ok(user) => user,
        Err(reason) => return Some(reason),
    };
    let needs = match state.requirements.identity("kubelet-registration") {
        Ok(identity) => identity.requests(node),
        Err(error) => return Some(error.to_string()),
    };
    needs
        .iter()
        .find_map(|request| match state.policy.authorize(&user, request) {
            rbac::Decision::Allowed => None,
            rbac::Decision::Denied { reason } => Some(
                rbac::forbidden_status(&user, request, &reason)["message"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            ),
        })
}

/// kubectl asks for a server-side Table (`as=Table;g=meta.k8s.io`) and falls back to JSON.
fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|accept| accept.contains("as=Table") && accept.contains("g=meta.k8s.io"))
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use axum::http::Method;

    use super::*;
    use crate::judge::rbac::{Request, ResourceRequest};

    #[test]
    fn request_attributes_follow_the_apiservers_request_info() {
        let attributes =
            |method: Method, path: &str, query: &str| request_attributes(&method, path, query);
        assert_eq!(
            attributes(Method::GET, "/api/v1/nodes", ""),
            Request::from(ResourceRequest::new("list", "", "nodes"))
        );
        assert_eq!(
            attributes(Method::GET, "/api/v1/nodes", "watch=true&resourceVersion=1"),
            Request::from(ResourceRequest::new("watch", "", "nodes"))
        );
        assert_eq!(
            attributes(Method::PATCH, "/api/v1/nodes/n1/status", ""),
            Request::from(
                ResourceRequest::new("patch", "", "nodes")
                    .named("n1")
                    .subresource("status")
            )
        );
        assert_eq!(
            attributes(
                Method::PUT,
                "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1",
                ""
            ),
            Request::from(
                ResourceRequest::new("update", "coordination.k8s.io", "leases")
                    .in_namespace("kube-node-lease")
                    .named("n1")
            )
        );
        assert_eq!(
            attributes(Method::GET, "/api/v1/namespaces/kube-system", ""),
            Request::from(ResourceRequest::new("get", "", "namespaces").named("kube-system"))
        );
        assert_eq!(
            attributes(Method::DELETE, "/api/v1/namespaces/d/pods", ""),
            Request::from(ResourceRequest::new("deletecollection", "", "pods").in_namespace("d"))
        );
        for path in [
            "/api",
            "/api/v1",
            "/apis",
            "/apis/apps/v1",
            "/healthz",
            "/version",
        ] {
            assert_eq!(
                attributes(Method::GET, path, ""),
                Request::NonResource {
                    verb: "get".to_owned(),
                    path: path.to_owned()
                },
                "{path}"
            );
        }
    }
}
