//! What the apiservers' clients changed of a cluster's nodes ([`NodeChanges`]: cordons,
//! deletions, evictions), which the derived Nodes and pods read, and the log of those changes
//! beside the Packet device deletions ([`ApiEvents`]).

use std::cell::RefCell;
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
    /// What the change was, when the verb does not say (`spec.unschedulable=true`), or an
    /// evicted pod's node (`nodeName=<n>`).
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
    /// `(namespace, owner, replica)` to the node the scheduler bound that pod to. Pods are
    /// derived on every read, but a bound pod stays on its node until it is evicted or its
    /// Node deleted, as a real pod does: placing them afresh each time would move pods that
    /// no drain touched (a drain of another node would seem to empty this one). Written while
    /// the pods are derived, under the lock that guards these changes, hence the cell.
    placed: RefCell<BTreeMap<(String, String, u64), String>>,
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

    /// Whether a pod of `owner` was evicted from `kubelet`'s node: its ReplicaSet places none
    /// there again.
    pub(super) fn evicted_from(&self, namespace: &str, owner: &str, kubelet: &Kubelet) -> bool {
        self.evicted
            .iter()
            .any(|(ns, name, node)| ns == namespace && name == owner && *node == kubelet.node_name)
    }

    /// The node replica `replica` of `owner` was placed on, if it was.
    pub(super) fn placed(&self, namespace: &str, owner: &str, replica: u64) -> Option<String> {
        self.placed
            .borrow()
            .get(&(namespace.to_owned(), owner.to_owned(), replica))
            .cloned()
    }

    /// Remembers where replica `replica` of `owner` runs (`None`: nowhere, unschedulable).
    pub(super) fn place(&self, namespace: &str, owner: &str, replica: u64, node: Option<&str>) {
        let key = (namespace.to_owned(), owner.to_owned(), replica);
        let mut placed = self.placed.borrow_mut();
        match node {
            Some(node) => placed.insert(key, node.to_owned()),
            None => placed.remove(&key),
        };
    }
}
