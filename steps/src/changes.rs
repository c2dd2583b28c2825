//! `loko plan`: what `loko run` would do to the cluster's resources, from the desired cluster
//! and what the journal knows (refreshed with what exists: [`crate::refresh`]).

use std::collections::BTreeSet;

use serde::Serialize;
use specs::DesiredCluster;

use crate::history::History;
use crate::provider::Change;
use crate::provider::rack::machine_change;
use crate::step_name::StepName;

/// What `loko run` would do to the cluster's resources, counted as Terraform counts them (a
/// replacement is one add and one destroy).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Changes {
    /// Nodes whose device does not exist yet.
    pub create: Vec<String>,
    /// Nodes whose device an earlier run set out to create without recording the result (it
    /// was interrupted): the run looks the device up by tag and adopts it, or creates it if
    /// the create never arrived.
    pub adopt: Vec<String>,
    /// Nodes whose recorded device is gone from the cloud (deleted behind loko's back, or by
    /// an interrupted destroy), with the run that recorded it: created again.
    pub recreate: Vec<(String, journal::RunId)>,
    /// Nodes whose device is deleted and created again (their pool's type changed).
    pub replace: Vec<String>,
    /// Nodes whose device is deleted (their pool shrank).
    pub delete: Vec<String>,
    /// Workers drained before their device is deleted (the replaced and the deleted): cordoned,
    /// their pods evicted, their Node deleted ([`crate::drain`]).
    pub drain: Vec<String>,
    /// `--skip-drain`: their devices are deleted without draining (set by the run).
    pub drain_skipped: bool,
    /// DNS records written for the first time.
    pub records: Vec<String>,
    /// The nodes are a rack's machines (`provider: redfish`): booted and powered off, not
    /// created and deleted.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub rack: bool,
}

impl Changes {
    /// The devices the run creates: new nodes', replacements' and those gone from the cloud.
    pub fn devices_to_create(&self) -> usize {
        self.create.len() + self.replace.len() + self.recreate.len()
    }

    /// `(add, change, destroy)`.
    pub fn counts(&self) -> (usize, usize, usize) {
        (
            self.devices_to_create() + self.records.len(),
            0,
            self.replace.len() + self.delete.len(),
        )
    }
}

/// How a plan names what happens to a node's machine: Packet's devices are created and
/// deleted; a rack's machines exist before and after, booted and powered off.
struct Wording {
    create: &'static str,
    /// The verb and what follows the node's name.
    replace: (&'static str, &'static str),
    delete: (&'static str, &'static str),
    adopt: &'static str,
    /// The verb and what follows the node's name, before the run that made it.
    recreate: (&'static str, &'static str),
    total: &'static str,
}

const DEVICES: Wording = Wording {
    create: "create",
    replace: ("replace", ""),
    delete: ("delete", ""),
    adopt: "its create was sent by an interrupted run; created if it never arrived",
    recreate: ("create", "gone since run"),
    total: "Devices to create",
};

const MACHINES: Wording = Wording {
    create: "boot",
    replace: (
        "replace",
        " (its old machine powered off, the new one booted)",
    ),
    delete: ("retire", " (its machine powered off)"),
    adopt: "an interrupted run began booting its machine; adopted if it is on, booted if not",
    recreate: ("power on", "found off; from its disk, as installed by run"),
    total: "Machines to boot",
};

impl std::fmt::Display for Changes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let words = match self.rack {
            true => &MACHINES,
            false => &DEVICES,
        };
        for name in &self.adopt {
            writeln!(f, "  ~ adopt {name} ({})", words.adopt)?;
        }
        for (name, run) in &self.recreate {
            let (verb, since) = words.recreate;
            writeln!(f, "  + {verb} {name} ({since} {run})")?;
        }
        for (sign, (what, note), names) in [
            ("+", (words.create, ""), &self.create),
            ("-/+", words.replace, &self.replace),
            ("-", words.delete, &self.delete),
            ("+", ("record", ""), &self.records),
        ] {
            for name in names {
                writeln!(f, "  {sign} {what} {name}{note}")?;
            }
        }
        for name in &self.drain {
            match self.drain_skipped {
                false => writeln!(
                    f,
                    "  ~ drain {name} first (cordon, evict its pods as their disruption budgets allow, delete its Node)"
                )?,
                true => writeln!(f, "  ! {name} is not drained (--skip-drain)")?,
            }
        }
        let (add, change, destroy) = self.counts();
        write!(
            f,
            "Plan: {add} to add, {change} to change, {destroy} to destroy"
        )?;
        match self.adopt.len() {
            0 => write!(f, ".")?,
            n => write!(f, ", {n} to adopt.")?,
        }
        write!(f, "\n{}: {}.", words.total, self.devices_to_create())
    }
}

/// The nodes of a rack whose machine can only be replaced ([`machine_change`]: another MAC,
/// another install disk); a change of a machine the provider cannot make is refused, naming
/// the machine and its field.
fn machines_replaced(
    previous: &DesiredCluster,
    desired: &DesiredCluster,
) -> Result<Vec<String>, specs::RefusedChanges> {
    let mut replaced = Vec::new();
    let mut refused = Vec::new();
    let mut refuse =
        |is: &specs::Machine, field: &str, old: String, new: String, reason: String| {
            refused.push(specs::RefusedChange {
                path: format!("machines[{}].{field}", is.name),
                old,
                new,
                reason,
            });
        };
    for node in &desired.nodes {
        let Some(is) = node.machine.as_ref() else {
            continue;
        };
        // A machine that was another node's: two steps would act on it at once (one retiring
        // or replacing it, one booting it), and its node's data is on its disk.
        if let Some(other) = previous.nodes.iter().find(|n| {
            n.hostname != node.hostname && n.machine.as_ref().is_some_and(|m| m.mac == is.mac)
        }) {
            refuse(
                is,
                "mac",
                other.hostname.clone(),
                node.hostname.clone(),
                format!(
                    "MAC {} was node {}'s machine; a machine changes nodes by leaving the spec in one run and coming back in the next",
                    is.mac, other.hostname
                ),
            );
            continue;
        }
        let Some(before) = previous.nodes.iter().find(|n| n.hostname == node.hostname) else {
            continue;
        };
        if node.role == specs::Role::Controller && before.index != node.index {
            refuse(
                is,
                "role",
                format!("controller {}", before.index),
                format!("controller {}", node.index),
                "controllers are the etcd members in the order the spec lists them: keep their order".into(),
            );
            continue;
        }
        let Some(was) = before.machine.as_ref() else {
            continue;
        };
        match machine_change(was, is) {
            Change::None => {}
            Change::Recreate { why } if node.role == specs::Role::Controller => {
                let (field, old, new) = match was.mac != is.mac {
                    true => ("mac", was.mac.to_string(), is.mac.to_string()),
                    false => (
                        "install_disk",
                        was.install_disk.clone(),
                        is.install_disk.clone(),
                    ),
                };
                refuse(
                    is,
                    field,
                    old,
                    new,
                    format!(
                        "{why}; a controller is not replaced: its etcd member's data is on its disk"
                    ),
                );
            }
            Change::Recreate { .. } => replaced.push(node.hostname.clone()),
            Change::Refused { field, why } => {
                let value = |m: &specs::Machine| {
                    serde_json::to_value(m)
                        .ok()
                        .and_then(|v| v.get(&field).map(ToString::to_string))
                        .unwrap_or_default()
                };
                refuse(is, &field, value(was), value(is), why);
            }
        }
    }
    match refused.is_empty() {
        true => Ok(replaced),
        false => Err(specs::RefusedChanges { changes: refused }),
    }
}

/// The changes from what the journal knows to `desired`; refused changes are errors naming
/// the spec fields.
pub fn changes(
    desired: &DesiredCluster,
    history: &History,
) -> Result<Changes, specs::RefusedChanges> {
    let retyped: BTreeSet<String> = match &history.previous {
        Some(previous) => {
            let mut replaced: BTreeSet<String> = specs::classify(previous, desired)?
                .pools_retyped
                .into_iter()
                .flat_map(|r| r.nodes_deleted)
                .collect();
            replaced.extend(machines_replaced(previous, desired)?);
            replaced
        }
        None => BTreeSet::new(),
    };
    let wanted: BTreeSet<&str> = desired.nodes.iter().map(|n| n.hostname.as_str()).collect();
    let mut changes = Changes {
        rack: desired.settings.provider() == specs::Provider::Redfish,
        ..Changes::default()
    };
    for node in &desired.nodes {
        if retyped.contains(&node.hostname) {
            changes.replace.push(node.hostname.clone());
        } else if let Some(run) = history.gone.get(&node.hostname) {
            changes.recreate.push((node.hostname.clone(), *run));
        } else if history.intended.contains_key(&node.hostname) {
            changes.adopt.push(node.hostname.clone());
        } else if !history
            .recorded
            .contains(&StepName::node_machine(node).id())
        {
            changes.create.push(node.hostname.clone());
        }
    }
    changes.delete = history
        .known_nodes
        .iter()
        .filter(|host| !wanted.contains(host.as_str()))
        .filter(|host| !StepName::removal_recorded(host, |id| history.recorded.contains(id)))
        .cloned()
        .collect();
    changes.drain = changes
        .replace
        .iter()
        .chain(&changes.delete)
        .cloned()
        .collect();
    if !history.recorded.contains(&StepName::Dns.id()) {
        changes.records = desired.dns_records.iter().map(|r| r.name.clone()).collect();
    }
    Ok(changes)
}
