//! What the apiservers' clients changed of a cluster's nodes ([`NodeChanges`]: cordons,
//! deletions, evictions), which the derived Nodes and pods read, and the log of those changes
//! beside the Packet device deletions ([`ApiEvents`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::kubelet::Kubelet;

/// One change the simulator saw, in the order it saw them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiEvent {
    /// When it happened (wall clock).
    pub at: DateTime<Utc>,
    /// The API verb: `patch`, `create` (an eviction), `delete`.
    pub verb: String,
    /// What it changed: `nodes/<n>`, `pods/<ns>/<name>/eviction`, `packet/devices/<hostname>`.
    pub object: String,
    /// Who: the client certificate's user, or `packet` for a device deletion.
    pub user: String,
    /// What the change was, when the verb does not say (`spec.unschedulable=true`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// The ordered log of cordons, evictions, Node deletions and device deletions of a simulator.
#[derive(Clone, Debug, Default)]
pub struct ApiEvents {
    events: Arc<Mutex<Vec<ApiEvent>>>,
}

impl ApiEvents {
    /// Appends a change made now.
    pub fn record(&self, verb: &str, object: String, user: &str, detail: String) {
        let event = ApiEvent {
            at: Utc::now(),
            verb: verb.to_owned(),
            object,
            user: user.to_owned(),
            detail,
        };
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(event);
    }

    /// Every change so far, oldest first.
    pub fn snapshot(&self) -> Vec<ApiEvent> {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// What drains changed of a cluster's nodes, each for the registration (the kubelet's
/// `registered_at`) it was made to.
#[derive(Debug, Default)]
pub struct NodeChanges {
    cordoned: BTreeMap<String, DateTime<Utc>>,
    deleted: BTreeMap<String, DateTime<Utc>>,
    /// `(namespace, owner, node)`: the owner's pod was evicted from the node.
    evicted: BTreeSet<(String, String, String)>,
}

impl NodeChanges {
    /// Cordons (`on`) or uncordons `kubelet`'s Node.
    pub(super) fn set_cordoned(&mut self, kubelet: &Kubelet, on: bool) {
        if on {
            self.cordoned
                .insert(kubelet.node_name.clone(), kubelet.registered_at);
        } else {
            self.cordoned.remove(&kubelet.node_name);
        }
    }

    /// Deletes `kubelet`'s Node (until it registers again).
    pub(super) fn delete(&mut self, kubelet: &Kubelet) {
        self.deleted
            .insert(kubelet.node_name.clone(), kubelet.registered_at);
    }

    /// Keeps the pods of `owner` of `namespace` off `node`: one was evicted from it.
    pub(super) fn evict(&mut self, namespace: &str, owner: String, node: String) {
        self.evicted.insert((namespace.to_owned(), owner, node));
    }

    /// Whether `kubelet`'s Node is cordoned.
    pub(super) fn cordoned(&self, kubelet: &Kubelet) -> bool {
        self.cordoned.get(&kubelet.node_name) == Some(&kubelet.registered_at)
    }

    /// Whether `kubelet`'s Node was deleted (and the kubelet has not registered since).
    pub(super) fn deleted(&self, kubelet: &Kubelet) -> bool {
        self.deleted.get(&kubelet.node_name) == Some(&kubelet.registered_at)
    }

    /// Whether the pods of `owner` are kept off `kubelet`'s node: one of them was evicted from
    /// it, or one was evicted anywhere and the node is cordoned (the replacement is a new pod,
    /// which a cordoned node does not take).
    pub(super) fn keeps_off(&self, namespace: &str, owner: &str, kubelet: &Kubelet) -> bool {
        let mut evicted = self
            .evicted
            .iter()
            .filter(|(ns, name, _)| ns == namespace && name == owner);
        let mut any = false;
        let here = evicted.any(|(_, _, node)| {
            any = true;
            *node == kubelet.node_name
        });
        here || (any && self.cordoned(kubelet))
    }
}
