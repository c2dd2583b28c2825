//! A Packet (Equinix Metal) API, Route53, SSH-reachable nodes and an apiserver, simulated: a
//! cloud that behaves, and fails, like the real ones, for loko's tests and `loko sim`.
//!
//! Packet's API is no longer reachable and tests have no network, so loko runs against this.
//! The simulator shares no code with loko's clients: it only speaks HTTP (and SSH, on the node
//! side), so a client bug cannot hide behind the same bug here.
//!
//! - The Packet API is served under `/metal/v1` and follows the OpenAPI document in
//!   `sim/openapi/` (the contract tests validate every exchange against it).
//! - Route53 is served under `/2013-04-01` in AWS's REST-XML.
//! - Time is scaled ([`SimConfig::time_scale`]): every duration in [`Timings`] is simulated time.
//! - Faults follow a seeded [`FaultPlan`], replaceable at runtime with `PUT /_sim/faults`.
//! - `GET /_sim/state` shows everything ([`SimState`]); `--state FILE` persists it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), sim::SimError> {
//! let handle = sim::start(sim::SimConfig::new("/tmp/loko-sim-nodes".into())).await?;
//! println!("{}", handle.packet_url());
//! handle.shutdown().await
//! # }
//! ```

pub mod apiserver;
mod clock;
mod config;
mod connections;
pub mod faults;
pub mod ignition;
pub mod judge;
mod lifecycle;
pub mod nodes;
mod packet;
mod persist;
pub mod rack;
mod rate_limit;
mod route53;
mod server;
mod shared;
mod state;
mod state_file;
mod world;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use uuid::Uuid;

pub use clock::Timings;
pub use config::{ReservationSeed, SimConfig, SimError, Token};
pub use faults::{
    DeviceFate, DeviceFaults, FaultPlan, FaultPlanError, NodeFaults, OperationFaults,
};
pub use lifecycle::{KubeletStatus, NoNodes, NodeFuture, NodeLifecycle, NodeSpec, StaticPodStatus};
pub use packet::catalog::Arch;
pub use packet::model::{PrivateBlock, PrivateBlockError};
pub use rate_limit::RateLimit;
pub use state::{DeviceRecord, HostedZoneRecord, RecordSetRecord, SimState};
pub use state_file::StateFileError;

use clock::SimClock;
use packet::model::PacketCloud;
use route53::model::Route53;
use shared::Shared;
use world::{Stats, World};

/// `loko sim`: starts the simulator, writes its endpoints and token to `out`, serves until
/// Ctrl-C or SIGTERM, then shuts down (stopping nodes and writing the state file).
pub async fn serve_until_interrupted(
    config: SimConfig,
    out: &mut impl std::io::Write,
) -> Result<(), SimError> {
    let handle = start(config).await?;
    handle
        .write_endpoints(out)
        .and_then(|()| out.flush())
        .map_err(SimError::Foreground)?;
    let interrupted = wait_for_interrupt().await;
    let stopped = handle.shutdown().await;
    interrupted.map_err(SimError::Foreground)?;
    stopped
}

async fn wait_for_interrupt() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}

/// A running simulator. Dropping it without [`SimHandle::shutdown`] leaves the server running
/// until the runtime ends.
pub struct SimHandle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    token: Token,
    project_id: Uuid,
    hosted_zone_id: String,
    hosted_zone_name: String,
    ssh_port: u16,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    ticker: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("addr", &self.addr)
            .field("project_id", &self.project_id)
            .field("hosted_zone_id", &self.hosted_zone_id)
            .finish_non_exhaustive()
    }
}

/// How long [`SimHandle::shutdown`] lets running requests finish.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How often devices are checked for machines to start or stop (real time).
const TICK: Duration = Duration::from_millis(20);

/// Starts the simulator: loads the state file if any, ensures the configured project, its
/// reservations and the hosted zone exist, and serves until [`SimHandle::shutdown`].
pub async fn start(config: SimConfig) -> Result<SimHandle, SimError> {
    if !(config.time_scale.is_finite() && config.time_scale > 0.0) {
        return Err(SimError::InvalidTimeScale(config.time_scale));
    }
    config.faults.validate()?;
    for seed in &config.hardware_reservations {
        if let Some(id) = seed.id.filter(|_| seed.count != 1) {
            return Err(SimError::ReservationCount {
                id,
                count: seed.count,
            });
        }
        if packet::catalog::plan(&seed.plan).is_none() {
            return Err(SimError::UnknownCatalogEntry {
                what: "plan",
                value: seed.plan.clone(),
            });
        }
        if packet::catalog::facility(&seed.facility).is_none() {
            return Err(SimError::UnknownCatalogEntry {
                what: "facility",
                value: seed.facility.clone(),
            });
        }
    }

    let loaded = match &config.state_file {
        Some(path) => persist::load(path)?,
        None => None,
    };
    // A reloaded cloud continues from the simulated time it was saved at, plus the real time
    // since, scaled: devices are as far along as if the simulator had kept running.
    // A port left to the system (0) is the saved one, if it is free: a restart keeps the
    // endpoints the user pasted into a spec.
    let saved_listen = loaded
        .as_ref()
        .and_then(|s| s.listen)
        .filter(|_| config.listen.port() == 0);
    let (clock, identity, packet, route53, stats) = match loaded {
        Some(s) => {
            let real_since = (Utc::now() - s.saved_at).to_std().unwrap_or_default();
            let away = clock::sim_duration(real_since.as_secs_f64() / config.time_scale);
            let identity = (
                config.project_id.unwrap_or(s.project_id),
                config.token.clone().unwrap_or(Token::new(s.token)),
            );
            (
                SimClock::new(config.time_scale, s.sim_now + away),
                identity,
                s.packet,
                s.route53,
                s.stats,
            )
        }
        None => (
            SimClock::new(config.time_scale, Utc::now()),
            (
                config.project_id.unwrap_or_else(packet::model::new_id),
                config.token.clone().unwrap_or_else(Token::generate),
            ),
            PacketCloud::fresh(),
            Route53::default(),
            Stats::default(),
        ),
    };
    let (project_id, token) = identity.clone();
    let mut world = World::new(identity, packet, route53, stats, config.faults.clone());
    let now = clock.now();
    if world.packet.projects.contains_key(&project_id) {
        tracing::info!(project = %project_id, "project restored from the state file");
    } else {
        world
            .packet
            .ensure_project(project_id, &config.project_name, config.private_block, now);
        for seed in &config.hardware_reservations {
            for _ in 0..seed.count {
                world
                    .packet
                    .add_reservation(project_id, seed.id, &seed.plan, &seed.facility, now);
            }
        }
    }
    // No zone for a cluster without one (a rack whose spec names its API address): Route53
    // still answers, with nothing in it.
    let zone_name = match config.hosted_zone.is_empty() {
        true => String::new(),
        false => route53::model::normalize_name(&config.hosted_zone),
    };
    let hosted_zone_id = match world.route53.zones.values().find(|z| z.name == zone_name) {
        Some(zone) => zone.id.clone(),
        None if zone_name.is_empty() => String::new(),
        None => {
            let reference = format!("loko-sim-{zone_name}");
            world
                .route53
                .create_zone(
                    &zone_name,
                    &reference,
                    Some("created by loko sim".to_owned()),
                    config.hosted_zone_id.clone(),
                    now,
                )
                .map_err(|e| SimError::HostedZone {
                    zone: zone_name.clone(),
                    message: e.message(),
                })?
                .0
        }
    };

    let saved = match saved_listen {
        Some(addr) => match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => Some(listener),
            Err(e) => {
                tracing::warn!(%addr, error = %e, "the saved address is taken; serving on another");
                None
            }
        },
        None => None,
    };
    let listener = match saved {
        Some(listener) => listener,
        None => tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| SimError::Bind {
                addr: config.listen,
                source,
            })?,
    };
    let addr = listener.local_addr().map_err(|source| SimError::Bind {
        addr: config.listen,
        source,
    })?;

    world.listen = Some(addr);
    let shared = Arc::new(Shared::new(
        world,
        clock,
        config.timings.clone(),
        token.clone(),
        config.rate_limit.clone(),
        config.nodes.clone(),
        config.state_file.clone().map(state_file::Persister::new),
    ));
    shared.persist().await;

    let app = server::router(shared.clone());
    let server_shared = shared.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { server_shared.stopping().await })
            .await
    });
    let ticker_shared = shared.clone();
    let ticker = tokio::spawn(async move {
        let mut interval = tokio::time::interval(TICK);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let stopping = tokio::select! {
                _ = interval.tick() => false,
                () = ticker_shared.stopping() => true,
            };
            if stopping {
                break;
            }
            while ticker_shared.sync_nodes(true).await {}
        }
    });
    tracing::info!(%addr, project = %project_id, "simulator listening");
    Ok(SimHandle {
        shared,
        addr,
        token,
        project_id,
        hosted_zone_id,
        hosted_zone_name: zone_name,
        ssh_port: config.ssh_port,
        server,
        ticker,
    })
}

impl SimHandle {
    /// The address the simulator listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Real seconds per simulated second: a client scales the seconds of `Retry-After` by it.
    pub fn time_scale(&self) -> f64 {
        self.shared.clock().scale()
    }

    /// The Packet API base URL, e.g. `http://127.0.0.1:PORT/metal/v1`.
    pub fn packet_url(&self) -> String {
        format!("http://{}/metal/v1", self.addr)
    }

    /// The Route53 endpoint URL, e.g. `http://127.0.0.1:PORT`.
    pub fn route53_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The token clients must send as `X-Auth-Token`.
    pub fn token(&self) -> &str {
        self.token.expose()
    }

    /// The pre-created project.
    pub fn project_id(&self) -> Uuid {
        self.project_id
    }

    /// The pre-created hosted zone's bare id (`Z...`); empty when the simulator has none.
    pub fn hosted_zone_id(&self) -> &str {
        &self.hosted_zone_id
    }

    /// The bare id of the hosted zone named `zone` (with or without the trailing dot).
    pub fn zone_id_for(&self, zone: &str) -> Option<String> {
        let name = route53::model::normalize_name(zone);
        self.shared
            .world()
            .route53
            .zones
            .values()
            .find(|z| z.name == name)
            .map(|z| z.id.clone())
    }

    /// Everything the simulator knows (the same data as `GET /_sim/state`).
    pub fn state(&self) -> SimState {
        self.shared.state()
    }

    /// Closes the Packet rate limit's window, so that the next request opens a fresh one: a
    /// benchmark's run then starts with the whole window, whatever ran before it.
    pub fn restart_rate_window(&self) {
        self.shared.restart_rate_window();
    }

    /// Reboots the machine of `hostname` (as `reboot` on the node would): false when none runs.
    pub async fn reboot(&self, hostname: &str) -> bool {
        self.shared.reboot_node(hostname).await
    }

    /// Replaces the fault plan (as `PUT /_sim/faults` does).
    pub fn set_faults(&self, plan: FaultPlan) -> Result<(), FaultPlanError> {
        self.shared.set_faults(plan)
    }

    /// Stops serving, stops every node, and writes the state file a last time.
    /// Requests still running after [`SHUTDOWN_GRACE`] (e.g. held by a latency fault) are cut.
    pub async fn shutdown(mut self) -> Result<(), SimError> {
        self.shared.request_stop();
        let served = match tokio::time::timeout(SHUTDOWN_GRACE, &mut self.server).await {
            Ok(served) => served,
            Err(_) => {
                tracing::warn!("requests still running at shutdown; cutting them");
                self.server.abort();
                Ok(Ok(()))
            }
        };
        let _ = self.ticker.await;
        self.shared.stop_all_nodes().await;
        self.shared.persist().await;
        match served {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(SimError::Serve(e)),
            Err(e) => Err(SimError::Serve(std::io::Error::other(e))),
        }
    }

    /// Writes the endpoints and the token for a user of `loko sim`.
    pub fn write_endpoints(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        writeln!(out, "loko sim listening on {}", self.addr)?;
        writeln!(out, "  Packet API:  {}", self.packet_url())?;
        writeln!(
            out,
            "  token:       {}  (send as X-Auth-Token)",
            self.token()
        )?;
        writeln!(out, "  project:     {}", self.project_id)?;
        writeln!(
            out,
            "  Route53:     {}  (any SigV4 credentials)",
            self.route53_url()
        )?;
        writeln!(
            out,
            "  hosted zone: {} ({})",
            self.hosted_zone_name, self.hosted_zone_id
        )?;
        writeln!(
            out,
            "  node SSH:    port {} on each device's public IPv4",
            self.ssh_port
        )?;
        writeln!(out, "  state:       GET {}/_sim/state", self.route53_url())?;
        writeln!(out, "  faults:      PUT {}/_sim/faults", self.route53_url())
    }
}
