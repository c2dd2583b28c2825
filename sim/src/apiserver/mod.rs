//! A Kubernetes apiserver emulator: what a controller's static kube-apiserver pod serves, as
//! far as loko and `kubectl get nodes` can tell. A node starts one when its kubelet would start
//! a valid static apiserver pod (`crate::judge::pod`), from the files that pod's flags name.
//!
//! It serves HTTPS with the pod's `--tls-cert-file` and `--tls-private-key-file`, and admits
//! only clients whose certificate chains to its `--client-ca-file` (the TLS handshake fails for
//! everyone else, as the real apiserver's makes it). It answers the health endpoints,
//! `/version`, the discovery documents kubectl reads, `/api/v1/nodes`, and server-side apply
//! (`PATCH` with `application/apply-patch+yaml`) and `GET` of single objects of the resources it
//! knows (`store`): built-in kinds, and custom resources once their definition is stored. An
//! applied CustomResourceDefinition is validated as apiextensions validates it (`crd`), and a
//! custom resource by its definition's schema (`custom_resource`); a refusal is the apiserver's
//! `Status` in its words (`field`).
//! Objects are kept per cluster (the apiservers naming the same `--etcd-servers` share them),
//! so every controller's apiserver serves what was applied through any of them, also after a
//! reboot.
//!
//! Every request is authorized as the real apiserver's x509 authenticator and RBAC authorizer
//! would: the client certificate's CN is the user and its O values the groups, judged by
//! [`crate::judge::rbac`] against Kubernetes' bootstrap policy plus the RBAC objects applied so
//! far. A refused request gets the apiserver's 403 `Status` (`nodes is forbidden: User "x"
//! cannot list resource "nodes" in API group "" at the cluster scope`).
//!
//! Nodes come from a [`KubeletRegistry`]: a node is listed when its kubelet kubeconfig names a
//! server the serving certificate is valid for, carries the cluster's CA inline, and its client
//! certificate's identity may do what registering a node and renewing its lease take. A kubelet
//! configured for another cluster, or one the RBAC objects do not let in, never shows up. A
//! listed node is Ready only when the applied network DaemonSet (calico-node or flannel) exists
//! with its service account, its service account may make every request its upstream role
//! holds, and (Calico) every CRD its version ships is there; otherwise the Ready condition is
//! False and its message says why.
//!
//! Pods are not stored but derived (`pods`): what the applied DaemonSets and Deployments would
//! run on the registered nodes, each judged by what its container would do there (CoreDNS by
//! its Corefile and resolv.conf: `coredns`), served by `GET /api/v1/pods` and
//! `/api/v1/namespaces/{ns}/pods`.

mod apply;
mod authorization;
mod bootstrap;
pub(crate) mod cluster;
mod coredns;
mod crd;
mod custom_resource;
mod drain;
mod error;
mod events;
mod field;
mod kubelet;
mod network;
mod objects;
mod pods;
mod registered;
mod state;
mod store;
mod verdict;

pub use bootstrap::authenticate_bootstrap_token;
pub use crd::refusal as definition_refusal;
pub use error::ApiserverError;
pub use events::{ApiEvent, ApiEvents};
pub use kubelet::{Kubelet, KubeletRegistry, Taint};
pub use store::{CsrController, ObjectStore, ObjectStores};

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use chrono::Utc;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::connections::serve_connections;
use crate::judge::rbac::{self, UserInfo};
use apply::object;
use authorization::authorize;
use cluster::ClusterIdentity;
use registered::{current_pods, node_with_changes, ready_kubelets};
use state::{ApiState, Caller, json_response};

/// Port the apiserver listens on, as in the Lokomotive modules.
pub const APISERVER_PORT: u16 = 6443;

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

/// The files and address an apiserver serves with: what its static pod's flags name, as host
/// paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiserverConfig {
    /// `--secure-port` on the node's address.
    pub listen: SocketAddr,
    /// `--tls-cert-file`.
    pub tls_cert: PathBuf,
    /// `--tls-private-key-file`.
    pub tls_key: PathBuf,
    /// `--client-ca-file`.
    pub client_ca: PathBuf,
    /// `Node` in `--authorization-mode`, `NodeRestriction` in `--enable-admission-plugins`.
    pub authorizers: rbac::Authorizers,
    /// `--enable-bootstrap-token-auth`.
    pub bootstrap_token_auth: bool,
}

impl Apiserver {
    /// Serves `store` with the certificates of `config`.
    pub async fn start(
        config: &ApiserverConfig,
        store: Arc<ObjectStore>,
        registry: KubeletRegistry,
    ) -> Result<Apiserver, ApiserverError> {
        let cluster = ClusterIdentity::from_files(&config.tls_cert, &config.client_ca)?;
        let tls = tls_config(config)?;
        let listen = config.listen;
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
            store,
            refused_logged: Default::default(),
            authorizers: config.authorizers,
            bootstrap_token_auth: config.bootstrap_token_auth,
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
    serve_connections(listener, "apiserver emulator", |tcp, peer| {
        let acceptor = acceptor.clone();
        let router = router.clone();
        async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(tls) => tls,
                Err(error) => {
                    tracing::info!(%peer, %error, "apiserver emulator refused a TLS client");
                    return;
                }
            };
            // The verifier required a certificate of the cluster CA; who it names is the caller.
            let caller = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .ok_or_else(|| "no client certificate".to_owned())
                .and_then(|certificate| UserInfo::from_certificate_der(certificate));
            let service = TowerToHyperService::new(router.layer(axum::Extension(Caller(caller))));
            let served = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await;
            if let Err(error) = served {
                tracing::debug!(%peer, %error, "apiserver emulator connection ended");
            }
        }
    })
    .await;
}

fn tls_config(config: &ApiserverConfig) -> Result<rustls::ServerConfig, ApiserverError> {
    let ca_path = config.client_ca.clone();
    let cert_path = config.tls_cert.clone();
    let key_path = config.tls_key.clone();
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
        assets: cert_path.clone(),
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
        .route(
            "/api/v1/nodes/{name}",
            get(get_node)
                .patch(drain::patch_node)
                .delete(drain::delete_node),
        )
        .route("/api/v1/pods", get(list_pods))
        .route(
            "/api/v1/namespaces/{namespace}/pods",
            get(list_namespace_pods),
        )
        .route(
            "/api/v1/namespaces/{namespace}/pods/{name}",
            get(drain::get_pod).fallback(object),
        )
        .route(
            "/api/v1/namespaces/{namespace}/pods/{name}/eviction",
            post(drain::evict_pod),
        )
        .fallback(object)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authorize,
        ))
        .with_state(state)
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
    let network_problem = state.store.derived().network_problem.clone();
    let kubelets = ready_kubelets(&state);
    let changes = state.store.node_changes();
    let nodes: Vec<Value> = kubelets
        .iter()
        .filter(|kubelet| objects::selector_matches(selector, &objects::node_labels(kubelet)))
        .map(|kubelet| node_with_changes(kubelet, network_problem.as_deref(), &changes))
        .collect();
    drop(changes);
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
    let network_problem = state.store.derived().network_problem.clone();
    let kubelets = ready_kubelets(&state);
    let node = kubelets
        .iter()
        .find(|kubelet| kubelet.node_name == name)
        .map(|kubelet| {
            node_with_changes(
                kubelet,
                network_problem.as_deref(),
                &state.store.node_changes(),
            )
        });
    let Some(node) = node else {
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

async fn list_pods(
    State(state): State<Arc<ApiState>>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    pods_response(&state, None, &query, &headers)
}

async fn list_namespace_pods(
    State(state): State<Arc<ApiState>>,
    UrlPath(namespace): UrlPath<String>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    pods_response(&state, Some(&namespace), &query, &headers)
}

/// The pods the cluster runs now (of `namespace`, or all), as a list or kubectl's table;
/// `fieldSelector` as far as `spec.nodeName=<node>` (what a drain lists).
fn pods_response(
    state: &ApiState,
    namespace: Option<&str>,
    query: &BTreeMap<String, String>,
    headers: &HeaderMap,
) -> Response {
    let selector = query.get("labelSelector").map(String::as_str).unwrap_or("");
    let on_node = query.get("fieldSelector").and_then(|fields| {
        fields
            .split(',')
            .find_map(|f| f.strip_prefix("spec.nodeName="))
    });
    let now = Utc::now();
    let pods: Vec<Value> = current_pods(state, on_node)
        .into_iter()
        .filter(|pod| namespace.is_none_or(|ns| pod["metadata"]["namespace"] == ns))
        .filter(|pod| {
            let labels: BTreeMap<String, String> = pod["metadata"]["labels"]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect();
            objects::selector_matches(selector, &labels)
        })
        .collect();
    if wants_table(headers) {
        json_response(StatusCode::OK, objects::pod_table(&pods, now))
    } else {
        json_response(StatusCode::OK, objects::pod_list(pods))
    }
}

/// kubectl asks for a server-side Table (`as=Table;g=meta.k8s.io`) and falls back to JSON.
fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|accept| accept.contains("as=Table") && accept.contains("g=meta.k8s.io"))
}
