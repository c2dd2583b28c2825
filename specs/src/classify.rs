//! Which changes between the last run's desired cluster and this one loko can make.
//!
//! The tutorial's "Post-installation modification" lists the only supported changes: add a worker
//! pool; scale a pool up or down, even to 0, deleting the highest indexes; change a pool's `type`,
//! which deletes then recreates its nodes. Anything else (a cluster-wide setting, a pool's labels,
//! removing a pool) would either not reach the running nodes, whose Ignition ran once at first
//! boot, or break the control plane, so it is refused before any API call, naming each field.
//!
//! One change beyond the tutorial's is supported: the `recipients` of the cluster's secrets (a
//! member joining or leaving the team), which touches no node: the next run seals the secrets
//! again to the new set.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use serde_json::Value;

use crate::desired::{DesiredCluster, DesiredPool, worker_hostname};
use crate::names::{MachinePlan, PoolName};

/// A pool whose count changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolScaled {
    pub pool: PoolName,
    pub from: u32,
    pub to: u32,
    /// Hostnames deleted when scaling down: the highest indexes.
    pub nodes_removed: Vec<String>,
    /// Hostnames created when scaling up.
    pub nodes_added: Vec<String>,
}

/// A pool whose plan changed: every node is deleted, then created again with the new plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolRetyped {
    pub pool: PoolName,
    pub from: MachinePlan,
    pub to: MachinePlan,
    /// Hostnames deleted (the previous nodes).
    pub nodes_deleted: Vec<String>,
    /// Hostnames created (the nodes at the new count).
    pub nodes_created: Vec<String>,
}

/// The recipients of the cluster's secrets changed: the next run seals them again.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct RecipientsChanged {
    /// Entries of the new list that the previous one did not name, as the spec writes them.
    pub added: Vec<String>,
    /// Entries of the previous list that the new one does not name, as they were written.
    pub removed: Vec<String>,
}

/// The supported changes from one desired cluster to the next.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ChangeSet {
    pub pools_added: Vec<PoolName>,
    pub pools_scaled: Vec<PoolScaled>,
    pub pools_retyped: Vec<PoolRetyped>,
    /// Every node to delete, over all pools; deletions come before creations.
    pub nodes_to_delete: Vec<String>,
    /// Every node to create, over all pools.
    pub nodes_to_create: Vec<String>,
    /// The recipients of the cluster's secrets, when they changed.
    pub recipients_changed: Option<RecipientsChanged>,
}

impl ChangeSet {
    /// Whether the cluster is already as desired.
    pub fn is_empty(&self) -> bool {
        self.nodes_to_delete.is_empty()
            && self.nodes_to_create.is_empty()
            && self.pools_added.is_empty()
            && self.recipients_changed.is_none()
    }
}

/// One change loko refuses to make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefusedChange {
    /// The spec field, like `network_mtu` or `worker_pools[1].labels`.
    pub path: String,
    /// The previous value, as JSON.
    pub old: String,
    /// The new value, as JSON.
    pub new: String,
    /// Why loko does not make this change.
    pub reason: String,
}

/// Every refused change of a spec; nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
pub struct RefusedChanges {
    pub changes: Vec<RefusedChange>,
}

impl fmt::Display for RefusedChanges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the spec changes {} setting(s) that cannot be changed after installation \
             (supported: add a worker pool, scale a pool's count, change a pool's type):",
            self.changes.len()
        )?;
        for c in &self.changes {
            write!(f, "\n  {}: {} -> {}: {}", c.path, c.old, c.new, c.reason)?;
        }
        Ok(())
    }
}

const POOL_REASON: &str = "a worker's Ignition runs once at first boot, so running workers would not \
     get the change; only a pool's count and type can change (changing type recreates its nodes)";

/// Why a cluster-wide setting cannot change, by spec field.
fn cluster_reason(field: &str) -> &'static str {
    match field {
        "cluster_name" | "dns_zone" | "dns_zone_id" => {
            "it names every node, DNS record and certificate of the cluster; create a new cluster instead"
        }
        "api_address" => {
            "the apiserver's certificate and every kubeconfig name it (and the nodes' kubelets \
             reach the API there); create a new cluster instead"
        }
        "project_id" | "facility" => {
            "every device of the cluster lives there; create a new cluster instead"
        }
        "controller_count" => {
            "etcd membership is fixed at bootstrap; adding or removing controllers is not supported"
        }
        "controller_type" | "os_channel" | "os_arch" | "os_version" | "ipxe_script_url" => {
            "controllers run etcd and the control plane; recreating them would lose the cluster's state"
        }
        "ssh_keys" => {
            "SSH keys are installed by Ignition at first boot; running nodes would not get the change"
        }
        "cluster_domain_suffix"
        | "enable_aggregation"
        | "certs_validity_period_hours"
        | "service_cidr" => {
            "it is baked into the certificates and manifests generated at bootstrap"
        }
        _ => "it is rendered into the nodes' configuration and the network manifests at bootstrap",
    }
}

/// The spec's name of a field of [`crate::desired::ClusterSettings`] or [`DesiredPool`].
fn spec_field(path: &str) -> String {
    let renamed = [
        ("controller_os.channel", "os_channel"),
        ("controller_os.arch", "os_arch"),
        ("controller_os.version", "os_version"),
        ("controller_os.script_url", "ipxe_script_url"),
        ("controller_os.kind", "ipxe_script_url"),
        ("os.channel", "os_channel"),
        ("os.arch", "os_arch"),
        ("os.version", "os_version"),
        ("os.script_url", "ipxe_script_url"),
        ("os.kind", "ipxe_script_url"),
        ("raid", "setup_raid"),
    ];
    for (from, to) in renamed {
        if path == from || path.starts_with(&format!("{from}.")) {
            return to.to_owned();
        }
    }
    // A change deep in a value (an element of a list) is reported for the whole field.
    path.split(['.', '[']).next().unwrap_or(path).to_owned()
}

/// The changed leaves of two JSON values, by spec field; one entry per field.
fn changed_fields(old: &Value, new: &Value) -> BTreeMap<String, (Value, Value)> {
    fn walk(path: &str, old: &Value, new: &Value, out: &mut BTreeMap<String, (Value, Value)>) {
        match (old, new) {
            (Value::Object(a), Value::Object(b)) => {
                let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
                keys.sort();
                keys.dedup();
                for key in keys {
                    let child = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    walk(
                        &child,
                        a.get(key).unwrap_or(&Value::Null),
                        b.get(key).unwrap_or(&Value::Null),
                        out,
                    );
                }
            }
            _ if old != new => {
                out.entry(spec_field(path))
                    .or_insert_with(|| (old.clone(), new.clone()));
            }
            _ => {}
        }
    }
    let mut out = BTreeMap::new();
    walk("", old, new, &mut out);
    out
}

fn json<T: Serialize>(value: &T) -> Value {
    // Plain data serializes to JSON without failure.
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// Pool settings other than count and type, which are the changeable ones.
fn fixed_pool_settings(pool: &DesiredPool) -> Value {
    let mut value = json(pool);
    if let Value::Object(map) = &mut value {
        map.remove("count");
        map.remove("plan");
        map.remove("name");
    }
    value
}

/// Classifies the changes from `previous` (recorded by the last run) to `next`: the supported
/// ones as a [`ChangeSet`], or every unsupported one as [`RefusedChanges`].
pub fn classify(
    previous: &DesiredCluster,
    next: &DesiredCluster,
) -> Result<ChangeSet, RefusedChanges> {
    let mut refused = Vec::new();
    let mut changes = ChangeSet::default();

    for (field, (old, new)) in changed_fields(&json(&previous.settings), &json(&next.settings)) {
        refused.push(RefusedChange {
            reason: cluster_reason(&field).to_owned(),
            path: field,
            old: old.to_string(),
            new: new.to_string(),
        });
    }

    let cluster = &next.settings.cluster_name;
    for old_pool in &previous.pools {
        if !next.pools.iter().any(|p| p.name == old_pool.name) {
            refused.push(RefusedChange {
                path: "worker_pools".into(),
                old: format!("pool {:?} with {} node(s)", old_pool.name.as_str(), old_pool.count),
                new: "(removed)".into(),
                reason: format!(
                    "removing a worker pool is not supported: keep its definition and set `count: 0` to delete its nodes (pool_name: {})",
                    old_pool.name
                ),
            });
        }
    }
    for (i, pool) in next.pools.iter().enumerate() {
        let hostnames = |range: std::ops::Range<u32>| -> Vec<String> {
            range
                .map(|index| worker_hostname(cluster, &pool.name, index))
                .collect()
        };
        let Some(old_pool) = previous.pools.iter().find(|p| p.name == pool.name) else {
            changes.pools_added.push(pool.name.clone());
            changes.nodes_to_create.extend(hostnames(0..pool.count));
            continue;
        };
        for (field, (old, new)) in
            changed_fields(&fixed_pool_settings(old_pool), &fixed_pool_settings(pool))
        {
            refused.push(RefusedChange {
                path: format!("worker_pools[{i}].{field}"),
                old: old.to_string(),
                new: new.to_string(),
                reason: POOL_REASON.to_owned(),
            });
        }
        if old_pool.plan != pool.plan {
            let deleted: Vec<String> = hostnames(0..old_pool.count).into_iter().rev().collect();
            let created = hostnames(0..pool.count);
            changes.nodes_to_delete.extend(deleted.iter().cloned());
            changes.nodes_to_create.extend(created.iter().cloned());
            changes.pools_retyped.push(PoolRetyped {
                pool: pool.name.clone(),
                from: old_pool.plan.clone(),
                to: pool.plan.clone(),
                nodes_deleted: deleted,
                nodes_created: created,
            });
        }
        if old_pool.count != pool.count {
            let removed: Vec<String> = hostnames(pool.count..old_pool.count)
                .into_iter()
                .rev()
                .collect();
            let added = hostnames(old_pool.count..pool.count);
            if old_pool.plan == pool.plan {
                changes.nodes_to_delete.extend(removed.iter().cloned());
                changes.nodes_to_create.extend(added.iter().cloned());
            }
            changes.pools_scaled.push(PoolScaled {
                pool: pool.name.clone(),
                from: old_pool.count,
                to: pool.count,
                nodes_removed: removed,
                nodes_added: added,
            });
        }
    }

    // A device's hardware reservation is fixed at creation; a node that stays must keep its own.
    for node in &next.nodes {
        if changes.nodes_to_create.contains(&node.hostname) {
            continue;
        }
        if let Some(old) = previous
            .node(&node.hostname)
            .filter(|old| old.reservation != node.reservation)
        {
            let path = match &node.pool {
                None => "reservation_ids".to_owned(),
                Some(pool) => {
                    let i = next
                        .pools
                        .iter()
                        .position(|p| &p.name == pool)
                        .unwrap_or_default();
                    format!("worker_pools[{i}].reservation_ids")
                }
            };
            refused.push(RefusedChange {
                path: format!("{path} ({})", node.hostname),
                old: json(&old.reservation).to_string(),
                new: json(&node.reservation).to_string(),
                reason: "the hardware reservation of an existing device cannot change; only nodes created from now on use new reservations".into(),
            });
        }
    }

    changes.recipients_changed = recipients_changed(&previous.recipients(), &next.recipients());

    if next.workers().next().is_none() {
        refused.push(RefusedChange {
            path: "worker_pools".into(),
            old: previous.workers().count().to_string(),
            new: "0".into(),
            reason: "the total of workers must stay > 0".into(),
        });
    }

    if refused.is_empty() {
        Ok(changes)
    } else {
        Err(RefusedChanges { changes: refused })
    }
}

/// The entries added and removed between two lists of recipients, compared as the keys they
/// name: a changed comment, order or duplicate is no change.
pub fn recipients_changed(previous: &[String], next: &[String]) -> Option<RecipientsChanged> {
    // An entry that does not parse (never in a validated spec) is compared as written.
    let key = |entry: &String| {
        vault::Recipients::parse(std::slice::from_ref(entry))
            .ok()
            .and_then(|r| r.iter().next().map(str::to_owned))
            .unwrap_or_else(|| entry.trim().to_owned())
    };
    let previous_keys: Vec<String> = previous.iter().map(key).collect();
    let next_keys: Vec<String> = next.iter().map(key).collect();
    let changed = RecipientsChanged {
        added: next
            .iter()
            .zip(&next_keys)
            .filter(|(_, k)| !previous_keys.contains(k))
            .map(|(entry, _)| entry.clone())
            .collect(),
        removed: previous
            .iter()
            .zip(&previous_keys)
            .filter(|(_, k)| !next_keys.contains(k))
            .map(|(entry, _)| entry.clone())
            .collect(),
    };
    (!changed.added.is_empty() || !changed.removed.is_empty()).then_some(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn desired_fields_are_named_as_in_the_spec() {
        assert_eq!(spec_field("controller_os.channel"), "os_channel");
        assert_eq!(spec_field("os.script_url"), "ipxe_script_url");
        assert_eq!(spec_field("raid.kind"), "setup_raid");
        assert_eq!(spec_field("network_mtu"), "network_mtu");
    }

    #[test]
    fn changes_are_collected_per_field() {
        let old = serde_json::json!({"a": 1, "b": {"c": [1, 2]}, "os": {"kind": "flatcar", "channel": "stable"}});
        let new = serde_json::json!({"a": 2, "b": {"c": [1, 3]}, "os": {"kind": "ipxe", "channel": "stable", "script_url": "x"}});
        let fields: Vec<String> = changed_fields(&old, &new).into_keys().collect();
        assert_eq!(fields, ["a", "b", "ipxe_script_url"]);
    }
}
