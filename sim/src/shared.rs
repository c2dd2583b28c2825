//! The state every handler serves from ([`Shared`]): the [`World`] behind a mutex that is never
//! held across an `.await` (handlers take it, decide, release it, then persist or talk to the
//! node side), the clock, the node side, persistence after every mutation, and shutdown.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::clock::{SimClock, Timings, sim_duration, sim_time};
use crate::config::Token;
use crate::faults::{FaultPlan, FaultPlanError, FaultState, NodeFaults};
use crate::lifecycle::{NodeLifecycle, NodeSpec};
use crate::packet::model::{Device, NodeChange};
use crate::rate_limit::{RateLimit, RateWindow};
use crate::state::SimState;
use crate::state_file::Persister;
use crate::world::World;

/// How long, in simulated time, before its device turns active a machine boots.
const BOOT_AHEAD: chrono::Duration = chrono::Duration::seconds(20);

/// Machines booted ahead per hold of the node gate.
const BOOT_BATCH: usize = 32;

/// State shared by every handler.
pub(crate) struct Shared {
    world: Mutex<World>,
    clock: SimClock,
    timings: Timings,
    token: Token,
    /// Packet's rate limit, its window converted to real time (the gate counts real instants).
    rate_limit: RateLimit,
    nodes: Arc<dyn NodeLifecycle>,
    /// Serializes node starts and stops, so that a request that syncs nodes waits for a tick
    /// that is already starting the same machine.
    node_gate: tokio::sync::Mutex<()>,
    persister: Option<Persister>,
    /// Set once, at shutdown; requests held by latency faults and the server watch it.
    stop: tokio::sync::watch::Sender<bool>,
}

impl Shared {
    pub(crate) fn new(
        world: World,
        clock: SimClock,
        timings: Timings,
        token: Token,
        rate_limit: RateLimit,
        nodes: Arc<dyn NodeLifecycle>,
        persister: Option<Persister>,
    ) -> Self {
        Shared {
            world: Mutex::new(world),
            clock,
            timings,
            token,
            rate_limit: RateLimit {
                window: clock.to_real(sim_time(rate_limit.window)),
                ..rate_limit
            },
            nodes,
            node_gate: tokio::sync::Mutex::new(()),
            persister,
            stop: tokio::sync::watch::Sender::new(false),
        }
    }

    /// Starts shutting down: the server stops accepting, held requests end.
    pub(crate) fn request_stop(&self) {
        self.stop.send_replace(true);
    }

    /// Resolves once shutdown was requested.
    pub(crate) async fn stopping(&self) {
        let mut stop = self.stop.subscribe();
        // An error means the sender is gone, which happens only when everything is dropped.
        let _ = stop.wait_for(|stopping| *stopping).await;
    }

    /// The world, even if a handler panicked while holding it: every mutation leaves it
    /// consistent before anything can panic, so the data is still good.
    pub(crate) fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn clock(&self) -> SimClock {
        self.clock
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub(crate) fn timings(&self) -> &Timings {
        &self.timings
    }

    /// The token clients must send.
    pub(crate) fn token(&self) -> &Token {
        &self.token
    }

    /// Packet's rate limit, its window in real time.
    pub(crate) fn rate_limit(&self) -> &RateLimit {
        &self.rate_limit
    }

    /// The one way handlers change the world: runs `change` under the lock, then persists
    /// before returning, so no answer goes out before its effect is on disk. A refused change
    /// leaves the world as it was (every operation validates before it mutates); persisting
    /// then only rewrites the same data.
    pub(crate) async fn mutate<T, E>(
        &self,
        change: impl FnOnce(&mut World, DateTime<Utc>) -> Result<T, E>,
    ) -> Result<T, E> {
        let result = {
            let mut world = self.world();
            let result = change(&mut world, self.now());
            world.mark_mutated();
            result
        };
        self.persist().await;
        result
    }

    /// Writes the state file if anything changed since the last write. Returns after the data
    /// is on disk, so a client that got an answer finds its effect after a crash.
    pub(crate) async fn persist(&self) {
        let Some(persister) = &self.persister else {
            return;
        };
        let (generation, snapshot) = {
            let world = self.world();
            (world.generation, world.snapshot(self.now()))
        };
        if let Err(e) = persister.write(generation, &snapshot).await {
            tracing::error!(error = %e, "cannot persist the simulator state");
        }
    }

    /// Starts the machines of devices that became active and stops those of devices that left
    /// `active`.
    /// Starts and stops machines; returns true when there are more to boot ahead.
    ///
    /// `ahead` (the ticker): boots, in batches of [`BOOT_BATCH`] so that requests get the gate
    /// in between, the machines of devices that turn active within [`BOOT_AHEAD`], as a real
    /// machine boots while its device provisions. Otherwise (before and after every request)
    /// only those already due: an answer never says "active" before the machine is up. Without
    /// the lead, a thousand devices turning active together made every request wait while a
    /// thousand machines booted on the simulator's host.
    pub(crate) async fn sync_nodes(&self, ahead: bool) -> bool {
        let _gate = self.node_gate.lock().await;
        let now = self.now();
        let keep_by = now + BOOT_AHEAD;
        let (start_by, max_starts) = if ahead {
            (keep_by, BOOT_BATCH)
        } else {
            (now, usize::MAX)
        };
        let (changes, node_faults) = {
            let mut world = self.world();
            let changes = world
                .packet
                .node_changes(start_by, keep_by, max_starts, &self.timings);
            (changes, world.faults.plan().nodes.clone())
        };
        let starts = changes
            .iter()
            .filter(|c| matches!(c, NodeChange::Start(_)))
            .count();
        // Stops first (a replacement takes over its predecessor's hostname), then the starts
        // side by side: on Packet a thousand machines boot at once, not one after another.
        let mut booting = tokio::task::JoinSet::new();
        let (stops, others): (Vec<NodeChange>, Vec<NodeChange>) = changes
            .into_iter()
            .partition(|c| matches!(c, NodeChange::Stop(_)));
        for change in stops.into_iter().chain(others) {
            match change {
                NodeChange::Start(device) => {
                    let spec = self.node_spec(&device, now, &node_faults);
                    let nodes = Arc::clone(&self.nodes);
                    booting.spawn(async move {
                        if let Err(e) = nodes.start_node(spec).await {
                            tracing::warn!(device = %device.id, hostname = %device.hostname, error = %e, "cannot start the node of an active device");
                        }
                    });
                }
                NodeChange::Stop(id) => self.nodes.stop_node(&id.to_string()).await,
            }
        }
        while booting.join_next().await.is_some() {}
        ahead && starts == BOOT_BATCH
    }

    /// What the node side needs to boot `device`'s machine now.
    fn node_spec(&self, device: &Device, now: DateTime<Utc>, node_faults: &NodeFaults) -> NodeSpec {
        NodeSpec {
            device_id: device.id.to_string(),
            hostname: device.hostname.clone(),
            public_ip: device.public_ipv4,
            private_ip: device.private_ipv4,
            user_data: device.userdata.clone(),
            // Counted from the device turning active, not from the early boot.
            ssh_refused_for: if node_faults.ssh_refused_for_secs > 0.0 {
                let until_active =
                    (device.active_at(&self.timings) - now).max(chrono::Duration::zero());
                self.clock
                    .to_real(until_active + sim_duration(node_faults.ssh_refused_for_secs))
            } else {
                Duration::ZERO
            },
            apiserver_start_delay: self
                .clock
                .to_real(sim_duration(node_faults.apiserver_start_delay_secs)),
            packet_metadata: true,
        }
    }

    /// Reboots the running machine of `hostname`: it stops (its SSH, kubelet and apiserver
    /// go) and boots again from its disk. False when no machine of that name runs.
    pub(crate) async fn reboot_node(&self, hostname: &str) -> bool {
        let _gate = self.node_gate.lock().await;
        let now = self.now();
        let (device, node_faults) = {
            let world = self.world();
            (
                world.packet.running_node(hostname),
                world.faults.plan().nodes.clone(),
            )
        };
        let Some(device) = device else {
            return false;
        };
        let spec = self.node_spec(&device, now, &node_faults);
        self.nodes.stop_node(&device.id.to_string()).await;
        if let Err(e) = self.nodes.start_node(spec).await {
            tracing::warn!(hostname, error = %e, "cannot boot the node again");
        }
        true
    }

    /// Stops every machine (at shutdown).
    pub(crate) async fn stop_all_nodes(&self) {
        let _gate = self.node_gate.lock().await;
        let running = self.world().packet.take_running_nodes();
        for id in running {
            self.nodes.stop_node(&id.to_string()).await;
        }
    }

    /// The log of the apiservers' changes, which device deletions join.
    pub(crate) fn api_events(&self) -> crate::apiserver::ApiEvents {
        self.nodes.api_events()
    }

    pub(crate) fn state(&self) -> SimState {
        let now = self.now();
        let world = self.world();
        SimState::build(
            &world,
            now,
            &self.timings,
            self.nodes.static_pods(),
            self.nodes.kubelets(),
            self.nodes.api_events().snapshot(),
        )
    }

    /// Closes the rate limit's window: the next request opens a fresh one.
    pub(crate) fn restart_rate_window(&self) {
        self.world().rate_window = RateWindow::default();
    }

    pub(crate) fn set_faults(&self, plan: FaultPlan) -> Result<(), FaultPlanError> {
        plan.validate()?;
        tracing::info!(seed = plan.seed, "fault plan replaced");
        self.world().faults = FaultState::new(plan);
        Ok(())
    }
}
