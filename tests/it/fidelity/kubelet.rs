//! Each kubelet's identity, as TLS bootstrap makes it from what loko renders: the bootstrap
//! token of the kubeconfig every node's Ignition writes authenticates by the token Secret the
//! bootstrap step applies (judged by the simulator's bootstrap token authenticator); its
//! requester may create and have approved a node client CSR; the resulting
//! `system:node:<hostname>` may register, heartbeat and renew, through the Node authorizer and
//! NodeRestriction the rendered apiserver enables, and may not touch another node.

use std::path::Path;

use sim::judge::rbac::node_user;

use super::rbac::{EXAMPLES, Judge, NODE_KUBECONFIG};
use loko_tests::rendered::Rendered;

/// The bootstrap token of the kubeconfig the Ignition of `hostname` writes at `path`.
fn node_bootstrap_token(rendered: &Rendered, hostname: &str, path: &str) -> Result<String, String> {
    let kubeconfig = rendered
        .file(hostname, path)
        .ok_or_else(|| format!("its Ignition writes no {path}"))?;
    let document: serde_yaml::Value = serde_yaml::from_slice(&kubeconfig)
        .map_err(|e| format!("{path} is not a kubeconfig: {e}"))?;
    let user = &document["users"][0]["user"];
    if user.get("client-key-data").is_some() {
        return Err(format!(
            "{path} holds a client key: every node would share one identity"
        ));
    }
    user["token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("{path} holds no bootstrap token"))
}

/// An object store holding what the bootstrap step applies: the manifests and the token Secret.
fn applied_store(judge: &Judge, dir: &Path) -> sim::apiserver::ObjectStore {
    let store = sim::apiserver::ObjectStore::open(dir.join("objects.json")).expect("a store");
    for object in &judge.objects {
        store.create(object.clone()).expect("store an object");
    }
    let asset_dir = steps::assets::AssetDir::create(&judge.rendered.root).expect("asset dir");
    let token = steps::assets::bootstrap_token::read_token(&asset_dir)
        .expect("read the token")
        .expect("the kubeconfigs step issued a token");
    store
        .create(token.secret_object())
        .expect("store the token Secret");
    store
}

#[test]
fn every_kubelet_bootstraps_its_own_identity_and_may_register_and_renew_it() {
    let mut failures = Vec::new();
    for example in EXAMPLES {
        let judge = Judge::new(example);
        let flags = judge.apiserver_flags();
        if !flags
            .iter()
            .any(|f| f == "--enable-bootstrap-token-auth=true")
        {
            failures.push(format!(
                "{example}: kube-apiserver runs without --enable-bootstrap-token-auth: no kubelet can bootstrap"
            ));
        }
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = applied_store(&judge, tmp.path());
        for node in &judge.rendered.cluster.nodes {
            let host = &node.hostname;
            let token = match node_bootstrap_token(&judge.rendered, host, NODE_KUBECONFIG) {
                Ok(token) => token,
                Err(reason) => {
                    failures.push(format!("{example}: {host}: {reason}"));
                    continue;
                }
            };
            let requester = match sim::apiserver::authenticate_bootstrap_token(
                &store,
                &token,
                chrono::Utc::now(),
            ) {
                Ok(user) => user,
                Err(reason) => {
                    failures.push(format!("{example}: {host}: Unauthorized: {reason}"));
                    continue;
                }
            };
            for identity in ["kubelet-bootstrap", "csr-approval-nodeclient"] {
                failures.extend(
                    judge
                        .refusals(identity, &requester, host)
                        .map(|r| format!("{example}: {host} ({identity}): {r}")),
                );
            }
            let node = node_user(host);
            for identity in ["kubelet-registration", "csr-approval-selfnodeclient"] {
                failures.extend(
                    judge
                        .refusals(identity, &node, host)
                        .map(|r| format!("{example}: {host} ({identity}): {r}")),
                );
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn one_nodes_identity_cannot_change_another_node() {
    let judge = Judge::new("tutorial.yaml");
    let nodes = &judge.rendered.cluster.nodes;
    let (a, b) = (&nodes[0].hostname, &nodes[1].hostname);
    let refusal = judge.refusals("kubelet-registration", &node_user(a), b);
    assert!(
        refusal.as_deref().is_some_and(|r| r.contains(b.as_str())),
        "{a} must not register or update {b}: {refusal:?}"
    );
}
