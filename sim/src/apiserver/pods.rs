//! The pods the cluster would run, as `kubectl get pods -A` shows them: a pod of each applied
//! DaemonSet on every registered node it tolerates, `replicas` pods of each Deployment on Ready
//! nodes that tolerate them, each judged by what its container would do there.
//!
//! Scheduling follows the scheduler's filters that matter here: a pod must tolerate every
//! `NoSchedule` and `NoExecute` taint of its node (the kubelet's `--register-with-taints`, and
//! `node.kubernetes.io/not-ready:NoSchedule`, which the node lifecycle controller puts on a
//! node that is not Ready), and match its `nodeSelector`. A DaemonSet's pods get the
//! tolerations its controller adds (`AddOrUpdateDaemonPodTolerations`,
//! `pkg/controller/daemon/util/daemonset_util.go`). A Deployment's replicas go to the nodes
//! its preferred node affinity prefers first, one per node while there are nodes (the
//! scheduler's spreading of a ReplicaSet's pods), and stay where they were bound until evicted.
//!
//! A pod's resolver follows its `dnsPolicy` as the kubelet sets it (`getPodDNSType` and
//! `GetPodDNS`, `pkg/kubelet/network/dns/dns.go`): `ClusterFirst` (the default) names the
//! kubelet's `--cluster-dns`, but a host-network pod falls back to `Default`, as does every
//! pod when the kubelet has no cluster DNS; `ClusterFirstWithHostNet` names the cluster DNS;
//! `Default` the nameservers of the kubelet's resolv.conf; `None` nothing; `dnsConfig`'s
//! nameservers are added to any of them. CoreDNS's verdict is `coredns.rs`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::events::NodeChanges;
use super::kubelet::{Kubelet, Taint};
use super::verdict::{Cluster, Verdict, config_map_data};
use super::{coredns, network, objects};

/// A node as the scheduler sees it.
struct Node<'a> {
    kubelet: &'a Kubelet,
    labels: BTreeMap<String, String>,
    taints: Vec<Taint>,
}

/// The pods of `cluster` on the registered `kubelets`, as the apiserver lists them at `now`;
/// with `on`, only those bound to that node (a drain's `fieldSelector`). Every Deployment's
/// pods are placed either way, as placing binds them; only the pods asked for are built, so
/// that a thousand drains do not build a thousand clusters' pods each.
pub(super) fn pods(cluster: &Cluster<'_>, now: DateTime<Utc>, on: Option<&str>) -> Vec<Value> {
    let wanted = |node: Option<&Node<'_>>| {
        on.is_none_or(|name| node.is_some_and(|n| n.kubelet.node_name == name))
    };
    let ready = cluster.network_problem.is_none();
    let nodes: Vec<Node<'_>> = cluster
        .kubelets
        .iter()
        .map(|kubelet| {
            let mut taints = kubelet.taints.clone();
            if !ready {
                taints.push(Taint {
                    key: "node.kubernetes.io/not-ready".to_owned(),
                    value: String::new(),
                    effect: "NoSchedule".to_owned(),
                });
            }
            Node {
                kubelet,
                labels: objects::node_labels(kubelet),
                taints,
            }
        })
        .collect();
    let mut pods = Vec::new();
    for (_, object) in cluster.objects {
        let owner = Owner::of(object);
        match object["kind"].as_str() {
            Some("DaemonSet") => {
                let mut tolerations = tolerations(owner.template);
                tolerations.extend(daemon_tolerations(owner.template));
                for node in nodes.iter().filter(|n| wanted(Some(n))) {
                    if untolerated(node, &tolerations).is_none() && selected(node, owner.template) {
                        pods.push(owner.pod(cluster, Some(node), 0, now));
                    }
                }
            }
            Some("Deployment") => {
                let tolerations = tolerations(owner.template);
                let mut fit: Vec<&Node<'_>> = nodes
                    .iter()
                    .filter(|node| {
                        untolerated(node, &tolerations).is_none() && selected(node, owner.template)
                    })
                    .collect();
                fit.sort_by_key(|node| {
                    (
                        std::cmp::Reverse(preference(node, owner.template)),
                        node.kubelet.node_name.clone(),
                    )
                });
                let replicas = object["spec"]["replicas"].as_u64().unwrap_or(1);
                for (replica, node) in place(cluster.changes, &owner, &fit, replicas) {
                    if !wanted(node) {
                        continue;
                    }
                    let mut pod = owner.pod(cluster, node, replica, now);
                    if node.is_none() {
                        unschedulable(&mut pod, &nodes, &tolerations, owner.template);
                    }
                    pods.push(pod);
                }
            }
            _ => {}
        }
    }
    pods
}

/// Where each of `replicas` pods of `owner` runs, among the nodes that `fit` it (most
/// preferred first): a pod already bound stays on its node while the node fits and it was not
/// evicted from there; the others go, one at a time, to the node that takes new pods (not
/// cordoned, none of the owner's pods evicted from it) with the fewest of the owner's pods, the
/// most preferred first (the scheduler's spreading of a ReplicaSet's pods).
fn place<'n, 'k>(
    changes: &NodeChanges,
    owner: &Owner<'_>,
    fit: &[&'n Node<'k>],
    replicas: u64,
) -> Vec<(u64, Option<&'n Node<'k>>)> {
    let stays = |node: &Node<'_>| !changes.evicted_from(owner.namespace, &owner.name, node.kubelet);
    let mut placed: Vec<(u64, Option<&'n Node<'k>>)> = (0..replicas)
        .map(|replica| {
            let bound = changes.placed(owner.namespace, &owner.name, replica);
            let node = fit
                .iter()
                .copied()
                .find(|node| Some(&node.kubelet.node_name) == bound.as_ref() && stays(node));
            (replica, node)
        })
        .collect();
    let takes_new: Vec<&'n Node<'k>> = fit
        .iter()
        .copied()
        .filter(|node| stays(node) && !changes.cordoned(node.kubelet))
        .collect();
    for index in 0..placed.len() {
        if placed[index].1.is_some() {
            continue;
        }
        let load = |node: &Node<'_>| {
            placed
                .iter()
                .filter(|(_, on)| {
                    on.is_some_and(|on| on.kubelet.node_name == node.kubelet.node_name)
                })
                .count()
        };
        let choice = takes_new
            .iter()
            .copied()
            .enumerate()
            .min_by_key(|(order, node)| (load(node), *order))
            .map(|(_, node)| node);
        placed[index].1 = choice;
    }
    for (replica, node) in &placed {
        changes.place(
            owner.namespace,
            &owner.name,
            *replica,
            node.map(|node| node.kubelet.node_name.as_str()),
        );
    }
    placed
}

/// A workload's pod template and where its pods come from.
struct Owner<'a> {
    kind: &'static str,
    /// The DaemonSet's, or the ReplicaSet's name (the Deployment's and a hash).
    name: String,
    namespace: &'a str,
    labels: &'a Value,
    template: &'a Value,
}

impl<'a> Owner<'a> {
    fn of(object: &'a Value) -> Owner<'a> {
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let template = &object["spec"]["template"];
        let (kind, name) = if object["kind"] == "Deployment" {
            (
                "ReplicaSet",
                format!("{name}-{}", suffix(&template.to_string(), 10)),
            )
        } else {
            ("DaemonSet", name.to_owned())
        };
        Owner {
            kind,
            name,
            namespace: object["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default"),
            labels: &template["metadata"]["labels"],
            template: &template["spec"],
        }
    }

    /// Pod `replica` of this owner on `node` (`None`: not scheduled).
    fn pod(
        &self,
        cluster: &Cluster<'_>,
        node: Option<&Node<'_>>,
        replica: u64,
        now: DateTime<Utc>,
    ) -> Value {
        let seed = format!(
            "{}/{}/{}",
            self.name,
            node.map_or("", |n| n.kubelet.node_name.as_str()),
            replica
        );
        let name = format!("{}-{}", self.name, suffix(&seed, 5));
        let mut spec = self.template.clone();
        let since = node.map_or(now, |n| n.kubelet.registered_at);
        let timestamp =
            |time: DateTime<Utc>| time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let mut pod = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "uid": format!("sim-pod-{}-{name}", self.namespace),
                "labels": self.labels,
                "creationTimestamp": timestamp(since),
                "ownerReferences": [{
                    "apiVersion": "apps/v1",
                    "kind": self.kind,
                    "name": self.name,
                    "uid": format!("sim-{}-{}", self.kind.to_lowercase(), self.name),
                    "controller": true,
                }],
            },
            "status": {"phase": "Pending", "qosClass": "Burstable"},
        });
        let Some(node) = node else {
            pod["spec"] = spec;
            return pod;
        };
        spec["nodeName"] = json!(node.kubelet.node_name);
        let verdict = verdict(cluster, self, node.kubelet);
        let host_network = self.template["hostNetwork"] == true;
        let mut status = json!({
            "hostIP": node.kubelet.internal_ip.to_string(),
            "startTime": timestamp(since),
            "conditions": [{"type": "PodScheduled", "status": "True"}],
        });
        if host_network {
            status["podIP"] = json!(node.kubelet.internal_ip.to_string());
        }
        let containers: Vec<Value> = self.template["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|container| {
                let mut state = json!({
                    "name": container["name"],
                    "image": container["image"],
                    "ready": verdict == Verdict::Ready,
                    "restartCount": 0,
                    "started": matches!(verdict, Verdict::Ready | Verdict::NotReady(_)),
                });
                match &verdict {
                    Verdict::Ready | Verdict::NotReady(_) => {
                        state["state"] = json!({"running": {"startedAt": timestamp(since)}});
                    }
                    Verdict::Waiting { reason, message } => {
                        state["state"] = json!({"waiting": {"reason": reason, "message": message}});
                    }
                    Verdict::Crashes(log) => {
                        let (restarts, backoff) = crash_loop(since, now);
                        state["restartCount"] = json!(restarts);
                        state["state"] = json!({"waiting": {
                            "reason": "CrashLoopBackOff",
                            "message": format!(
                                "back-off {backoff}s restarting failed container={} pod={name}_{}({})",
                                container["name"].as_str().unwrap_or_default(),
                                self.namespace,
                                pod["metadata"]["uid"].as_str().unwrap_or_default(),
                            ),
                        }});
                        // The process's last words: `kubectl logs --previous` shows them, and
                        // a container with terminationMessagePolicy FallbackToLogsOnError
                        // carries them here.
                        state["lastState"] = json!({"terminated": {
                            "exitCode": 1,
                            "reason": "Error",
                            "message": log,
                        }});
                    }
                }
                state
            })
            .collect();
        status["containerStatuses"] = json!(containers);
        let (phase, ready, message) = match &verdict {
            Verdict::Ready => ("Running", "True", String::new()),
            Verdict::NotReady(why) => ("Running", "False", why.clone()),
            Verdict::Crashes(_) => (
                "Running",
                "False",
                "containers with unready status".to_owned(),
            ),
            Verdict::Waiting { message, .. } => ("Pending", "False", message.clone()),
        };
        status["phase"] = json!(phase);
        let mut ready_condition = json!({"type": "Ready", "status": ready});
        if !message.is_empty() {
            ready_condition["reason"] = json!("ContainersNotReady");
            ready_condition["message"] = json!(message);
        }
        if let Some(conditions) = status["conditions"].as_array_mut() {
            conditions.push(ready_condition);
        }
        status["qosClass"] = json!("Burstable");
        pod["spec"] = spec;
        pod["status"] = status;
        pod
    }
}

/// What the containers of `owner`'s pods do on `kubelet`'s node.
fn verdict(cluster: &Cluster<'_>, owner: &Owner<'_>, kubelet: &Kubelet) -> Verdict {
    let (namespace, template) = (owner.namespace, owner.template);
    let host_network = template["hostNetwork"] == true;
    if let (Some(problem), false) = (cluster.network_problem, host_network) {
        // The kubelet's wording when the runtime cannot set up a pod's network.
        return Verdict::Waiting {
            reason: "ContainerCreating".to_owned(),
            message: format!(
                "network is not ready: container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:{problem}"
            ),
        };
    }
    for volume in template["volumes"].as_array().into_iter().flatten() {
        let Some(config_map) = volume["configMap"]["name"].as_str() else {
            continue;
        };
        if volume["configMap"]["optional"] != true
            && config_map_data(cluster, namespace, config_map).is_none()
        {
            return Verdict::Waiting {
                reason: "ContainerCreating".to_owned(),
                message: format!(
                    "MountVolume.SetUp failed for volume \"{}\" : configmap \"{config_map}\" not found",
                    volume["name"].as_str().unwrap_or_default()
                ),
            };
        }
    }
    if network::plugin_of(template).is_some() {
        return match cluster.network_problem {
            Some(problem) => Verdict::NotReady(problem.to_owned()),
            None => match network::bgp_problem(template, kubelet, cluster.kubelets) {
                Some(problem) => Verdict::NotReady(problem),
                None => Verdict::Ready,
            },
        };
    }
    if coredns::runs_coredns(template) {
        let nameservers = nameservers(template, kubelet);
        return coredns::verdict(
            cluster,
            namespace,
            &owner.name,
            owner.labels,
            template,
            &nameservers,
            kubelet,
        );
    }
    Verdict::Ready
}

/// The nameservers of a pod of `template` on `kubelet`'s node, as the kubelet writes its
/// resolv.conf (`GetPodDNS`).
pub(super) fn nameservers(template: &Value, kubelet: &Kubelet) -> Vec<String> {
    let host_network = template["hostNetwork"] == true;
    let cluster_first = match template["dnsPolicy"].as_str().unwrap_or("ClusterFirst") {
        "None" => None,
        "ClusterFirstWithHostNet" => Some(true),
        "ClusterFirst" => Some(!host_network),
        // `Default`, and what the apiserver would refuse.
        _ => Some(false),
    };
    let mut servers = match cluster_first {
        None => Vec::new(),
        Some(true) if !kubelet.cluster_dns.is_empty() => kubelet.cluster_dns.clone(),
        Some(_) => kubelet.host_nameservers.clone(),
    };
    for server in template["dnsConfig"]["nameservers"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(server) = server.as_str()
            && !servers.iter().any(|s| s == server)
        {
            servers.push(server.to_owned());
        }
    }
    servers
}

fn tolerations(template: &Value) -> Vec<Value> {
    template["tolerations"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The tolerations the DaemonSet controller adds to its pods.
fn daemon_tolerations(template: &Value) -> Vec<Value> {
    let mut added = vec![
        json!({"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}),
        json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}),
        json!({"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"}),
        json!({"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"}),
        json!({"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"}),
        json!({"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}),
    ];
    if template["hostNetwork"] == true {
        added.push(json!({"key": "node.kubernetes.io/network-unavailable", "operator": "Exists", "effect": "NoSchedule"}));
    }
    added
}

/// The first taint of `node` that keeps a pod with `tolerations` off it.
fn untolerated<'n>(node: &'n Node<'_>, tolerations: &[Value]) -> Option<&'n Taint> {
    node.taints
        .iter()
        .filter(|taint| taint.effect == "NoSchedule" || taint.effect == "NoExecute")
        .find(|taint| !taint.tolerated_by(tolerations))
}

/// Whether `node` has every label of the template's `nodeSelector`.
fn selected(node: &Node<'_>, template: &Value) -> bool {
    template["nodeSelector"]
        .as_object()
        .into_iter()
        .flatten()
        .all(|(key, value)| node.labels.get(key).map(String::as_str) == value.as_str())
}

/// The weight of the preferred node affinity terms `node` matches (`Exists`, `In` only).
fn preference(node: &Node<'_>, template: &Value) -> u64 {
    template["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|term| {
            term["preference"]["matchExpressions"]
                .as_array()
                .into_iter()
                .flatten()
                .all(|expression| {
                    let value = expression["key"]
                        .as_str()
                        .and_then(|key| node.labels.get(key));
                    match expression["operator"].as_str() {
                        Some("Exists") => value.is_some(),
                        Some("In") => value.is_some_and(|value| {
                            expression["values"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .any(|v| v.as_str() == Some(value))
                        }),
                        _ => false,
                    }
                })
        })
        .map(|term| term["weight"].as_u64().unwrap_or(0))
        .sum()
}

/// Marks `pod` unschedulable, with the scheduler's message of why each node does not fit.
fn unschedulable(pod: &mut Value, nodes: &[Node<'_>], tolerations: &[Value], template: &Value) {
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for node in nodes {
        let reason = match untolerated(node, tolerations) {
            Some(taint) => format!("had untolerated taint {}", taint.shown()),
            None if !selected(node, template) => {
                "didn't match Pod's node affinity/selector".to_owned()
            }
            None => continue,
        };
        *reasons.entry(reason).or_default() += 1;
    }
    let details: Vec<String> = reasons
        .iter()
        .map(|(reason, count)| format!("{count} node(s) {reason}"))
        .collect();
    let message = format!(
        "0/{} nodes are available: {}.",
        nodes.len(),
        if details.is_empty() {
            "no nodes registered".to_owned()
        } else {
            details.join(", ")
        }
    );
    pod["status"]["conditions"] = json!([{
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": message,
    }]);
}

/// How often a container that exits at once has been restarted by `now`, and the kubelet's
/// current back-off: 10 s doubling up to 5 minutes (`MaxContainerBackOff`). Its first exit is
/// at start, its first restart right after.
fn crash_loop(since: DateTime<Utc>, now: DateTime<Utc>) -> (u64, u64) {
    let elapsed = (now - since).num_seconds().max(0).unsigned_abs();
    let (mut restarts, mut backoff, mut at) = (1, 10, 0);
    while at + backoff <= elapsed {
        at += backoff;
        restarts += 1;
        backoff = (backoff * 2).min(300);
    }
    (restarts, backoff)
}

/// A stable name suffix of `length` characters from `seed`, of the alphabet Kubernetes' name
/// generator uses (`k8s.io/apimachinery/pkg/util/rand`, no vowels).
fn suffix(seed: &str, length: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    (0..length)
        .map(|_| {
            for byte in seed.bytes() {
                hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
            }
            ALPHABET[(hash % ALPHABET.len() as u64) as usize] as char
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kubelet(cluster_dns: &[&str]) -> Kubelet {
        Kubelet {
            node_name: "n".to_owned(),
            kubeconfig: None,
            labels: BTreeMap::new(),
            internal_ip: std::net::Ipv4Addr::new(10, 0, 0, 1),
            external_ip: std::net::Ipv4Addr::new(127, 0, 0, 1),
            registered_at: Utc::now(),
            taints: Vec::new(),
            cluster_dns: cluster_dns.iter().map(|s| (*s).to_owned()).collect(),
            host_nameservers: vec!["147.75.207.207".to_owned()],
            firewall: Default::default(),
            bootstrap: false,
            rotate_certificates: false,
        }
    }

    #[test]
    fn a_pods_nameservers_follow_its_dns_policy_as_the_kubelet_sets_them() {
        let with = kubelet(&["10.3.0.10"]);
        let servers = |spec: Value, kubelet: &Kubelet| nameservers(&spec, kubelet);
        assert_eq!(servers(json!({}), &with), ["10.3.0.10"]);
        assert_eq!(
            servers(json!({"dnsPolicy": "ClusterFirst"}), &with),
            ["10.3.0.10"]
        );
        assert_eq!(
            servers(json!({"dnsPolicy": "Default"}), &with),
            ["147.75.207.207"]
        );
        // ClusterFirst on the host network falls back to Default; WithHostNet does not.
        assert_eq!(
            servers(json!({"hostNetwork": true}), &with),
            ["147.75.207.207"]
        );
        assert_eq!(
            servers(
                json!({"hostNetwork": true, "dnsPolicy": "ClusterFirstWithHostNet"}),
                &with
            ),
            ["10.3.0.10"]
        );
        // Without --cluster-dns, ClusterFirst is Default.
        assert_eq!(servers(json!({}), &kubelet(&[])), ["147.75.207.207"]);
        assert_eq!(
            servers(
                json!({"dnsPolicy": "None", "dnsConfig": {"nameservers": ["1.1.1.1"]}}),
                &with
            ),
            ["1.1.1.1"]
        );
        assert_eq!(
            servers(
                json!({"dnsConfig": {"nameservers": ["10.3.0.10", "1.1.1.1"]}}),
                &with
            ),
            ["10.3.0.10", "1.1.1.1"]
        );
    }

    #[test]
    fn taints_are_tolerated_as_the_scheduler_tolerates_them() {
        let taints =
            Taint::parse_list("node-role.kubernetes.io/master=:NoSchedule,dedicated=db:NoExecute");
        assert_eq!(taints.len(), 2);
        assert_eq!(taints[1].value, "db");
        let master = &taints[0];
        assert!(master.tolerated_by(&[
            json!({"key": "node-role.kubernetes.io/master", "effect": "NoSchedule"})
        ]));
        assert!(master.tolerated_by(&[json!({"operator": "Exists"})]));
        assert!(master.tolerated_by(&[json!({"operator": "Exists", "effect": "NoSchedule"})]));
        assert!(!master.tolerated_by(&[
            json!({"key": "node-role.kubernetes.io/controller", "effect": "NoSchedule"})
        ]));
        assert!(!master.tolerated_by(&[json!({"operator": "Exists", "effect": "NoExecute"})]));
        let dedicated = &taints[1];
        assert!(dedicated.tolerated_by(&[json!({"key": "dedicated", "value": "db"})]));
        assert!(!dedicated.tolerated_by(&[json!({"key": "dedicated", "value": "web"})]));
    }
}
