//! Whether the cluster's network can come up on a node: the network DaemonSet applied
//! (Calico's calico-node or flannel), its service account, what that account may do, and the
//! CRDs Calico watches. The needs are the upstream components' own (`sim/data/`), never loko's.

use serde_json::Value;

use super::kubelet::Kubelet;
use crate::judge::iptables::Packet;

use crate::judge::rbac::{Decision, Policy, Requirements, UserInfo};

/// The CRDs Calico v3.29's manifests ship; calico-node watches them and cannot sync without.
const CALICO_CRDS: &str = include_str!("../../data/calico-v3.29-crds.txt");

/// A network plugin recognized by its image, and the requirements identity of its DaemonSet.
const PLUGINS: &[(&str, &str)] = &[
    ("calico/node", "calico-node"),
    ("flannel/flannel", "flannel"),
];

/// Why no node can be Ready, or `None` when the network DaemonSet can do its job.
pub(super) fn problem(
    objects: &[(std::path::PathBuf, Value)],
    policy: &Policy,
    requirements: &Requirements,
) -> Option<String> {
    let Some((identity, daemonset)) = objects.iter().find_map(|(_, object)| {
        if object["kind"] != "DaemonSet" {
            return None;
        }
        Some((plugin_of(&object["spec"]["template"]["spec"])?, object))
    }) else {
        return Some(
            "cni plugin not initialized: no calico-node or flannel DaemonSet in the manifests"
                .to_owned(),
        );
    };
    let name = daemonset["metadata"]["name"].as_str().unwrap_or(identity);
    let namespace = daemonset["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default");
    let pod = &daemonset["spec"]["template"]["spec"];
    if let Some(problem) = account_missing(objects, name, namespace, pod) {
        return Some(problem);
    }
    if identity == "calico-node" {
        let missing: Vec<&str> = CALICO_CRDS
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .filter(|crd| {
                !objects.iter().any(|(_, o)| {
                    o["kind"] == "CustomResourceDefinition" && o["metadata"]["name"] == *crd
                })
            })
            .collect();
        if !missing.is_empty() {
            return Some(format!(
                "{name}: the CustomResourceDefinitions {} do not exist",
                missing.join(", ")
            ));
        }
    }
    account_refusal(policy, requirements, identity, name, namespace, pod)
}

/// The network plugin a pod's containers run (its requirements identity), if any.
pub(super) fn plugin_of(pod: &Value) -> Option<&'static str> {
    pod["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["image"].as_str())
        .find_map(|image| {
            let repository = image.split([':', '@']).next().unwrap_or_default();
            PLUGINS
                .iter()
                .find(|(suffix, _)| repository.ends_with(suffix))
                .map(|(_, identity)| *identity)
        })
}

/// The service account a PodSpec runs as.
fn account_of(pod: &Value) -> &str {
    pod["serviceAccountName"]
        .as_str()
        .or_else(|| pod["serviceAccount"].as_str())
        .unwrap_or("default")
}

/// Why workload `name`'s service account does not exist, or `None`.
pub(super) fn account_missing(
    objects: &[(std::path::PathBuf, Value)],
    name: &str,
    namespace: &str,
    pod: &Value,
) -> Option<String> {
    let account = account_of(pod);
    // Every namespace has its `default` account; any other must be created.
    let account_exists = account == "default"
        || objects.iter().any(|(_, o)| {
            o["kind"] == "ServiceAccount"
                && o["metadata"]["name"] == account
                && o["metadata"]["namespace"].as_str().unwrap_or("default") == namespace
        });
    (!account_exists)
        .then(|| format!("{name}: ServiceAccount {namespace}/{account} does not exist"))
}

/// The first request of upstream `identity` that workload `name`'s service account may not
/// make, or `None` when it may make them all.
pub(super) fn account_refusal(
    policy: &Policy,
    requirements: &Requirements,
    identity: &str,
    name: &str,
    namespace: &str,
    pod: &Value,
) -> Option<String> {
    let user = UserInfo::service_account(namespace, account_of(pod));
    let needs = match requirements.identity(identity) {
        Ok(needs) => needs.requests(""),
        Err(error) => return Some(error.to_string()),
    };
    needs
        .iter()
        .find_map(|request| match policy.authorize(&user, request) {
            Decision::Allowed => None,
            Decision::Denied { .. } | Decision::Refused { .. } => {
                Some(format!("{name}: {} cannot {request}", user.describe()))
            }
        })
}

/// Why calico-node's BIRD is not ready on `kubelet`'s node, as its readiness probe
/// (`calico-node -bird-ready`, `node/pkg/health/health.go` of Calico v3.29) says it: the BGP
/// sessions of Calico's default node-to-node mesh, one with every other node on TCP 179 of its
/// node address, that the firewall of neither end lets in (either end may open a session). The
/// node address is the node's private IPv4, where `IP_AUTODETECTION_METHOD=can-reach=` of an
/// address of the private network leads on a Packet node (its private interface routes
/// 10.0.0.0/8). `None` when the pod's readiness does not ask BIRD, or every session comes up.
pub(super) fn bgp_problem(pod: &Value, kubelet: &Kubelet, kubelets: &[Kubelet]) -> Option<String> {
    let asks_bird = pod["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| {
            c["readinessProbe"]["exec"]["command"]
                .as_array()
                .into_iter()
                .flatten()
        })
        .any(|word| word == "-bird-ready");
    if !asks_bird || plugin_of(pod) != Some("calico-node") {
        return None;
    }
    let session = |to: &Kubelet, from: &Kubelet| {
        to.firewall.admits(&Packet {
            interface: "bond0",
            source: from.internal_ip,
            protocol: "tcp",
            port: 179,
        })
    };
    let mut down = Vec::new();
    let mut why = Vec::new();
    for peer in kubelets.iter().filter(|p| p.node_name != kubelet.node_name) {
        if let (Err(theirs), Err(_)) = (session(peer, kubelet), session(kubelet, peer)) {
            down.push(peer.internal_ip.to_string());
            why.push(format!(
                "{}'s firewall drops tcp/179 from {} ({theirs})",
                peer.node_name, kubelet.internal_ip
            ));
        }
    }
    (!down.is_empty()).then(|| {
        format!(
            "calico/node is not ready: BIRD is not ready: BGP not established with {}; {}",
            down.join(","),
            why.join("; ")
        )
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::judge::rbac::data_objects;

    /// Calico as its v3.29.2 manifests make it: accounts, roles, bindings, CRDs, the DaemonSet.
    fn calico() -> Vec<(std::path::PathBuf, Value)> {
        let mut objects: Vec<Value> =
            data_objects("calico-v3.29.2-rbac.yaml").expect("calico RBAC");
        for crd in CALICO_CRDS.lines().filter(|l| !l.starts_with('#')) {
            objects.push(json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": crd}}));
        }
        objects.push(json!({
            "apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "calico-node", "namespace": "kube-system"},
            "spec": {"template": {"spec": {
                "serviceAccountName": "calico-node",
                "containers": [{"name": "calico-node", "image": "quay.io/calico/node:v3.29.2"}],
            }}},
        }));
        objects.into_iter().map(|o| ("m.yaml".into(), o)).collect()
    }

    fn judge(objects: &[(std::path::PathBuf, Value)]) -> Option<String> {
        let mut policy = Policy::bootstrap().expect("bootstrap");
        for (_, object) in objects {
            policy.add_object(object, "test").expect("RBAC object");
        }
        problem(
            objects,
            &policy,
            &Requirements::load().expect("requirements"),
        )
    }

    #[test]
    fn calico_as_upstream_ships_it_comes_up() {
        assert_eq!(judge(&calico()), None);
    }

    #[test]
    fn calico_without_a_right_or_a_crd_does_not_and_says_why() {
        let mut objects = calico();
        for (_, object) in &mut objects {
            if object["kind"] == "ClusterRole" && object["metadata"]["name"] == "calico-node" {
                let rules = object["rules"].as_array_mut().expect("rules");
                for rule in rules.iter_mut() {
                    if let Some(resources) = rule["resources"].as_array_mut() {
                        resources.retain(|r| r != "ipamblocks");
                    }
                }
            }
        }
        assert_eq!(
            judge(&objects).as_deref(),
            Some(
                "calico-node: ServiceAccount kube-system/calico-node cannot get ipamblocks.crd.projectcalico.org"
            )
        );
        let mut objects = calico();
        objects.retain(|(_, o)| o["metadata"]["name"] != "tiers.crd.projectcalico.org");
        assert_eq!(
            judge(&objects).as_deref(),
            Some(
                "calico-node: the CustomResourceDefinitions tiers.crd.projectcalico.org do not exist"
            )
        );
        let mut objects = calico();
        objects.retain(|(_, o)| {
            !(o["kind"] == "ServiceAccount" && o["metadata"]["name"] == "calico-node")
        });
        assert_eq!(
            judge(&objects).as_deref(),
            Some("calico-node: ServiceAccount kube-system/calico-node does not exist")
        );
    }

    /// A node whose private address the other nodes' firewalls do not let in has no BGP
    /// session with them: calico-node's BIRD is not ready, naming the peers.
    #[test]
    fn bgp_sessions_need_a_firewall_that_lets_the_peer_in() {
        use crate::judge::iptables::{Firewall, NodeFirewall};
        let rules = "*filter\n:INPUT DROP [0:0]\n-A INPUT -p tcp -s 10.128.156.0/25 -m multiport --dports 179 -j ACCEPT\nCOMMIT\n";
        let kubelet = |name: &str, ip: [u8; 4]| super::Kubelet {
            node_name: name.to_owned(),
            kubeconfig: None,
            labels: Default::default(),
            internal_ip: ip.into(),
            external_ip: [127, 0, 0, ip[3]].into(),
            registered_at: chrono::Utc::now(),
            taints: Vec::new(),
            cluster_dns: Vec::new(),
            host_nameservers: Vec::new(),
            firewall: std::sync::Arc::new(NodeFirewall::Rules(Firewall::parse(rules).unwrap())),
            bootstrap: false,
            rotate_certificates: false,
        };
        let pod = json!({"containers": [{"image": "docker.io/calico/node:v3.29.2",
            "readinessProbe": {"exec": {"command": ["/bin/calico-node", "-felix-ready", "-bird-ready"]}}}]});
        let inside = [
            kubelet("a", [10, 128, 156, 1]),
            kubelet("b", [10, 128, 156, 3]),
        ];
        assert_eq!(bgp_problem(&pod, &inside[0], &inside), None);
        let outside = [kubelet("a", [10, 64, 0, 1]), kubelet("b", [10, 64, 0, 3])];
        let problem = bgp_problem(&pod, &outside[0], &outside).unwrap();
        assert!(
            problem.starts_with(
                "calico/node is not ready: BIRD is not ready: BGP not established with 10.64.0.3;"
            ),
            "{problem}"
        );
        // Without -bird-ready in its readiness, the pod's readiness does not ask.
        let felix_only = json!({"containers": [{"image": "docker.io/calico/node:v3.29.2",
            "readinessProbe": {"exec": {"command": ["/bin/calico-node", "-felix-ready"]}}}]});
        assert_eq!(bgp_problem(&felix_only, &outside[0], &outside), None);
    }
}
