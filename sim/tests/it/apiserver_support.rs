//! Starting an apiserver emulator for a test cluster of `nodes_support`: its store holding the
//! cluster's manifests, and the authorizers and bootstrap token authentication its flags would
//! enable.

use std::net::SocketAddr;

use crate::nodes_support::{Cluster, ZONE};

/// Starts an apiserver emulator with the certificates of `cluster` on `listen`, its store (in
/// the cluster's directory) holding the objects of the cluster's `manifests/`, as an apply of
/// them leaves it.
pub async fn start_apiserver(
    cluster: &Cluster,
    listen: SocketAddr,
    registry: sim::apiserver::KubeletRegistry,
) -> Result<sim::apiserver::Apiserver, sim::apiserver::ApiserverError> {
    let store = fresh_store(cluster);
    start_apiserver_with(cluster, listen, registry, store, Default::default(), false).await
}

/// A fresh etcd for `cluster`: what its `manifests/` hold now, nothing an earlier start
/// applied.
pub fn fresh_store(cluster: &Cluster) -> std::sync::Arc<sim::apiserver::ObjectStore> {
    let file = cluster.assets.join("../etcd/objects.json");
    let _ = std::fs::remove_file(&file);
    let store =
        std::sync::Arc::new(sim::apiserver::ObjectStore::open(file).expect("an object store"));
    let manifests = cluster.assets.join("manifests");
    if manifests.is_dir() {
        for (path, object) in sim::judge::rbac::manifest_objects(&manifests).expect("manifests") {
            store
                .create(object)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
    }
    store
}

/// Starts an apiserver emulator for `cluster` serving `store`, with the Node authorizer and
/// NodeRestriction as `authorizers` say and `--enable-bootstrap-token-auth` if
/// `bootstrap_token_auth`.
pub async fn start_apiserver_with(
    cluster: &Cluster,
    listen: SocketAddr,
    registry: sim::apiserver::KubeletRegistry,
    store: std::sync::Arc<sim::apiserver::ObjectStore>,
    authorizers: sim::judge::rbac::Authorizers,
    bootstrap_token_auth: bool,
) -> Result<sim::apiserver::Apiserver, sim::apiserver::ApiserverError> {
    let config = sim::apiserver::ApiserverConfig {
        listen,
        tls_cert: cluster.assets.join("tls/apiserver.crt"),
        tls_key: cluster.assets.join("tls/apiserver.key"),
        client_ca: cluster.assets.join("tls/ca.crt"),
        authorizers,
        bootstrap_token_auth,
    };
    sim::apiserver::Apiserver::start(&config, store, registry).await
}

/// The `--etcd-servers` of `cluster`'s static apiserver pods.
pub fn etcd_servers(cluster: &Cluster) -> String {
    format!("https://{}-etcd0.{ZONE}:2379", cluster.name)
}
