//! The HTTP server: routes, the gate every API request passes (count, authenticate, rate limit,
//! inject faults), the node ticker and persistence after every mutation.
//!
//! All cloud state lives in one [`World`] behind a mutex that is never held across an `.await`;
//! handlers take it, decide, release it, then persist or talk to the node side.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::clock::{SimClock, sim_duration};

/// How long, in simulated time, before its device turns active a machine boots.
const BOOT_AHEAD: chrono::Duration = chrono::Duration::seconds(20);

/// Machines booted ahead per hold of the node gate.
const BOOT_BATCH: usize = 32;
use crate::faults::{ANY_OPERATION, FaultPlan};
use crate::lifecycle::{NodeLifecycle, NodeSpec};
use crate::packet::api as packet;
use crate::packet::model::{Device, NodeChange, PacketCloud};
use crate::persist::Persister;
use crate::route53::api as route53;
use crate::route53::model::Route53;
use crate::state::SimState;
use crate::{RateLimit, Timings, Token};

/// State shared by every handler.
pub(crate) struct Shared {
    world: Mutex<World>,
    clock: SimClock,
    timings: Timings,
    token: Token,
    rate_limit: RateLimit,
    nodes: Arc<dyn NodeLifecycle>,
    /// Serializes node starts and stops, so that a request that syncs nodes waits for a tick
    /// that is already starting the same machine.
    node_gate: tokio::sync::Mutex<()>,
    persister: Option<Persister>,
    /// Set once, at shutdown; requests held by latency faults and the server watch it.
    stop: tokio::sync::watch::Sender<bool>,
}

/// Everything mutable: the clouds, counters, faults and the rate-limit window.
pub(crate) struct World {
    project_id: uuid::Uuid,
    token: Token,
    pub(crate) packet: PacketCloud,
    pub(crate) route53: Route53,
    pub(crate) stats: Stats,
    pub(crate) faults: FaultState,
    rate_window: RateWindow,
    /// Bumped by every mutation; persistence skips snapshots older than the last one written.
    generation: u64,
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
    pub(crate) packet: PacketCloud,
    pub(crate) route53: Route53,
    pub(crate) stats: Stats,
}

pub(crate) const SAVED_STATE_FORMAT: u32 = 1;

/// The fault plan in force and the RNG that draws its decisions.
pub(crate) struct FaultState {
    plan: FaultPlan,
    rng: StdRng,
    bursts: BTreeMap<String, u32>,
}

/// What to do to one request.
#[derive(Debug, Default)]
struct Decision {
    latency: Duration,
    rate_limited: Option<u64>,
    server_error: bool,
    lost_response: bool,
    malformed: bool,
    truncated: bool,
}

impl Decision {
    /// The injected faults of this decision, by name.
    fn kinds(&self) -> impl Iterator<Item = &'static str> {
        [
            (self.rate_limited.is_some(), "rate_limited"),
            (self.server_error, "server_error"),
            (self.lost_response, "lost_response"),
            (self.malformed, "malformed_json"),
            (self.truncated, "truncated_json"),
        ]
        .into_iter()
        .filter_map(|(on, kind)| on.then_some(kind))
    }
}

impl FaultState {
    pub(crate) fn new(plan: FaultPlan) -> Self {
        let bursts = plan
            .operations
            .iter()
            .filter(|(_, f)| f.rate_limited_burst > 0)
            .map(|(name, f)| (name.clone(), f.rate_limited_burst))
            .collect();
        FaultState {
            rng: StdRng::seed_from_u64(plan.seed),
            plan,
            bursts,
        }
    }

    pub(crate) fn plan(&self) -> &FaultPlan {
        &self.plan
    }

    /// A uniform number in `[0, 1)` from the plan's RNG.
    pub(crate) fn roll(&mut self) -> f64 {
        self.rng.random::<f64>()
    }

    fn decide(&mut self, operation: &str) -> Decision {
        let Some(faults) = self.plan.for_operation(operation).cloned() else {
            return Decision::default();
        };
        let key = if self.plan.operations.contains_key(operation) {
            operation
        } else {
            ANY_OPERATION
        };
        let mut decision = Decision {
            latency: Duration::from_millis(faults.latency_ms),
            ..Decision::default()
        };
        if let Some(left) = self.bursts.get_mut(key).filter(|left| **left > 0) {
            *left -= 1;
            decision.rate_limited = Some(faults.retry_after_secs);
            return decision;
        }
        if self.roll() < faults.rate_limited_rate {
            decision.rate_limited = Some(faults.retry_after_secs);
        } else if self.roll() < faults.server_error_rate {
            decision.server_error = true;
        } else if self.roll() < faults.lost_response_rate {
            decision.lost_response = true;
        } else if self.roll() < faults.malformed_json_rate {
            decision.malformed = true;
        } else if self.roll() < faults.truncated_json_rate {
            decision.truncated = true;
        }
        decision
    }
}

/// A fixed window of real time in which at most `RateLimit::requests` Packet requests pass.
/// A window opens with the first request after the last one closed.
struct RateWindow {
    started: Option<Instant>,
    used: u32,
}

struct RateDecision {
    allowed: bool,
    remaining: u32,
    reset: Duration,
}

impl RateWindow {
    fn take(&mut self, limit: &RateLimit) -> RateDecision {
        let now = Instant::now();
        let started = match self.started {
            Some(started) if now.duration_since(started) < limit.window => started,
            _ => {
                self.used = 0;
                *self.started.insert(now)
            }
        };
        let allowed = self.used < limit.requests;
        if allowed {
            self.used += 1;
        }
        RateDecision {
            allowed,
            remaining: limit.requests.saturating_sub(self.used),
            reset: limit.window.saturating_sub(now.duration_since(started)),
        }
    }
}

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
            rate_window: RateWindow {
                started: None,
                used: 0,
            },
            generation: 0,
        }
    }

    /// Records that the clouds changed, so the next persist writes them.
    fn mark_mutated(&mut self) {
        self.generation += 1;
    }

    fn snapshot(&self, sim_now: DateTime<Utc>) -> SavedState {
        SavedState {
            format: SAVED_STATE_FORMAT,
            saved_at: Utc::now(),
            sim_now,
            project_id: self.project_id,
            token: self.token.expose().to_owned(),
            packet: self.packet.clone(),
            route53: self.route53.clone(),
            stats: self.stats.clone(),
        }
    }
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
            rate_limit,
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

    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub(crate) fn timings(&self) -> &Timings {
        &self.timings
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
    fn node_spec(
        &self,
        device: &Device,
        now: DateTime<Utc>,
        node_faults: &crate::faults::NodeFaults,
    ) -> NodeSpec {
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

    pub(crate) fn state(&self) -> SimState {
        let now = self.now();
        let world = self.world();
        SimState::build(
            &world,
            now,
            &self.timings,
            self.nodes.static_pods(),
            self.nodes.kubelets(),
        )
    }
}

/// Which API a request belongs to: decides how errors look and how clients authenticate.
#[derive(Clone, Copy, Debug)]
enum Api {
    Packet,
    Route53,
}

impl Api {
    fn error(self, status: StatusCode, code: &str, message: &str) -> Response {
        match self {
            Api::Packet => packet::error(status, vec![message.to_owned()]),
            Api::Route53 => {
                let kind = if status.is_server_error() {
                    "Receiver"
                } else {
                    "Sender"
                };
                route53::error_response(status, kind, code, message)
            }
        }
    }

    fn authenticated(self, shared: &Shared, request: &Request) -> bool {
        let headers = request.headers();
        match self {
            Api::Packet => headers
                .get("x-auth-token")
                .is_some_and(|v| v.as_bytes() == shared.token.expose().as_bytes()),
            // Signatures are not checked: any SigV4 header will do, but one must be there.
            Api::Route53 => headers
                .get(header::AUTHORIZATION)
                .is_some_and(|v| v.as_bytes().starts_with(b"AWS4-HMAC-SHA256 ")),
        }
    }
}

/// The operation name of a matched route, as counted and as fault plans name it.
fn operation(method: &Method, path: &str) -> &'static str {
    match (method.as_str(), path) {
        ("GET", "/metal/v1/projects/{id}") => "packet.projects.get",
        ("GET", "/metal/v1/projects/{id}/devices") => "packet.devices.list",
        ("POST", "/metal/v1/projects/{id}/devices") => "packet.devices.create",
        ("GET", "/metal/v1/devices/{id}") => "packet.devices.get",
        ("PUT", "/metal/v1/devices/{id}") => "packet.devices.update",
        ("DELETE", "/metal/v1/devices/{id}") => "packet.devices.delete",
        ("GET", "/metal/v1/projects/{id}/hardware-reservations") => {
            "packet.hardware_reservations.list"
        }
        ("GET", "/metal/v1/hardware-reservations/{id}") => "packet.hardware_reservations.get",
        ("GET", "/metal/v1/facilities") => "packet.facilities.list",
        ("GET", "/metal/v1/locations/metros") => "packet.metros.list",
        ("GET", "/metal/v1/plans" | "/metal/v1/projects/{id}/plans") => "packet.plans.list",
        ("GET", "/metal/v1/operating-systems") => "packet.operating_systems.list",
        ("POST", "/2013-04-01/hostedzone") => "route53.CreateHostedZone",
        ("GET", "/2013-04-01/hostedzone") => "route53.ListHostedZones",
        ("GET", "/2013-04-01/hostedzonesbyname") => "route53.ListHostedZonesByName",
        ("GET", "/2013-04-01/hostedzone/{id}") => "route53.GetHostedZone",
        ("POST", "/2013-04-01/hostedzone/{id}/rrset" | "/2013-04-01/hostedzone/{id}/rrset/") => {
            "route53.ChangeResourceRecordSets"
        }
        ("GET", "/2013-04-01/hostedzone/{id}/rrset" | "/2013-04-01/hostedzone/{id}/rrset/") => {
            "route53.ListResourceRecordSets"
        }
        ("GET", "/2013-04-01/change/{id}") => "route53.GetChange",
        _ => "other",
    }
}

/// Counts, authenticates, rate limits and injects faults, in that order, as the real services
/// do (an unauthenticated request is never rate limited).
async fn gate(
    State((shared, api)): State<(Arc<Shared>, Api)>,
    request: Request,
    next: Next,
) -> Response {
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let operation = operation(request.method(), &path);
    shared
        .world()
        .stats
        .requests
        .entry(operation.to_owned())
        .and_modify(|n| *n += 1)
        .or_insert(1);

    if !api.authenticated(&shared, &request) {
        return match api {
            Api::Packet => api.error(StatusCode::UNAUTHORIZED, "", "Invalid authentication token"),
            Api::Route53 => api.error(
                StatusCode::FORBIDDEN,
                "MissingAuthenticationToken",
                "Missing Authentication Token",
            ),
        };
    }

    let (rate, decision) = {
        let mut world = shared.world();
        let rate = match api {
            Api::Packet => Some(world.rate_window.take(&shared.rate_limit)),
            Api::Route53 => None,
        };
        let decision = world.faults.decide(operation);
        if rate.as_ref().is_some_and(|r| !r.allowed) || decision.rate_limited.is_some() {
            world.stats.rate_limited += 1;
        }
        for kind in decision.kinds() {
            *world.stats.injected.entry(kind.to_owned()).or_default() += 1;
        }
        (rate, decision)
    };
    let rate_headers = |response: &mut Response| {
        if let Some(rate) = &rate {
            let headers = response.headers_mut();
            headers.insert(
                "x-ratelimit-limit",
                HeaderValue::from(shared.rate_limit.requests),
            );
            headers.insert("x-ratelimit-remaining", HeaderValue::from(rate.remaining));
            headers.insert(
                "x-ratelimit-reset",
                HeaderValue::from(ceil_secs(rate.reset)),
            );
        }
    };

    if !decision.latency.is_zero() {
        tokio::select! {
            () = tokio::time::sleep(decision.latency) => {}
            () = shared.stopping() => {
                return api.error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    "the simulator is shutting down",
                );
            }
        }
    }
    let retry_after = match (&rate, decision.rate_limited) {
        (Some(rate), _) if !rate.allowed => Some(ceil_secs(rate.reset)),
        (_, Some(secs)) => Some(secs),
        _ => None,
    };
    if let Some(retry_after) = retry_after {
        let mut response = match api {
            Api::Packet => api.error(StatusCode::TOO_MANY_REQUESTS, "", "Too Many Requests"),
            // Route53 throttles with a 400 whose code SDKs retry on.
            Api::Route53 => api.error(StatusCode::BAD_REQUEST, "Throttling", "Rate exceeded"),
        };
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        rate_headers(&mut response);
        return response;
    }
    if decision.server_error {
        let mut response = api.error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalFailure",
            "Internal Server Error",
        );
        rate_headers(&mut response);
        return response;
    }

    // Only Packet answers tell device states; Route53 requests do not wait for machines.
    let packet = matches!(api, Api::Packet);
    if packet {
        shared.sync_nodes(false).await;
    }
    let mut response = next.run(request).await;
    // Devices that the request made active (or deleted) get their machines before the client
    // can act on the answer.
    if packet {
        shared.sync_nodes(false).await;
    }

    if decision.lost_response {
        tracing::info!(
            operation,
            "fault: the answer of a completed request is lost"
        );
        return (
            StatusCode::BAD_GATEWAY,
            [(header::CONTENT_TYPE, "text/html")],
            "<html><body><h1>502 Bad Gateway</h1></body></html>",
        )
            .into_response();
    }
    if matches!(api, Api::Packet) && (decision.malformed || decision.truncated) {
        response = break_body(response, decision.truncated).await;
    }
    rate_headers(&mut response);
    response
}

/// Replaces a JSON body by broken JSON, or by its first half.
async fn break_body(response: Response, truncate: bool) -> Response {
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let broken = if truncate {
        Bytes::copy_from_slice(&bytes[..bytes.len() / 2])
    } else {
        Bytes::from_static(b"{\"errors\": [\"unexpected\"],, \"devices\": [{\"id\": }")
    };
    let mut response = Response::from_parts(parts, Body::from(broken));
    response.headers_mut().remove(header::CONTENT_LENGTH);
    response
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

async fn sim_state(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(shared.state()).into_response()
}

async fn get_faults(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(shared.world().faults.plan().clone()).into_response()
}

async fn put_faults(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let plan = match serde_json::from_slice::<FaultPlan>(&body) {
        Ok(plan) => plan,
        Err(e) => {
            return packet::error(
                StatusCode::UNPROCESSABLE_ENTITY,
                vec![format!("invalid fault plan: {e}")],
            );
        }
    };
    match shared.set_faults(plan) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => packet::error(StatusCode::UNPROCESSABLE_ENTITY, vec![e.to_string()]),
    }
}

impl Shared {
    /// Closes the rate limit's window: the next request opens a fresh one.
    pub(crate) fn restart_rate_window(&self) {
        self.world().rate_window = RateWindow {
            started: None,
            used: 0,
        };
    }

    pub(crate) fn set_faults(&self, plan: FaultPlan) -> Result<(), crate::faults::FaultPlanError> {
        plan.validate()?;
        tracing::info!(seed = plan.seed, "fault plan replaced");
        self.world().faults = FaultState::new(plan);
        Ok(())
    }
}

async fn not_found() -> Response {
    packet::error(StatusCode::NOT_FOUND, vec!["Not found".to_owned()])
}

/// Every route of the simulator.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let packet_routes = Router::new()
        .route("/metal/v1/projects/{id}", get(packet::get_project))
        .route(
            "/metal/v1/projects/{id}/devices",
            get(packet::list_devices).post(packet::create_device),
        )
        .route(
            "/metal/v1/devices/{id}",
            get(packet::get_device)
                .put(packet::update_device)
                .delete(packet::delete_device),
        )
        .route(
            "/metal/v1/projects/{id}/hardware-reservations",
            get(packet::list_reservations),
        )
        .route(
            "/metal/v1/hardware-reservations/{id}",
            get(packet::get_reservation),
        )
        .route("/metal/v1/facilities", get(packet::list_facilities))
        .route("/metal/v1/locations/metros", get(packet::list_metros))
        .route("/metal/v1/plans", get(packet::list_plans))
        .route(
            "/metal/v1/projects/{id}/plans",
            get(packet::list_project_plans),
        )
        .route(
            "/metal/v1/operating-systems",
            get(packet::list_operating_systems),
        )
        .route_layer(middleware::from_fn_with_state(
            (shared.clone(), Api::Packet),
            gate,
        ));
    let route53_routes = Router::new()
        .route(
            "/2013-04-01/hostedzone",
            get(route53::list_hosted_zones).post(route53::create_hosted_zone),
        )
        .route(
            "/2013-04-01/hostedzonesbyname",
            get(route53::list_hosted_zones_by_name),
        )
        .route("/2013-04-01/hostedzone/{id}", get(route53::get_hosted_zone))
        .route(
            "/2013-04-01/hostedzone/{id}/rrset",
            get(route53::list_resource_record_sets).post(route53::change_resource_record_sets),
        )
        .route(
            "/2013-04-01/hostedzone/{id}/rrset/",
            get(route53::list_resource_record_sets).post(route53::change_resource_record_sets),
        )
        .route("/2013-04-01/change/{id}", get(route53::get_change))
        .route_layer(middleware::from_fn_with_state(
            (shared.clone(), Api::Route53),
            gate,
        ));
    let control = Router::new()
        .route("/_sim/state", get(sim_state))
        .route("/_sim/faults", get(get_faults).put(put_faults));
    packet_routes
        .merge(route53_routes)
        .merge(control)
        .fallback(not_found)
        .with_state(shared)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::OperationFaults;

    #[test]
    fn bursts_come_first_then_rates_apply() {
        let plan = FaultPlan::seeded(1).operation(
            "packet.devices.get",
            OperationFaults::default().rate_limited_burst(2, 3),
        );
        let mut faults = FaultState::new(plan);
        assert_eq!(faults.decide("packet.devices.get").rate_limited, Some(3));
        assert_eq!(faults.decide("packet.devices.get").rate_limited, Some(3));
        assert_eq!(faults.decide("packet.devices.get").rate_limited, None);
        assert_eq!(faults.decide("packet.devices.list").rate_limited, None);
    }

    #[test]
    fn the_same_seed_makes_the_same_decisions() {
        let plan =
            FaultPlan::seeded(42).operation("*", OperationFaults::default().server_errors(0.5));
        let run = || {
            let mut faults = FaultState::new(plan.clone());
            (0..64)
                .map(|_| faults.decide("packet.devices.get").server_error)
                .collect::<Vec<_>>()
        };
        let first = run();
        assert_eq!(first, run());
        assert!(first.contains(&true) && first.contains(&false));
    }
}
