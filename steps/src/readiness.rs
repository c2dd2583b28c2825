//! Readiness: the apiserver answers, every expected node is Ready, and the cluster's own
//! workloads run as `kubectl get pods -n kube-system` shows them: the network's DaemonSet and
//! kube-proxy on every node, CoreDNS's replicas ready. A node can be Ready while CoreDNS
//! crash-loops, and a cluster without DNS is not usable. Each poll lists the nodes once and the
//! pods of kube-system once; when the deadline passes, the error names what does not run and
//! why (the pod's waiting reason, message and last exit).
//!
//! The apiserver is reached by its name (`<cluster>.<dns_zone>` or the spec's `api_address`,
//! the name its certificate carries and the admin kubeconfig uses), resolved to the
//! controllers' public IPs that the device steps reported, so waiting does not depend on DNS
//! having propagated to this machine (an `api_address` that is an IPv4 address is dialed as it
//! is: nothing resolves an address).
//! The client authenticates with the admin certificate and trusts only the cluster's CA.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use engine::{StepContext, StepError};
use journal::StepId;

use crate::assets::manifests::Workload;
use crate::kinds::{DeviceAddress, DeviceKind, ReadyOutputs};

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

/// The controllers' API addresses: the public addresses their device steps published.
pub fn controller_addrs(
    ctx: &StepContext,
    controllers: &[StepId],
    port: u16,
) -> Result<Vec<SocketAddr>, StepError> {
    controllers
        .iter()
        .map(|step| {
            let ip = DeviceKind::address(ctx, step, DeviceAddress::PublicIpv4)?;
            Ok(SocketAddr::new(ip.into(), port))
        })
        .collect()
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
    /// `<cluster>.<dns_zone>`, or the spec's `api_address`.
    pub api_name: String,
    pub port: u16,
    /// Where the controllers' public IPs come from (device step, output key).
    pub controllers: Vec<StepId>,
    /// Hostnames that must be Ready.
    pub expected_nodes: Vec<String>,
    /// The workloads of kube-system that must run.
    pub workloads: Vec<Workload>,
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

/// The pods of a namespace, as much of them as readiness reads.
#[derive(Clone, Debug, serde::Deserialize)]
pub(crate) struct PodList {
    #[serde(default)]
    items: Vec<Pod>,
}

#[derive(Clone, Debug, serde::Deserialize)]
struct Pod {
    metadata: PodMetadata,
    #[serde(default)]
    spec: PodSpec,
    #[serde(default)]
    status: PodStatus,
}

#[derive(Clone, Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodMetadata {
    name: String,
    #[serde(default)]
    labels: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    owner_references: Vec<OwnerReference>,
}

#[derive(Clone, Debug, serde::Deserialize)]
struct OwnerReference {
    kind: String,
    name: String,
}

#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodSpec {
    node_name: Option<String>,
}

#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodStatus {
    phase: Option<String>,
    #[serde(default)]
    conditions: Vec<PodCondition>,
    #[serde(default)]
    container_statuses: Vec<ContainerStatus>,
}

#[derive(Clone, Debug, serde::Deserialize)]
struct PodCondition {
    #[serde(rename = "type")]
    kind: String,
    status: String,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Clone, Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContainerStatus {
    name: String,
    #[serde(default)]
    ready: bool,
    #[serde(default)]
    restart_count: u64,
    #[serde(default)]
    state: ContainerState,
    #[serde(default)]
    last_state: ContainerState,
}

#[derive(Clone, Debug, Default, serde::Deserialize)]
struct ContainerState {
    waiting: Option<StateDetail>,
    terminated: Option<StateDetail>,
}

#[derive(Clone, Debug, serde::Deserialize)]
struct StateDetail {
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

impl Pod {
    fn ready(&self) -> bool {
        self.status
            .conditions
            .iter()
            .any(|c| c.kind == "Ready" && c.status == "True")
    }

    fn owned_by_daemon_set(&self, name: &str) -> bool {
        self.metadata
            .owner_references
            .iter()
            .any(|owner| owner.kind == "DaemonSet" && owner.name == name)
    }

    /// Why it is not ready, as `kubectl describe pod` would tell: the first container not
    /// ready (its waiting reason, message and last exit), else the pod's conditions.
    fn why(&self) -> String {
        let place = match &self.spec.node_name {
            Some(node) => format!("{} on {node}", self.metadata.name),
            None => format!("{} (not scheduled)", self.metadata.name),
        };
        let container = self.status.container_statuses.iter().find(|c| !c.ready);
        if let Some(container) = container
            && let Some(waiting) = &container.state.waiting
        {
            let mut why = format!(
                "{place}: {} {}",
                container.name,
                waiting.reason.as_deref().unwrap_or("waiting")
            );
            if container.restart_count > 0 {
                why.push_str(&format!(" ({} restarts)", container.restart_count));
            }
            // A crash loop's cause is its last exit; the kubelet's back-off line says less.
            let last_exit = container
                .last_state
                .terminated
                .as_ref()
                .and_then(|t| t.message.as_deref())
                .filter(|m| !m.is_empty());
            match (
                last_exit,
                waiting.message.as_deref().filter(|m| !m.is_empty()),
            ) {
                (Some(last), _) => why.push_str(&format!(", last exit: {}", last.trim())),
                (None, Some(message)) => why.push_str(&format!(": {message}")),
                (None, None) => {}
            }
            return why;
        }
        let condition =
            self.status.conditions.iter().find(|c| {
                c.status != "True" && c.message.as_deref().is_some_and(|m| !m.is_empty())
            });
        match condition {
            Some(c) => format!(
                "{place}: {} {}",
                c.kind,
                c.message.as_deref().unwrap_or_default()
            ),
            None => format!(
                "{place}: {}, not ready",
                self.status.phase.as_deref().unwrap_or("Unknown")
            ),
        }
    }
}

/// The progress line of a poll: how many nodes are Ready and which workloads do not run yet,
/// without the reasons (the error names them if the deadline passes).
fn summary(
    expected: &BTreeSet<String>,
    ready: &BTreeSet<String>,
    pods: &PodList,
    step: &ReadinessStep,
) -> String {
    let mut line = format!(
        "{} of {} nodes Ready",
        expected.intersection(ready).count(),
        expected.len()
    );
    let waiting: Vec<String> = not_running(pods, &step.workloads, &step.expected_nodes)
        .iter()
        .filter_map(|problem| problem.split(':').next().map(str::to_owned))
        .collect();
    if !waiting.is_empty() {
        line.push_str(&format!("; waiting for {}", waiting.join(", ")));
    }
    line
}

/// What of `workloads` does not run, on `nodes`, by the pods listed: one entry per workload.
fn not_running(pods: &PodList, workloads: &[Workload], nodes: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    for workload in workloads {
        match workload {
            Workload::EveryNode { name } => {
                let mut missing = Vec::new();
                for node in nodes {
                    let pod = pods.items.iter().find(|pod| {
                        pod.owned_by_daemon_set(name) && pod.spec.node_name.as_ref() == Some(node)
                    });
                    match pod {
                        Some(pod) if pod.ready() => {}
                        Some(pod) => missing.push(pod.why()),
                        None => missing.push(format!("no pod on {node}")),
                    }
                }
                if !missing.is_empty() {
                    problems.push(format!("{name}: {}", missing.join(", ")));
                }
            }
            Workload::Replicas { name, replicas } => {
                let own: Vec<&Pod> = pods
                    .items
                    .iter()
                    .filter(|pod| {
                        pod.metadata.labels.get("k8s-app").map(String::as_str) == Some(name)
                    })
                    .collect();
                let ready = own.iter().filter(|pod| pod.ready()).count();
                if ready < *replicas as usize {
                    let mut problem = format!("{name}: {ready} of {replicas} ready");
                    let why: Vec<String> = own
                        .iter()
                        .filter(|pod| !pod.ready())
                        .map(|pod| pod.why())
                        .collect();
                    if !why.is_empty() {
                        problem.push_str(&format!(": {}", why.join(", ")));
                    }
                    problems.push(problem);
                }
            }
        }
    }
    problems
}

impl ReadinessStep {
    /// One attempt: poll until ready or the deadline, naming what is missing.
    pub async fn run(&self, ctx: StepContext) -> Result<ReadyOutputs, StepError> {
        let addrs = controller_addrs(&ctx, &self.controllers, self.port)?;
        let client = admin_client(&self.asset_dir, &self.api_name, &addrs)?;
        let base = format!("https://{}:{}", self.api_name, self.port);
        let start = Instant::now();
        let expected: BTreeSet<String> = self.expected_nodes.iter().cloned().collect();
        // A poll that changes nothing says nothing: the line stands until the state changes.
        let mut shown = String::new();
        loop {
            let polled = self.poll(&client, &base).await;
            let last = match polled.clone() {
                Ok((ready, pods)) => {
                    let missing: Vec<&String> = expected.difference(&ready).collect();
                    let not_running = not_running(&pods, &self.workloads, &self.expected_nodes);
                    if missing.is_empty() && not_running.is_empty() {
                        return Ok(ReadyOutputs {
                            api_server: base,
                            nodes_ready: expected.len(),
                        });
                    }
                    let mut state = format!(
                        "{} of {} nodes Ready",
                        expected.len() - missing.len(),
                        expected.len()
                    );
                    if !missing.is_empty() {
                        let names: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
                        state.push_str(&format!("; not Ready: {}", names.join(", ")));
                    }
                    if !not_running.is_empty() {
                        state.push_str(&format!("; not running: {}", not_running.join("; ")));
                    }
                    state
                }
                Err(e) => e,
            };
            // An apiserver that does not answer yet is the normal state of a cluster being
            // bootstrapped, not an error: the progress says what is awaited, and the reason
            // goes into the error only if the deadline passes.
            let line = match &polled {
                Ok((ready, pods)) => summary(&expected, ready, pods, self),
                Err(_) => {
                    tracing::debug!("{last}");
                    format!("waiting for the apiserver at {base} to answer")
                }
            };
            if line != shown {
                ctx.progress(line.clone());
                shown = line;
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

    async fn poll(
        &self,
        client: &reqwest::Client,
        base: &str,
    ) -> Result<(BTreeSet<String>, PodList), String> {
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
        let pods = client
            .get(format!(
                "{base}/api/v1/namespaces/kube-system/pods?resourceVersion=0"
            ))
            .send()
            .await
            .map_err(|e| format!("listing pods: {}", crate::error_chain(&e)))?;
        if !pods.status().is_success() {
            return Err(format!("listing pods: {}", pods.status()));
        }
        let pods: PodList = pods
            .json()
            .await
            .map_err(|e| format!("listing pods: malformed answer: {e}"))?;
        Ok((ready_nodes(&list), pods))
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

    /// Pods as `kubectl get pods -n kube-system -o json` lists them: kube-proxy on one node
    /// only, CoreDNS's two replicas crash-looping on its forwarding loop.
    const PODS: &str = r#"{"items":[
      {"metadata":{"name":"kube-proxy-a","labels":{"k8s-app":"kube-proxy"},"ownerReferences":[{"kind":"DaemonSet","name":"kube-proxy"}]},
       "spec":{"nodeName":"c0"},"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}},
      {"metadata":{"name":"coredns-x-1","labels":{"k8s-app":"coredns"},"ownerReferences":[{"kind":"ReplicaSet","name":"coredns-x"}]},
       "spec":{"nodeName":"c0"},"status":{"phase":"Running","conditions":[{"type":"Ready","status":"False"}],
       "containerStatuses":[{"name":"coredns","ready":false,"restartCount":3,
         "state":{"waiting":{"reason":"CrashLoopBackOff","message":"back-off 40s restarting failed container=coredns"}},
         "lastState":{"terminated":{"exitCode":1,"message":"[FATAL] plugin/loop: Loop (10.0.0.1:40000 -> :53) detected for zone \".\""}}}]}},
      {"metadata":{"name":"coredns-x-2","labels":{"k8s-app":"coredns"}},
       "spec":{},"status":{"phase":"Pending","conditions":[{"type":"PodScheduled","status":"False","message":"0/2 nodes are available"}]}}]}"#;

    #[test]
    fn what_does_not_run_is_named_with_the_reason() {
        let pods: PodList = serde_json::from_str(PODS).unwrap();
        let workloads = [
            Workload::EveryNode { name: "kube-proxy" },
            Workload::Replicas {
                name: "coredns",
                replicas: 2,
            },
        ];
        let nodes = ["c0".to_owned(), "w0".to_owned()];
        assert_eq!(
            not_running(&pods, &workloads, &nodes),
            vec![
                "kube-proxy: no pod on w0".to_owned(),
                "coredns: 0 of 2 ready: coredns-x-1 on c0: coredns CrashLoopBackOff (3 restarts), last exit: [FATAL] plugin/loop: Loop (10.0.0.1:40000 -> :53) detected for zone \".\", coredns-x-2 (not scheduled): PodScheduled 0/2 nodes are available".to_owned(),
            ]
        );
        assert!(not_running(&pods, &workloads[..1], &nodes[..1]).is_empty());
    }
}
