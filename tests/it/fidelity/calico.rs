//! Calico's host protection as Calico v3.29.2 reads it (`sim::judge::calico`, facts in
//! `sim/data/calico-felix.json`): the policies are stored where libcalico-go's client finds
//! them, Felix loads a policy for every controller's host endpoint, and Felix's failsafe ports,
//! which it accepts before any policy and before the node's own iptables rules, open nothing
//! that node's firewall closes.

use loko_tests::rendered::{Rendered, render_example};
use serde_json::Value;
use sim::judge::calico::{CalicoFacts, backend_policy_name, failsafe_inbound, host_endpoints};
use sim::judge::rbac::manifest_objects;

use super::nodes::{accept_rules, cidr_contains};

const EXAMPLES: [&str; 2] = ["tutorial.yaml", "hybrid.yaml"];

/// Where Flatcar's iptables-restore.service reads the IPv4 rules (`sim/data/flatcar-node.json`;
/// the nodes suite checks that the unit loads it at boot).
const RULES_V4: &str = "/var/lib/iptables/rules-save";

fn objects(rendered: &Rendered) -> Vec<Value> {
    manifest_objects(&rendered.root.join("manifests"))
        .expect("the rendered manifests")
        .into_iter()
        .map(|(_, object)| object)
        .collect()
}

fn facts() -> CalicoFacts {
    CalicoFacts::load().expect("sim/data/calico-felix.json")
}

#[test]
fn calicos_policies_are_stored_under_the_names_libcalico_go_gives_them() {
    let mut failures = Vec::new();
    for example in EXAMPLES {
        let rendered = render_example(example);
        for object in objects(&rendered) {
            if !matches!(
                object["kind"].as_str(),
                Some("GlobalNetworkPolicy" | "NetworkPolicy")
            ) || !object["apiVersion"]
                .as_str()
                .is_some_and(|v| v.starts_with("crd.projectcalico.org/"))
            {
                continue;
            }
            let name = object["metadata"]["name"].as_str().unwrap_or_default();
            match backend_policy_name(name, object["spec"]["tier"].as_str()) {
                Ok(stored) if stored == name => {}
                Ok(stored) => failures.push(format!(
                    "{example}: {} {name}: libcalico-go's client (calicoctl) stores and looks it up as {stored}: `calicoctl get` and `delete` by its name miss this object",
                    object["kind"].as_str().unwrap_or_default()
                )),
                Err(error) => failures.push(format!("{example}: {name}: {error}")),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn felix_loads_a_policy_for_every_controllers_host_endpoint() {
    let mut failures = Vec::new();
    for example in EXAMPLES {
        let rendered = render_example(example);
        let endpoints = host_endpoints(&objects(&rendered), &facts());
        for controller in rendered.cluster.controllers() {
            let mine: Vec<_> = endpoints
                .iter()
                .filter(|e| e.node == controller.hostname)
                .collect();
            if mine.is_empty() {
                failures.push(format!(
                    "{example}: {}: no HostEndpoint names it as its node",
                    controller.hostname
                ));
            }
            for endpoint in mine {
                failures.extend(
                    endpoint
                        .problems
                        .iter()
                        .map(|p| format!("{example}: HostEndpoint {}: {p}", endpoint.name)),
                );
                if endpoint.policies.is_empty() {
                    failures.push(format!(
                        "{example}: HostEndpoint {}: Felix loads no policy for it: it denies all but the failsafe ports",
                        endpoint.name
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn felix_failsafe_ports_open_nothing_the_nodes_firewall_closes() {
    let mut failures = Vec::new();
    for example in EXAMPLES {
        let rendered = render_example(example);
        let objects = objects(&rendered);
        let failsafe = failsafe_inbound(&objects, &facts()).expect("failsafe ports");
        for endpoint in host_endpoints(&objects, &facts()) {
            let Some(rules) = rendered.file(&endpoint.node, RULES_V4) else {
                failures.push(format!("{example}: {}: no {RULES_V4}", endpoint.node));
                continue;
            };
            let rules = accept_rules(&String::from_utf8_lossy(&rules));
            for port in &failsafe {
                let net = port.net.as_deref().unwrap_or("0.0.0.0/0");
                let allowed = rules.iter().any(|rule| {
                    rule.protocol.as_deref() == Some(port.protocol.as_str())
                        && rule
                            .ports
                            .iter()
                            .any(|(low, high)| (*low..=*high).contains(&port.port))
                        && (rule.sources.is_empty()
                            || rule.sources.iter().any(|s| cidr_contains(s, net)))
                });
                if !allowed {
                    failures.push(format!(
                        "{example}: {}: Felix's failsafe accepts {}:{} from {net} on HostEndpoint {}, which its firewall ({RULES_V4}) does not",
                        endpoint.node, port.protocol, port.port, endpoint.name
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
