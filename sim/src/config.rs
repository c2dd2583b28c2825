//! How to run the simulator ([`SimConfig`]), the token clients send, and why it cannot start
//! or stop ([`SimError`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use uuid::Uuid;

use crate::clock::Timings;
use crate::faults::{FaultPlan, FaultPlanError};
use crate::lifecycle::{NoNodes, NodeLifecycle};
use crate::packet::model::PrivateBlock;
use crate::rate_limit::RateLimit;

/// The API token clients send as `X-Auth-Token`. Its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// A token with this value.
    pub fn new(value: impl Into<String>) -> Self {
        Token(value.into())
    }

    /// A fresh random token.
    pub fn generate() -> Self {
        let bytes: [u8; 16] = rand::random();
        Token(format!(
            "sim-{}",
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ))
    }

    /// The value, for the client that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Hardware reservations to give the project at first start.
#[derive(Clone, Debug, PartialEq)]
pub struct ReservationSeed {
    /// Plan slug, e.g. `c3.small.x86`.
    pub plan: String,
    /// Facility code, e.g. `sv15`.
    pub facility: String,
    /// How many.
    pub count: u32,
    /// The reservation's id, for a spec that names it (then `count` must be 1); new ids if
    /// `None`.
    pub id: Option<uuid::Uuid>,
}

/// How to run the simulator.
#[derive(Clone)]
pub struct SimConfig {
    /// Where to listen; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Real seconds per simulated second: 0.001 makes a 5-minute provisioning take 300 ms.
    pub time_scale: f64,
    /// The faults to inject.
    pub faults: FaultPlan,
    /// Where to persist the state; loaded at start when it exists.
    pub state_file: Option<PathBuf>,
    /// The project that exists from the start; `None` takes the state file's, else a random one.
    pub project_id: Option<Uuid>,
    /// Its name.
    pub project_name: String,
    /// The token clients must send; `None` takes the state file's, else a random one.
    pub token: Option<Token>,
    /// A hosted zone that exists from the start (e.g. `example.com`); empty for none (the
    /// demo of a rack whose spec names its API address, which has no zone).
    pub hosted_zone: String,
    /// Its id; `None` makes one up. `loko run --sim` passes the spec's `dns_zone_id`.
    pub hosted_zone_id: Option<String>,
    /// Hardware reservations of the project, created at first start.
    pub hardware_reservations: Vec<ReservationSeed>,
    /// The project's private IPv4 block, given at first start; `None` takes a /16 of
    /// 10.64.0.0 and up. `loko run --sim` passes the spec's `node_private_cidr`.
    pub private_block: Option<PrivateBlock>,
    /// Simulated durations.
    pub timings: Timings,
    /// Packet's rate limit.
    pub rate_limit: RateLimit,
    /// The port nodes listen on for SSH.
    pub ssh_port: u16,
    /// Where the node side keeps each node's root directory.
    pub node_root: PathBuf,
    /// The node side; [`NoNodes`] for the cloud alone, or the SSH-reachable machines:
    /// `Arc::new(nodes::Nodes::new(nodes::NodesConfig { root_dir: node_root, ssh_port, backend })?)`
    /// with the same `node_root` and `ssh_port` as here.
    pub nodes: Arc<dyn NodeLifecycle>,
}

impl std::fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimConfig")
            .field("listen", &self.listen)
            .field("time_scale", &self.time_scale)
            .field("faults", &self.faults)
            .field("state_file", &self.state_file)
            .field("project_id", &self.project_id)
            .field("project_name", &self.project_name)
            .field("token", &self.token)
            .field("hosted_zone", &self.hosted_zone)
            .field("hosted_zone_id", &self.hosted_zone_id)
            .field("hardware_reservations", &self.hardware_reservations)
            .field("private_block", &self.private_block)
            .field("timings", &self.timings)
            .field("rate_limit", &self.rate_limit)
            .field("ssh_port", &self.ssh_port)
            .field("node_root", &self.node_root)
            .finish_non_exhaustive()
    }
}

impl SimConfig {
    /// Defaults: 127.0.0.1 on a free port, real time, no faults, no state file, a random project
    /// and token (or the state file's), hosted zone `example.com`, SSH port 2222, no node side.
    pub fn new(node_root: PathBuf) -> Self {
        SimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            time_scale: 1.0,
            faults: FaultPlan::default(),
            state_file: None,
            project_id: None,
            project_name: "loko-sim".to_owned(),
            token: None,
            hosted_zone: "example.com".to_owned(),
            hosted_zone_id: None,
            hardware_reservations: Vec::new(),
            private_block: None,
            timings: Timings::default(),
            rate_limit: RateLimit::default(),
            ssh_port: 2222,
            node_root,
            nodes: Arc::new(NoNodes),
        }
    }
}

/// Why the simulator could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The time scale is not a positive number.
    #[error("time scale {0} is not a positive number")]
    InvalidTimeScale(f64),
    /// A seeded reservation names an unknown plan or facility.
    #[error("hardware reservation seed names unknown {what} {value:?}")]
    UnknownCatalogEntry {
        /// `plan` or `facility`.
        what: &'static str,
        /// The slug or code given.
        value: String,
    },
    /// A seeded reservation with an id has a count other than 1.
    #[error(
        "hardware reservation seed {id} has count {count}; a seed with an id is one reservation"
    )]
    ReservationCount {
        /// The id given.
        id: uuid::Uuid,
        /// The count given.
        count: u32,
    },
    /// The configured hosted zone cannot be created (e.g. an invalid name).
    #[error("cannot create hosted zone {zone:?}: {message}")]
    HostedZone {
        /// The zone name.
        zone: String,
        /// Route53's message.
        message: String,
    },
    /// The fault plan is invalid.
    #[error(transparent)]
    Faults(#[from] FaultPlanError),
    /// The listen address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The state file cannot be read.
    #[error("cannot read simulator state {path}: {source}")]
    StateRead {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The state file is not a simulator state.
    #[error("cannot parse simulator state {path}: {message}")]
    StateParse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The state file cannot be written.
    #[error("cannot write simulator state {path}: {source}")]
    StateWrite {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The HTTP server failed.
    #[error("simulator HTTP server failed: {0}")]
    Serve(std::io::Error),
    /// The endpoints could not be printed, or the signal handler not installed.
    #[error("cannot run the simulator in the foreground: {0}")]
    Foreground(std::io::Error),
}
