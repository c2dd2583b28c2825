//! Everything mutable of the simulated clouds, in one [`World`]: the Packet and Route53 models,
//! the request counters, the faults in force and the rate limit's window; and what of it the
//! state file keeps ([`SavedState`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::Token;
use crate::faults::{FaultPlan, FaultState};
use crate::packet::model::PacketCloud;
use crate::rate_limit::RateWindow;
use crate::route53::model::Route53;

/// Everything mutable: the clouds, counters, faults and the rate-limit window.
pub(crate) struct World {
    pub(crate) project_id: uuid::Uuid,
    pub(crate) token: Token,
    pub(crate) packet: PacketCloud,
    pub(crate) route53: Route53,
    pub(crate) stats: Stats,
    pub(crate) faults: FaultState,
    pub(crate) rate_window: RateWindow,
    /// Bumped by every mutation; persistence skips snapshots older than the last one written.
    pub(crate) generation: u64,
    /// The address served, kept in the state so that a restart serves the same one.
    pub(crate) listen: Option<std::net::SocketAddr>,
}

/// Request counters, by operation name.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Stats {
    pub(crate) requests: BTreeMap<String, u64>,
    pub(crate) rate_limited: u64,
    /// Faults injected by the plan, by kind (`server_error`, `lost_response`, ...).
    #[serde(default)]
    pub(crate) injected: BTreeMap<String, u64>,
}

/// What is persisted: the clouds, the counters, and the clock reading at save time.
#[derive(Serialize, Deserialize)]
pub(crate) struct SavedState {
    pub(crate) format: u32,
    /// Real (wall clock) time of the save.
    pub(crate) saved_at: DateTime<Utc>,
    /// Simulated time of the save.
    pub(crate) sim_now: DateTime<Utc>,
    /// The project and token clients use, so a restarted simulator keeps them.
    pub(crate) project_id: uuid::Uuid,
    pub(crate) token: String,
    /// The address served, so that a restart keeps the endpoints a spec holds (absent in
    /// states saved before it was kept).
    #[serde(default)]
    pub(crate) listen: Option<std::net::SocketAddr>,
    pub(crate) packet: PacketCloud,
    pub(crate) route53: Route53,
    pub(crate) stats: Stats,
}

pub(crate) const SAVED_STATE_FORMAT: u32 = 1;

impl World {
    pub(crate) fn new(
        (project_id, token): (uuid::Uuid, Token),
        packet: PacketCloud,
        route53: Route53,
        stats: Stats,
        faults: FaultPlan,
    ) -> Self {
        World {
            project_id,
            token,
            packet,
            route53,
            stats,
            faults: FaultState::new(faults),
            rate_window: RateWindow::default(),
            generation: 0,
            listen: None,
        }
    }

    /// Records that the clouds changed, so the next persist writes them.
    pub(crate) fn mark_mutated(&mut self) {
        self.generation += 1;
    }

    pub(crate) fn snapshot(&self, sim_now: DateTime<Utc>) -> SavedState {
        SavedState {
            format: SAVED_STATE_FORMAT,
            saved_at: Utc::now(),
            sim_now,
            project_id: self.project_id,
            token: self.token.expose().to_owned(),
            listen: self.listen,
            packet: self.packet.clone(),
            route53: self.route53.clone(),
            stats: self.stats.clone(),
        }
    }
}
