//! What `GET /_sim/state` and [`crate::SimHandle::state`] show: everything a test needs to check
//! outcomes, including what the APIs hide (deleted devices, devices moved out of the project).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::clock::Timings;
use crate::faults::DeviceFate;
use crate::packet::catalog::Arch;
use crate::world::World;

/// A view of the whole simulation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimState {
    /// The simulated time of the view.
    pub now: DateTime<Utc>,
    /// Every device ever created, oldest first.
    pub devices: Vec<DeviceRecord>,
    /// Every hosted zone with its record sets.
    pub hosted_zones: Vec<HostedZoneRecord>,
    /// Requests received, by operation name (see [`crate::faults::OPERATIONS`]).
    pub requests: BTreeMap<String, u64>,
    /// Rate-limit answers sent (Packet 429s and Route53 `Throttling`), real or injected.
    pub rate_limited_responses: u64,
    /// Faults the fault plan injected, by kind: `rate_limited`, `server_error`,
    /// `lost_response`, `malformed_json`, `truncated_json`.
    #[serde(default)]
    pub injected_faults: BTreeMap<String, u64>,
    /// Each running node's static pods (by hostname, then pod name) and whether they run.
    #[serde(default)]
    pub static_pods: BTreeMap<String, BTreeMap<String, crate::lifecycle::StaticPodStatus>>,
    /// Whether each running node's kubelet started, and why not, by hostname.
    #[serde(default)]
    pub kubelets: BTreeMap<String, crate::lifecycle::KubeletStatus>,
    /// Cordons, evictions and Node deletions through the apiservers, and device deletions
    /// through the Packet API, in the order they happened, with who made each.
    #[serde(default)]
    pub api_events: Vec<crate::apiserver::ApiEvent>,
}

/// One device, as the simulator knows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceRecord {
    /// The device UUID.
    pub id: String,
    /// The owning project's UUID.
    pub project_id: String,
    /// The hostname.
    pub hostname: String,
    /// The state, including `deleted` and `failed_moved_out_of_project`.
    pub state: String,
    /// The fate the fault plan gave it.
    pub fate: DeviceFate,
    /// The plan slug.
    pub plan: String,
    /// The plan's architecture.
    pub arch: Arch,
    /// The facility code.
    pub facility: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Public IPv4 (on the loopback range).
    pub public_ipv4: Ipv4Addr,
    /// Private IPv4.
    pub private_ipv4: Ipv4Addr,
    /// The hardware reservation it took.
    pub hardware_reservation_id: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// When `DELETE` was accepted.
    pub delete_requested_at: Option<DateTime<Utc>>,
    /// When it left its owner's view (deprovisioned or moved out), if it has.
    pub deleted_at: Option<DateTime<Utc>>,
}

/// One hosted zone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostedZoneRecord {
    /// Bare zone id (`Z...`).
    pub id: String,
    /// Fully qualified name with the trailing dot.
    pub name: String,
    /// Record sets in AWS's order.
    pub record_sets: Vec<RecordSetRecord>,
}

/// One record set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordSetRecord {
    /// Fully qualified name with the trailing dot.
    pub name: String,
    /// Record type, e.g. `A`.
    #[serde(rename = "type")]
    pub rtype: String,
    /// TTL in seconds.
    pub ttl: Option<u64>,
    /// The values.
    pub values: Vec<String>,
}

impl SimState {
    pub(crate) fn build(
        world: &World,
        now: DateTime<Utc>,
        t: &Timings,
        static_pods: BTreeMap<String, BTreeMap<String, crate::lifecycle::StaticPodStatus>>,
        kubelets: BTreeMap<String, crate::lifecycle::KubeletStatus>,
        api_events: Vec<crate::apiserver::ApiEvent>,
    ) -> SimState {
        let mut devices: Vec<DeviceRecord> = world
            .packet
            .devices
            .values()
            .map(|d| DeviceRecord {
                id: d.id.to_string(),
                project_id: d.project_id.to_string(),
                hostname: d.hostname.clone(),
                state: d.status(now, t).sim_state().to_owned(),
                fate: d.fate,
                plan: d.plan.clone(),
                arch: d.arch(),
                facility: d.facility.clone(),
                tags: d.tags.clone(),
                public_ipv4: d.public_ipv4,
                private_ipv4: d.private_ipv4,
                hardware_reservation_id: d.hardware_reservation_id.map(|r| r.to_string()),
                created_at: d.created_at,
                delete_requested_at: d.delete_requested_at,
                deleted_at: d.gone_at(t).filter(|gone| *gone <= now),
            })
            .collect();
        devices.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        let hosted_zones = world
            .route53
            .zones_by_name()
            .into_iter()
            .map(|z| HostedZoneRecord {
                id: z.id.clone(),
                name: z.name.clone(),
                record_sets: z
                    .record_sets
                    .values()
                    .map(|s| RecordSetRecord {
                        name: s.name.clone(),
                        rtype: s.rtype.clone(),
                        ttl: s.ttl,
                        values: s.values.clone(),
                    })
                    .collect(),
            })
            .collect();
        SimState {
            now,
            devices,
            hosted_zones,
            requests: world.stats.requests.clone(),
            rate_limited_responses: world.stats.rate_limited,
            injected_faults: world.stats.injected.clone(),
            static_pods,
            kubelets,
            api_events,
        }
    }
}
