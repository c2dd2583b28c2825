//! Drift: how the cloud as it is differs from the desired cluster (`loko status`).
//!
//! The binary reads the cluster's devices and records; this compares them with the spec, so
//! the rules (a node without a device, two devices for one node, the wrong type, not active,
//! a device of the cluster that no node claims, a missing record) are tested here, without a
//! cloud.

use std::collections::HashMap;

use serde::Serialize;
use specs::DesiredCluster;

use crate::dns::ARecord;
use crate::packet::{Device, DeviceState, node_tag};

/// A node of the spec and the device that carries its tag.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeStatus {
    pub node: String,
    /// The device's id (a rack's: its machine's name); none when the node has no device.
    pub device: Option<String>,
    /// The device's state, or `missing`.
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_ipv4: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_ipv4: Option<String>,
}

/// A record of the spec and its values now; none when it does not exist.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RecordStatus {
    pub name: String,
    pub values: Option<Vec<String>>,
}

/// The cluster as it is, and every difference from the spec, one sentence each.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Drift {
    pub nodes: Vec<NodeStatus>,
    pub records: Vec<RecordStatus>,
    pub differences: Vec<String>,
}

impl Drift {
    /// The nodes of `desired` against `devices`, the devices tagged with the cluster. The
    /// devices are indexed by tag once: a 5,000-node cluster is compared in one pass, not
    /// 5,000 scans of 5,000 devices.
    pub fn of_devices<'a>(
        desired: &DesiredCluster,
        devices: impl IntoIterator<Item = &'a Device>,
    ) -> Drift {
        let node_tags: HashMap<String, &str> = desired
            .nodes
            .iter()
            .map(|n| (node_tag(&n.hostname), n.hostname.as_str()))
            .collect();
        let mut by_node: HashMap<&str, Vec<&Device>> = HashMap::new();
        let mut drift = Drift::default();
        for device in devices {
            let nodes: Vec<&str> = device
                .tags
                .iter()
                .filter_map(|t| node_tags.get(t).copied())
                .collect();
            if nodes.is_empty() {
                drift.differences.push(format!(
                    "device {} ({}) is tagged with the cluster but no node of the spec",
                    device.id, device.hostname
                ));
            }
            for node in nodes {
                by_node.entry(node).or_default().push(device);
            }
        }
        let mut strangers = std::mem::take(&mut drift.differences);
        for node in &desired.nodes {
            let host = &node.hostname;
            let mine = by_node.remove(host.as_str()).unwrap_or_default();
            // A device on its way out (deleted, still listed while deprovisioning) beside one
            // that serves the node is not the node's: the node has the one that stays.
            let staying: Vec<&Device> = mine
                .iter()
                .copied()
                .filter(|d| d.state != DeviceState::Deprovisioning)
                .collect();
            let mine = if staying.is_empty() { mine } else { staying };
            let Some(device) = mine.first() else {
                drift.nodes.push(NodeStatus {
                    node: host.clone(),
                    device: None,
                    state: "missing".into(),
                    public_ipv4: None,
                    private_ipv4: None,
                });
                drift.differences.push(format!("{host} has no device"));
                continue;
            };
            drift.nodes.push(NodeStatus {
                node: host.clone(),
                device: Some(device.id.clone()),
                state: device.state.to_string(),
                public_ipv4: device.public_ipv4().map(|ip| ip.to_string()),
                private_ipv4: device.private_ipv4().map(|ip| ip.to_string()),
            });
            if mine.len() > 1 {
                drift
                    .differences
                    .push(format!("{host} has {} devices", mine.len()));
            }
            if let Some(plan) = device.plan_slug().filter(|p| *p != node.plan.as_str()) {
                drift
                    .differences
                    .push(format!("{host} is a {plan} (the spec says {})", node.plan));
            }
            if device.state.to_string() != "active" {
                drift
                    .differences
                    .push(format!("{host} is {}, not active", device.state));
            }
        }
        drift.differences.append(&mut strangers);
        drift
    }

    /// The nodes of a rack (`provider: redfish`) against their machines' power states as
    /// their BMCs report them (`power`, by hostname: the state, or why the BMC did not say).
    /// A node's device is its machine's name, its addresses the spec's (a rack's machines have
    /// the addresses they are given); a machine not on, or whose BMC did not answer, differs.
    pub fn of_machines(
        desired: &DesiredCluster,
        power: &HashMap<String, Result<String, String>>,
    ) -> Drift {
        let mut drift = Drift::default();
        for node in &desired.nodes {
            let host = &node.hostname;
            let Some(machine) = &node.machine else {
                continue;
            };
            let state = match power.get(host) {
                Some(Ok(state)) => state.clone(),
                Some(Err(why)) => {
                    drift
                        .differences
                        .push(format!("{host}: machine {}: {why}", machine.name));
                    "unreadable".to_owned()
                }
                None => "unknown".to_owned(),
            };
            if !matches!(state.as_str(), "On" | "unreadable") {
                drift.differences.push(format!(
                    "{host}: machine {} is {state}, not On",
                    machine.name
                ));
            }
            drift.nodes.push(NodeStatus {
                node: host.clone(),
                device: Some(machine.name.to_string()),
                state,
                public_ipv4: Some(machine.public_ipv4.to_string()),
                private_ipv4: Some(machine.private_ipv4.to_string()),
            });
        }
        drift
    }

    /// Adds the record `name` as it is now (`current`: none if it does not exist).
    pub fn record(&mut self, name: &str, current: Option<&ARecord>) {
        let values: Option<Vec<String>> =
            current.map(|r| r.values.iter().map(|v| v.to_string()).collect());
        if values.is_none() {
            self.differences.push(format!("record {name} is missing"));
        }
        self.records.push(RecordStatus {
            name: name.to_owned(),
            values,
        });
    }

    /// True when nothing differs from the spec.
    pub fn matches(&self) -> bool {
        self.differences.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn tutorial() -> DesiredCluster {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/tutorial.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        specs::parse(&text, &path.display().to_string())
            .unwrap_or_else(|e| panic!("{e}"))
            .desired()
    }

    fn device(id: &str, host: &str, state: &str, plan: &str) -> Device {
        serde_json::from_value(serde_json::json!({
            "id": id,
            "hostname": host,
            "state": state,
            "tags": [node_tag(host)],
            "plan": {"slug": plan},
            "ip_addresses": [{"address": "10.0.0.1", "address_family": 4, "public": true}],
        }))
        .unwrap()
    }

    #[test]
    fn a_cluster_as_specified_matches() {
        let desired = tutorial();
        let devices: Vec<Device> = desired
            .nodes
            .iter()
            .map(|n| device(&n.hostname, &n.hostname, "active", n.plan.as_str()))
            .collect();
        let mut drift = Drift::of_devices(&desired, &devices);
        for record in &desired.dns_records {
            let current = ARecord {
                name: record.name.clone(),
                values: vec!["10.0.0.1".parse().unwrap()],
                ttl: 300,
            };
            drift.record(&record.name, Some(&current));
        }
        assert!(drift.matches(), "{:?}", drift.differences);
        assert_eq!(drift.nodes[0].public_ipv4.as_deref(), Some("10.0.0.1"));
    }

    #[test]
    fn a_device_deprovisioning_beside_its_replacement_is_not_the_node_s() {
        let desired = tutorial();
        let mut devices: Vec<Device> = desired
            .nodes
            .iter()
            .map(|n| device(&n.hostname, &n.hostname, "active", n.plan.as_str()))
            .collect();
        let first = &desired.nodes[0];
        devices.insert(
            0,
            device(
                "old",
                &first.hostname,
                "deprovisioning",
                first.plan.as_str(),
            ),
        );
        let drift = Drift::of_devices(&desired, &devices);
        assert!(drift.matches(), "{:?}", drift.differences);
        assert_eq!(
            drift.nodes[0].device.as_deref(),
            Some(first.hostname.as_str())
        );
    }

    #[test]
    fn every_kind_of_drift_is_one_sentence() {
        let desired = tutorial();
        let [first, second, ..] = desired.nodes.as_slice() else {
            panic!("the tutorial has three nodes");
        };
        let (a, b) = (&first.hostname, &second.hostname);
        let devices = vec![
            device("d1", a, "active", "m9.weird.x86"),
            device("d2", a, "provisioning", first.plan.as_str()),
            device("d3", "stranger", "active", "c3.small.x86"),
        ];
        let mut drift = Drift::of_devices(&desired, &devices);
        drift.record("supernova.example.com.", None);
        let expected = [
            format!("{a} has 2 devices"),
            format!("{a} is a m9.weird.x86 (the spec says {})", first.plan),
            format!("{b} has no device"),
            "device d3 (stranger) is tagged with the cluster but no node of the spec".to_owned(),
            "record supernova.example.com. is missing".to_owned(),
        ];
        for sentence in &expected {
            assert!(
                drift.differences.contains(sentence),
                "{sentence:?} not in {:?}",
                drift.differences
            );
        }
        let missing = drift.nodes.iter().find(|n| &n.node == b).unwrap();
        assert_eq!(
            (missing.device.as_ref(), missing.state.as_str()),
            (None, "missing")
        );
        assert!(!drift.matches());
    }

    #[test]
    fn a_rack_s_machines_differ_when_off_or_unanswered() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/rack.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        let desired = specs::parse(&text, "rack.yaml")
            .unwrap_or_else(|e| panic!("{e}"))
            .desired();
        let mut power: HashMap<String, Result<String, String>> = desired
            .nodes
            .iter()
            .map(|n| (n.hostname.clone(), Ok("On".to_owned())))
            .collect();
        assert!(Drift::of_machines(&desired, &power).matches());
        let (first, second) = (&desired.nodes[0].hostname, &desired.nodes[1].hostname);
        power.insert(first.clone(), Ok("Off".to_owned()));
        power.insert(second.clone(), Err("connection refused".to_owned()));
        let drift = Drift::of_machines(&desired, &power);
        assert_eq!(
            drift.differences,
            [
                format!("{first}: machine rack-a1 is Off, not On"),
                format!("{second}: machine rack-a2: connection refused"),
            ]
        );
        let node = &drift.nodes[0];
        assert_eq!(node.device.as_deref(), Some("rack-a1"));
        assert_eq!(node.public_ipv4.as_deref(), Some("10.0.1.11"));
        assert_eq!(drift.nodes[1].state, "unreadable");
    }
}
