//! A Kubernetes apiserver emulator: what bootkube leaves running on controller 0, as far as loko
//! and `kubectl get nodes` can tell.
//!
//! It serves HTTPS with the apiserver certificate and key that were copied to the controller, and
//! admits only clients whose certificate chains to the copied cluster CA (the TLS handshake fails
//! for everyone else, as the real apiserver's `--client-ca-file` makes it). It answers the health
//! endpoints, `/version`, the discovery documents kubectl reads, and `/api/v1/nodes`.
//!
//! Nodes come from a [`KubeletRegistry`]: a node is listed, Ready, when its kubelet kubeconfig
//! names this cluster's apiserver (the host of the admin kubeconfig's server, or its
//! `<cluster>-private` variant) and carries this cluster's CA inline. A kubelet configured for
//! another cluster never shows up, which is how a mixed-up Ignition gets caught.

mod cluster;
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
}

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
                let service = TowerToHyperService::new(router.clone());
                connections.spawn(async move {
                    let tls = match acceptor.accept(tcp).await {
                        Ok(tls) => tls,
                        Err(error) => {
                            tracing::info!(%peer, %error, "apiserver emulator refused a TLS client");
                            return;
                        }
                    };
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
    let nodes: Vec<Value> = ready_kubelets(&state)
        .iter()
        .filter(|kubelet| objects::selector_matches(selector, &objects::node_labels(kubelet)))
        .map(objects::node)
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
        .map(objects::node)
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

fn ready_kubelets(state: &ApiState) -> Vec<Kubelet> {
    state
        .registry
        .snapshot()
        .into_iter()
        .filter(|kubelet| {
            kubelet
                .kubeconfig
                .as_deref()
                .is_some_and(|kubeconfig| state.cluster.admits_kubelet(kubeconfig))
        })
        .collect()
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
