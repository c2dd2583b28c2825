//! The refresh: before `loko plan` and `loko run` decide, the cloud as it is (one listing of
//! the cluster's devices, the zone's records: [`crate::drift::Drift`], the comparison `loko
//! status` shows) against what the journal recorded of it. A device the ledger says exists
//! that the cloud no longer has (deleted behind loko's back, by an interrupted destroy, or an
//! emptied cloud) is a contradiction: its `device/` step's result is forgotten, so the run
//! creates it again, and everything that read its outputs (DNS, the controller's secrets and
//! control plane, readiness) runs again through the engine's effective digests. A missing
//! record forgets the `dns` step.

use std::collections::BTreeMap;

use journal::{ClusterState, RunId, StepId};

use crate::drift::Drift;
use crate::history::History;
use crate::kinds::DeviceOutputs;
use crate::packet::{Device, DeviceState};
use crate::step_name::StepName;

/// What the journal's ledger says exists in the cloud.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Recorded {
    /// Each node's device as its `device/` step recorded it: the run and the device's id.
    pub devices: BTreeMap<String, (RunId, String)>,
    /// The `dns` step's recorded result: the run that wrote the records.
    pub dns: Option<RunId>,
}

impl Recorded {
    /// Reads the ledger of `state`.
    pub fn read(state: &ClusterState) -> Recorded {
        let devices = state
            .ledger
            .iter()
            .filter_map(|(step, result)| {
                let host = StepName::device_host(step)?;
                let device = DeviceOutputs::recorded(&result.outputs)?;
                Some((host.to_owned(), (result.run, device.device_id)))
            })
            .collect();
        Recorded {
            devices,
            dns: state.ledger.get(&StepName::Dns.id()).map(|r| r.run),
        }
    }
}

/// Where the cloud contradicts the journal.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Contradictions {
    /// Nodes whose recorded device is gone or is another device now, with the run that
    /// recorded it.
    pub gone: BTreeMap<String, RunId>,
    /// The steps whose recorded results no longer hold.
    pub steps: Vec<StepId>,
    /// What was seen, one sentence each (journaled with the drift).
    pub found: Vec<String>,
}

/// The states of a device on its way out: it will not serve its node again.
const LEAVING: [&str; 2] = ["deprovisioning", "deleted"];

impl Contradictions {
    /// Compares `drift` (the desired nodes' devices and the spec's records as they are) with
    /// what the journal `recorded`. Nodes the spec no longer has are not compared: their
    /// devices are deleted anyway.
    pub fn find(recorded: &Recorded, drift: &Drift) -> Contradictions {
        let mut found = Contradictions::default();
        for node in &drift.nodes {
            let Some((run, id)) = recorded.devices.get(&node.node) else {
                continue;
            };
            let sentence = match &node.device {
                None => format!("{}: device {id} (run {run}) is gone", node.node),
                Some(_) if LEAVING.contains(&node.state.as_str()) => {
                    format!("{}: device {id} (run {run}) is {}", node.node, node.state)
                }
                Some(other) if other != id => format!(
                    "{}: device {id} (run {run}) is gone; {other} carries its tag",
                    node.node
                ),
                Some(_) => continue,
            };
            found.gone.insert(node.node.clone(), *run);
            found
                .steps
                .push(StepName::Device(node.node.to_string()).id());
            found.found.push(sentence);
        }
        if let Some(run) = recorded.dns {
            let missing: Vec<&str> = drift
                .records
                .iter()
                .filter(|r| r.values.is_none())
                .map(|r| r.name.as_str())
                .collect();
            if !missing.is_empty() {
                found.steps.push(StepName::Dns.id());
                found.found.push(format!(
                    "record(s) {} written by run {run} are missing",
                    missing.join(", ")
                ));
            }
        }
        found
    }

    /// Compares a rack's machines with what the journal `recorded`: a node whose machine step
    /// is recorded and whose machine is off now (powered off by hand, a power cut) is booted
    /// again. `power` is each recorded node's machine and the power state its BMC reported.
    pub fn of_rack<'a>(
        &mut self,
        recorded: &Recorded,
        power: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>,
    ) {
        for (host, machine, state) in power {
            let Some((run, _)) = recorded.devices.get(host) else {
                continue;
            };
            if state != "Off" {
                continue;
            }
            self.gone.insert(host.to_owned(), *run);
            self.steps.push(StepName::Machine(host.to_owned()).id());
            self.found.push(format!(
                "{host}: machine {machine} (booted by run {run}) is powered off"
            ));
        }
    }

    /// True when the cloud holds everything the journal recorded.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// `history` as the run should see it: the contradicted steps are not recorded, and the
    /// nodes whose devices are gone are shown as such by [`crate::changes::changes`].
    pub fn apply(&self, history: &mut History) {
        for step in &self.steps {
            history.recorded.remove(step);
        }
        history.gone.extend(self.gone.clone());
    }

    /// What the engine journals and forgets before the run's steps.
    pub fn to_engine(&self) -> engine::Drift {
        engine::Drift {
            steps: self.steps.clone(),
            found: self.found.clone(),
        }
    }
}

/// The devices tagged with the cluster that this journal did not make: neither recorded by a
/// device step (the ledger's ids, `recorded`) nor set out to create by one (a journaled
/// create intent, `history.intended`, which precedes every create). They belong to another
/// journal (a copy of the spec run from another state directory) or to nobody loko knows: a
/// run adopting them by tag would take over, and replace, another cluster's machines. Devices
/// on their way out (deprovisioning) are nobody's.
pub fn foreign<'a>(
    recorded: &Recorded,
    history: &History,
    devices: impl IntoIterator<Item = &'a Device>,
) -> Vec<&'a Device> {
    let ours: std::collections::HashSet<&str> = recorded
        .devices
        .values()
        .map(|(_, id)| id.as_str())
        .collect();
    let intended: Vec<String> = history
        .intended
        .keys()
        .map(|host| crate::packet::node_tag(host))
        .collect();
    let mut foreign: Vec<&Device> = devices
        .into_iter()
        .filter(|d| d.state != DeviceState::Deprovisioning)
        .filter(|d| !ours.contains(d.id.as_str()))
        .filter(|d| !intended.iter().any(|tag| d.has_tag(tag)))
        .collect();
    foreign.sort_by(|a, b| a.hostname.cmp(&b.hostname));
    foreign
}

#[cfg(test)]
mod tests {
    use journal::testing::{started, succeeded};
    use journal::{Journal, Outputs, RunKind};

    use super::*;
    use crate::drift::{NodeStatus, RecordStatus};

    fn node(name: &str, device: Option<&str>, state: &str) -> NodeStatus {
        NodeStatus {
            node: name.into(),
            device: device.map(str::to_owned),
            state: state.into(),
            public_ipv4: None,
            private_ipv4: None,
        }
    }

    #[tokio::test]
    async fn the_ledger_s_devices_and_records_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path()).unwrap();
        let plan = vec![StepName::Device("a".into()).id(), StepName::Dns.id()];
        let run = j
            .begin_run(
                RunKind::Apply,
                journal::Digest::of(b"s"),
                serde_json::json!({}),
                plan.clone(),
            )
            .await
            .unwrap();
        let outputs = Outputs::new().with("device_id", "d-1").unwrap();
        for (step, outputs) in [(&plan[0], outputs), (&plan[1], Outputs::new())] {
            j.append(run, started(step, 1)).await.unwrap();
            j.append(run, succeeded(step, 1, outputs, 1)).await.unwrap();
        }
        let recorded = j.with_state(Recorded::read);
        assert_eq!(
            recorded.devices,
            BTreeMap::from([("a".to_owned(), (run, "d-1".to_owned()))])
        );
        assert_eq!(recorded.dns, Some(run));
    }

    #[test]
    fn gone_leaving_and_replaced_devices_and_missing_records_contradict_the_journal() {
        let (r1, r2) = (RunId(1), RunId(2));
        let recorded = Recorded {
            devices: BTreeMap::from([
                ("kept".to_owned(), (r1, "d-1".to_owned())),
                ("gone".to_owned(), (r1, "d-2".to_owned())),
                ("leaving".to_owned(), (r2, "d-3".to_owned())),
                ("replaced".to_owned(), (r2, "d-4".to_owned())),
            ]),
            dns: Some(r1),
        };
        let drift = Drift {
            nodes: vec![
                node("kept", Some("d-1"), "active"),
                node("gone", None, "missing"),
                node("leaving", Some("d-3"), "deprovisioning"),
                node("replaced", Some("d-9"), "active"),
                node("new", None, "missing"),
            ],
            records: vec![
                RecordStatus {
                    name: "a.example.com.".into(),
                    values: Some(vec!["10.0.0.1".into()]),
                },
                RecordStatus {
                    name: "b.example.com.".into(),
                    values: None,
                },
            ],
            differences: Vec::new(),
        };
        let found = Contradictions::find(&recorded, &drift);
        assert_eq!(
            found.gone,
            BTreeMap::from([
                ("gone".to_owned(), r1),
                ("leaving".to_owned(), r2),
                ("replaced".to_owned(), r2),
            ])
        );
        assert_eq!(
            found.steps,
            vec![
                StepName::Device("gone".into()).id(),
                StepName::Device("leaving".into()).id(),
                StepName::Device("replaced".into()).id(),
                StepName::Dns.id()
            ]
        );
        assert_eq!(
            found.found,
            vec![
                "gone: device d-2 (run 1) is gone",
                "leaving: device d-3 (run 2) is deprovisioning",
                "replaced: device d-4 (run 2) is gone; d-9 carries its tag",
                "record(s) b.example.com. written by run 1 are missing",
            ]
        );

        let mut history = History {
            recorded: [
                StepName::Device("kept".into()).id(),
                StepName::Device("gone".into()).id(),
                StepName::Dns.id(),
            ]
            .into(),
            ..History::default()
        };
        found.apply(&mut history);
        assert_eq!(
            history.recorded,
            [StepName::Device("kept".into()).id()].into()
        );
        assert_eq!(history.gone.len(), 3);
    }

    #[test]
    fn devices_this_journal_neither_recorded_nor_set_out_to_create_are_foreign() {
        let device = |id: &str, host: &str, state: &str| -> Device {
            serde_json::from_value(serde_json::json!({
                "id": id, "hostname": host, "state": state,
                "tags": [crate::packet::node_tag(host)],
            }))
            .unwrap()
        };
        let devices = [
            device("d-1", "recorded", "active"),
            device("d-2", "intended", "provisioning"),
            device("d-3", "copy-worker-1", "active"),
            device("d-4", "leaving", "deprovisioning"),
            device("d-5", "copy-worker-0", "active"),
        ];
        let recorded = Recorded {
            devices: BTreeMap::from([("recorded".to_owned(), (RunId(1), "d-1".to_owned()))]),
            dns: None,
        };
        let history = History {
            intended: BTreeMap::from([("intended".to_owned(), RunId(2))]),
            ..History::default()
        };
        let ids: Vec<&str> = foreign(&recorded, &history, &devices)
            .iter()
            .map(|d| d.id.as_str())
            .collect();
        assert_eq!(ids, ["d-5", "d-3"]);
    }

    #[test]
    fn a_cloud_that_holds_what_was_recorded_contradicts_nothing() {
        let recorded = Recorded {
            devices: BTreeMap::from([("kept".to_owned(), (RunId(1), "d-1".to_owned()))]),
            dns: None,
        };
        let drift = Drift {
            nodes: vec![node("kept", Some("d-1"), "active")],
            ..Drift::default()
        };
        assert!(Contradictions::find(&recorded, &drift).is_empty());
    }
}
