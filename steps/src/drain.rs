//! A worker leaves gracefully before its device is deleted (scale down, a pool's type change,
//! a pool scaled to 0), as Cluster API's machine controller drains a Machine's node
//! (`internal/controllers/machine/drain/drain.go`) and as `kubectl drain` does
//! (`staging/src/k8s.io/kubectl/pkg/drain/drain.go`): the node is cordoned, every pod on it
//! that is neither a DaemonSet's (its controller would put it back) nor a static pod's mirror
//! (the kubelet owns it) is evicted through `policy/v1` Eviction, which honours the pods'
//! PodDisruptionBudgets, and once those pods are gone the Node object is deleted.
//!
//! A 429 answer means a budget forbids the eviction for now: it is asked again each poll until
//! the drain timeout, and then the step fails naming each pod that could not go and the
//! budget's words. A Node that does not exist (never registered, already deleted) has nothing
//! to drain. An apiserver that cannot be reached at all (the cluster is down) fails the step
//! retryably with the hint that `--skip-drain` deletes without draining.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use engine::{StepContext, StepError};
use journal::StepId;
use reqwest::StatusCode;
use serde_json::Value;

use crate::kinds::DrainOutputs;
use crate::readiness::{admin_client, controller_addrs};

/// The annotation the kubelet puts on a static pod's mirror (`kubetypes.ConfigMirrorAnnotationKey`).
const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// Drains one worker's node through the API.
pub struct DrainStep {
    /// `<cluster>.<dns_zone>`, or the spec's `api_address`.
    pub api_name: String,
    pub port: u16,
    /// Where the controllers' public IPs come from (device step, output key).
    pub controllers: Vec<StepId>,
    /// The node (its hostname).
    pub node: String,
    /// The cluster's asset_dir, holding the admin credentials.
    pub asset_dir: std::path::PathBuf,
    pub poll_every: Duration,
    /// How long evictions a budget refuses are asked again.
    pub timeout: Duration,
    /// `--skip-drain`: the device is deleted without draining its node.
    pub skip: bool,
}

/// Why a drain cannot go on.
#[derive(Debug, thiserror::Error)]
enum DrainError {
    #[error(
        "cannot drain node {node}: the apiserver at {base} cannot be reached ({cause}); `loko run --skip-drain` deletes the device without draining"
    )]
    Unreachable {
        node: String,
        base: String,
        cause: String,
    },
    #[error("cannot drain node {node}: {request} answered {status}: {body}")]
    Refused {
        node: String,
        request: String,
        status: StatusCode,
        body: String,
    },
    #[error(
        "node {node} not drained after {}s: {}; change or delete the budget, or `loko run --skip-drain` deletes the device without draining",
        timeout.as_secs(),
        blocked.iter().map(|(pod, why)| format!("pod {pod}: {why}")).collect::<Vec<_>>().join("; ")
    )]
    Blocked {
        node: String,
        timeout: Duration,
        /// Each pod that could not be evicted (`namespace/name`) and why.
        blocked: BTreeMap<String, String>,
    },
}

impl From<DrainError> for StepError {
    fn from(error: DrainError) -> StepError {
        match error {
            DrainError::Unreachable { .. } => StepError::retryable(error),
            // A budget that forbade every eviction for the whole timeout needs a person.
            DrainError::Blocked { .. } | DrainError::Refused { .. } => StepError::permanent(error),
        }
    }
}

/// A pod on the node, as much as a drain reads.
struct PodOnNode {
    /// `namespace/name`.
    key: String,
    namespace: String,
    name: String,
}

impl DrainStep {
    /// One attempt: cordon, evict until the pods are gone or the timeout, delete the Node.
    pub async fn run(&self, ctx: StepContext) -> Result<DrainOutputs, StepError> {
        if self.skip {
            ctx.progress(format!("{} not drained (--skip-drain)", self.node));
            return Ok(DrainOutputs::NOT_DRAINED);
        }
        let addrs = controller_addrs(&ctx, &self.controllers, self.port)?;
        let client = admin_client(&self.asset_dir, &self.api_name, &addrs)?;
        let base = format!("https://{}:{}", self.api_name, self.port);
        let node_url = format!("{base}/api/v1/nodes/{}", self.node);

        let cordon = client
            .patch(&node_url)
            .header("Content-Type", "application/strategic-merge-patch+json")
            .body(r#"{"spec":{"unschedulable":true}}"#)
            .send()
            .await
            .map_err(|e| self.unreachable(&base, &e))?;
        if cordon.status() == StatusCode::NOT_FOUND {
            ctx.progress(format!("{} has no Node: nothing to drain", self.node));
            return Ok(DrainOutputs::NOT_DRAINED);
        }
        self.expect_success(cordon, "cordon").await?;
        ctx.progress(format!("{} cordoned", self.node));

        let start = Instant::now();
        let mut evicted: BTreeSet<String> = BTreeSet::new();
        // A poll that changes nothing says nothing, as readiness's progress.
        let mut shown = String::new();
        loop {
            let pods = self.pods(&client, &base).await?;
            if pods.is_empty() {
                break;
            }
            let mut blocked = BTreeMap::new();
            for pod in &pods {
                if evicted.contains(&pod.key) {
                    // Evicted: waiting until it is gone.
                    continue;
                }
                match self.evict(&client, &base, pod).await? {
                    None => {
                        evicted.insert(pod.key.clone());
                    }
                    Some(why) => {
                        blocked.insert(pod.key.clone(), why);
                    }
                }
            }
            let line = format!(
                "draining {}: {} pod(s) left{}",
                self.node,
                pods.len(),
                if blocked.is_empty() {
                    String::new()
                } else {
                    format!(", {} refused by a disruption budget", blocked.len())
                }
            );
            if line != shown {
                ctx.progress(line.clone());
                shown = line;
            }
            if start.elapsed() >= self.timeout {
                if blocked.is_empty() {
                    let left = pods
                        .iter()
                        .map(|p| (p.key.clone(), "evicted, still not gone".to_owned()))
                        .collect();
                    return Err(self.blocked(left).into());
                }
                return Err(self.blocked(blocked).into());
            }
            ctx.sleep(self.poll_every).await?;
        }

        let deleted = client
            .delete(&node_url)
            .send()
            .await
            .map_err(|e| self.unreachable(&base, &e))?;
        if deleted.status() != StatusCode::NOT_FOUND {
            self.expect_success(deleted, "delete Node").await?;
        }
        ctx.progress(format!(
            "{} drained: {} pod(s) evicted, its Node deleted",
            self.node,
            evicted.len()
        ));
        Ok(DrainOutputs {
            drained: true,
            pods_evicted: Some(evicted.len()),
        })
    }

    /// The pods on the node a drain evicts: not a DaemonSet's, not a mirror pod.
    async fn pods(
        &self,
        client: &reqwest::Client,
        base: &str,
    ) -> Result<Vec<PodOnNode>, DrainError> {
        let answer = client
            .get(format!("{base}/api/v1/pods"))
            .query(&[("fieldSelector", format!("spec.nodeName={}", self.node))])
            .send()
            .await
            .map_err(|e| self.unreachable(base, &e))?;
        let list = self.expect_success(answer, "list pods").await?;
        Ok(list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|pod| {
                let metadata = &pod["metadata"];
                let daemon = metadata["ownerReferences"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|o| o["kind"] == "DaemonSet" && o["controller"] == true);
                let mirror = metadata["annotations"].get(MIRROR_ANNOTATION).is_some();
                let finished = matches!(
                    pod["status"]["phase"].as_str(),
                    Some("Succeeded" | "Failed")
                );
                !daemon && !mirror && !finished
            })
            .map(|pod| {
                let namespace = pod["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("default")
                    .to_owned();
                let name = pod["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                PodOnNode {
                    key: format!("{namespace}/{name}"),
                    namespace,
                    name,
                }
            })
            .collect())
    }

    /// Evicts `pod`: `None` when it goes (or is gone), else why a budget keeps it.
    async fn evict(
        &self,
        client: &reqwest::Client,
        base: &str,
        pod: &PodOnNode,
    ) -> Result<Option<String>, DrainError> {
        let eviction = serde_json::json!({
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": pod.name, "namespace": pod.namespace},
        });
        let answer = client
            .post(format!(
                "{base}/api/v1/namespaces/{}/pods/{}/eviction",
                pod.namespace, pod.name
            ))
            .json(&eviction)
            .send()
            .await
            .map_err(|e| self.unreachable(base, &e))?;
        match answer.status() {
            StatusCode::NOT_FOUND => Ok(None),
            StatusCode::TOO_MANY_REQUESTS => {
                let status: Value = answer.json().await.unwrap_or(Value::Null);
                Ok(Some(budget_words(&status)))
            }
            _ => self
                .expect_success(answer, &format!("evict pod {}", pod.key))
                .await
                .map(|_| None),
        }
    }

    /// The body of a 2xx answer, else a refusal naming the request.
    async fn expect_success(
        &self,
        answer: reqwest::Response,
        request: &str,
    ) -> Result<Value, DrainError> {
        let status = answer.status();
        let body = answer.text().await.unwrap_or_default();
        if status.is_success() {
            return Ok(serde_json::from_str(&body).unwrap_or(Value::Null));
        }
        let message = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|s| s["message"].as_str().map(str::to_owned))
            .unwrap_or(body);
        Err(DrainError::Refused {
            node: self.node.clone(),
            request: request.to_owned(),
            status,
            body: message,
        })
    }

    fn unreachable(&self, base: &str, error: &reqwest::Error) -> DrainError {
        DrainError::Unreachable {
            node: self.node.clone(),
            base: base.to_owned(),
            cause: crate::error_chain(error),
        }
    }

    fn blocked(&self, blocked: BTreeMap<String, String>) -> DrainError {
        DrainError::Blocked {
            node: self.node.clone(),
            timeout: self.timeout,
            blocked,
        }
    }
}

/// A 429's message and its `DisruptionBudget` causes ("The disruption budget web needs 2
/// healthy pods and has 2 currently"), which name the budget.
fn budget_words(status: &Value) -> String {
    let message = status["message"]
        .as_str()
        .unwrap_or("Too many requests")
        .to_owned();
    let causes: Vec<&str> = status["details"]["causes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|cause| cause["message"].as_str())
        .collect();
    if causes.is_empty() {
        message
    } else {
        format!("{message} ({})", causes.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_names_the_budget_from_its_cause() {
        let status = serde_json::json!({
            "kind": "Status", "code": 429, "reason": "TooManyRequests",
            "message": "Cannot evict pod as it would violate the pod's disruption budget.",
            "details": {"causes": [{"reason": "DisruptionBudget",
                "message": "The disruption budget web needs 2 healthy pods and has 2 currently"}]},
        });
        assert_eq!(
            budget_words(&status),
            "Cannot evict pod as it would violate the pod's disruption budget. (The disruption budget web needs 2 healthy pods and has 2 currently)"
        );
    }
}
