//! Readiness: the apiserver answers and every expected node is Ready.
//!
//! The apiserver is reached by its name (`<cluster>.<dns_zone>`, the name its certificate
//! carries and the admin kubeconfig uses), resolved to the controllers' public IPs that the
//! device steps reported, so waiting does not depend on DNS having propagated to this machine.
//! The client authenticates with the admin certificate and trusts only the cluster's CA.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use engine::{StepContext, StepError};
use journal::{Outputs, StepId};

/// The admin client credentials, read from asset_dir (the key stays in memory only).
pub struct AdminTls {
    pub ca_pem: Vec<u8>,
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl AdminTls {
    /// Reads `tls/ca.crt`, `tls/admin.crt` and `tls/admin.key` of an asset_dir.
    pub fn read(asset_dir: &std::path::Path) -> std::io::Result<AdminTls> {
        let read = |name: &str| {
            let path = asset_dir.join("tls").join(name);
            std::fs::read(&path)
                .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
        };
        Ok(AdminTls {
            ca_pem: read("ca.crt")?,
            cert_pem: read("admin.crt")?,
            key_pem: read("admin.key")?,
        })
    }
}

impl std::fmt::Debug for AdminTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminTls { .. }")
    }
}

/// The controllers' API addresses, from the outputs of their device steps (step, output key).
pub fn controller_addrs(
    ctx: &StepContext,
    controllers: &[(StepId, &'static str)],
    port: u16,
) -> Result<Vec<SocketAddr>, StepError> {
    let mut addrs = Vec::new();
    for (step, key) in controllers {
        let ip: String = ctx.output_of(step)?.get(key)?;
        let ip = ip.parse().map_err(|_| {
            StepError::permanent(format!("{step} published {key}={ip:?}, not an IP address"))
        })?;
        addrs.push(SocketAddr::new(ip, port));
    }
    Ok(addrs)
}

/// A client of the apiserver at `api_name` (resolved to `addrs`), authenticated with the admin
/// certificate of `asset_dir` and trusting only the cluster's CA.
pub fn admin_client(
    asset_dir: &std::path::Path,
    api_name: &str,
    addrs: &[SocketAddr],
) -> Result<reqwest::Client, StepError> {
    let tls = AdminTls::read(asset_dir).map_err(|e| {
        StepError::permanent(format!(
            "cannot read the admin credentials in {}: {e}",
            asset_dir.display()
        ))
    })?;
    let bad = |what: &str, e: reqwest::Error| {
        StepError::permanent(format!("admin credentials in asset_dir: {what}: {e}"))
    };
    let ca = reqwest::Certificate::from_pem(&tls.ca_pem).map_err(|e| bad("tls/ca.crt", e))?;
    let mut identity_pem = tls.cert_pem.clone();
    identity_pem.extend_from_slice(&tls.key_pem);
    let identity = reqwest::Identity::from_pem(&identity_pem)
        .map_err(|e| bad("tls/admin.crt and tls/admin.key", e))?;
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .identity(identity)
        .resolve_to_addrs(api_name, addrs)
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(20))
        .build()
        .map_err(|e| StepError::permanent(format!("cannot build the apiserver client: {e}")))
}

/// Waits until the cluster is usable.
pub struct ReadinessStep {
    /// `<cluster>.<dns_zone>`.
    pub api_name: String,
    pub port: u16,
    /// Where the controllers' public IPs come from (device step, output key).
    pub controllers: Vec<(StepId, &'static str)>,
    /// Hostnames that must be Ready.
    pub expected_nodes: Vec<String>,
    /// The cluster's asset_dir, holding `tls/ca.crt`, `tls/admin.crt` and `tls/admin.key`.
    pub asset_dir: std::path::PathBuf,
    pub poll_every: Duration,
    pub deadline: Duration,
}

#[derive(serde::Deserialize)]
struct NodeList {
    #[serde(default)]
    items: Vec<Node>,
}

#[derive(serde::Deserialize)]
struct Node {
    metadata: Metadata,
    #[serde(default)]
    status: Option<NodeStatus>,
}

#[derive(serde::Deserialize)]
struct Metadata {
    name: String,
}

#[derive(serde::Deserialize)]
struct NodeStatus {
    #[serde(default)]
    conditions: Vec<Condition>,
}

#[derive(serde::Deserialize)]
struct Condition {
    #[serde(rename = "type")]
    kind: String,
    status: String,
}

/// The names of the nodes whose `Ready` condition is `True`.
fn ready_nodes(list: &NodeList) -> BTreeSet<String> {
    list.items
        .iter()
        .filter(|n| {
            n.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.kind == "Ready" && c.status == "True")
            })
        })
        .map(|n| n.metadata.name.clone())
        .collect()
}

impl ReadinessStep {
    /// One attempt: poll until ready or the deadline, naming what is missing.
    pub async fn run(&self, ctx: StepContext) -> Result<Outputs, StepError> {
        let addrs = controller_addrs(&ctx, &self.controllers, self.port)?;
        let client = admin_client(&self.asset_dir, &self.api_name, &addrs)?;
        let base = format!("https://{}:{}", self.api_name, self.port);
        let start = Instant::now();
        let expected: BTreeSet<String> = self.expected_nodes.iter().cloned().collect();
        loop {
            let polled = self.poll(&client, &base).await;
            let last = match polled.clone() {
                Ok(ready) => {
                    let missing: Vec<&String> = expected.difference(&ready).collect();
                    if missing.is_empty() {
                        return Ok(Outputs::new()
                            .with("api_server", &base)?
                            .with("nodes_ready", expected.len())?);
                    }
                    format!(
                        "{} of {} nodes Ready; not Ready: {}",
                        expected.len() - missing.len(),
                        expected.len(),
                        missing
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
                Err(e) => e,
            };
            // An apiserver that does not answer yet is the normal state of a cluster being
            // bootstrapped, not an error: the progress says what is awaited, and the reason
            // goes into the error only if the deadline passes.
            match polled {
                Ok(_) => ctx.progress(last.clone()),
                Err(_) => {
                    tracing::debug!("{last}");
                    ctx.progress(format!("waiting for the apiserver at {base} to answer"));
                }
            }
            if start.elapsed() >= self.deadline {
                return Err(StepError::retryable(format!(
                    "cluster {} not ready after {}s: {last}",
                    self.api_name,
                    self.deadline.as_secs()
                )));
            }
            ctx.sleep(self.poll_every).await?;
        }
    }

    async fn poll(&self, client: &reqwest::Client, base: &str) -> Result<BTreeSet<String>, String> {
        let health = client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .map_err(|e| {
                format!(
                    "the apiserver at {base} does not answer: {}",
                    crate::error_chain(&e)
                )
            })?;
        if !health.status().is_success() {
            return Err(format!(
                "the apiserver's /healthz answers {}",
                health.status()
            ));
        }
        // `resourceVersion=0`: served from the apiserver's watch cache, not a quorum read of
        // etcd; a poll may see a change a moment late, never a state that did not happen.
        let nodes = client
            .get(format!("{base}/api/v1/nodes?resourceVersion=0"))
            .send()
            .await
            .map_err(|e| format!("listing nodes: {}", crate::error_chain(&e)))?;
        if !nodes.status().is_success() {
            return Err(format!("listing nodes: {}", nodes.status()));
        }
        let list: NodeList = nodes
            .json()
            .await
            .map_err(|e| format!("listing nodes: malformed answer: {e}"))?;
        Ok(ready_nodes(&list))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_nodes_with_ready_true_count() {
        let list: NodeList = serde_json::from_str(
            r#"{"items":[
              {"metadata":{"name":"a"},"status":{"conditions":[{"type":"Ready","status":"True"}]}},
              {"metadata":{"name":"b"},"status":{"conditions":[{"type":"Ready","status":"False"}]}},
              {"metadata":{"name":"c"},"status":{"conditions":[{"type":"MemoryPressure","status":"True"}]}},
              {"metadata":{"name":"d"}}]}"#,
        )
        .unwrap();
        assert_eq!(ready_nodes(&list), BTreeSet::from(["a".to_owned()]));
    }
}
