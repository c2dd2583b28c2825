//! The fault plan: how the simulated clouds misbehave.
//!
//! Every failure a peer tool met in the field (see `peer-lessons.md`) has a knob here, so that a
//! test can make the simulator reproduce it and prove loko copes. A plan is plain data: it is read
//! from a JSON or YAML file (`loko sim --faults FILE`), built in Rust with the chainable methods
//! below, and can be replaced at runtime with `PUT /_sim/faults`. Random decisions come from one
//! RNG seeded by [`FaultPlan::seed`], so a run with the same seed and the same request order makes
//! the same decisions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Operation names that per-operation faults can target, plus `"*"` for every operation.
///
/// Packet operations start with `packet.`, Route53 operations carry the AWS action name.
pub const OPERATIONS: &[&str] = &[
    "packet.projects.get",
    "packet.devices.list",
    "packet.devices.create",
    "packet.devices.get",
    "packet.devices.update",
    "packet.devices.delete",
    "packet.hardware_reservations.list",
    "packet.hardware_reservations.get",
    "packet.facilities.list",
    "packet.metros.list",
    "packet.plans.list",
    "packet.operating_systems.list",
    "route53.CreateHostedZone",
    "route53.ListHostedZones",
    "route53.ListHostedZonesByName",
    "route53.GetHostedZone",
    "route53.ChangeResourceRecordSets",
    "route53.ListResourceRecordSets",
    "route53.GetChange",
];

/// The key in [`FaultPlan::operations`] that applies to every operation without its own entry.
pub const ANY_OPERATION: &str = "*";

/// A seeded description of everything that should go wrong.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultPlan {
    /// Seed of the RNG behind every random decision.
    pub seed: u64,
    /// Faults per operation name (see [`OPERATIONS`]) or [`ANY_OPERATION`].
    pub operations: BTreeMap<String, OperationFaults>,
    /// How devices end their provisioning.
    pub devices: DeviceFaults,
    /// Faults the node side (SSH, apiserver) applies; the cloud side only passes them on.
    pub nodes: NodeFaults,
    /// Faults of a rack's BMCs and machines, by machine name: set on [`crate::rack::Rack`] by
    /// whoever starts it (`loko run RACK_SPEC --sim --sim-faults FILE`); the Packet simulator
    /// has no rack and ignores them. A fault with a value is a one-key map in YAML as in JSON
    /// (`boots_with_mac: "52:54:00:00:00:99"`), not a YAML tag.
    #[serde(with = "serde_yaml::with::singleton_map_recursive")]
    pub rack: BTreeMap<String, BmcFault>,
}

/// Faults of one API operation. Rates are probabilities per request, in `[0, 1]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OperationFaults {
    /// Share of requests answered 500 before the operation runs.
    pub server_error_rate: f64,
    /// Share of requests that run, then lose their answer to a 502: the effect happened but the
    /// client cannot know (the way orphans are made).
    pub lost_response_rate: f64,
    /// Share of requests answered with a rate-limit error (429 + `Retry-After` on Packet,
    /// `Throttling` on Route53).
    pub rate_limited_rate: f64,
    /// The next this many requests are rate limited, whatever the rate (a burst of 429s).
    pub rate_limited_burst: u32,
    /// `Retry-After` of injected 429s, in simulated seconds (as the rate limit's).
    pub retry_after_secs: u64,
    /// Added latency per request, in real milliseconds (real because it exercises the client's
    /// own request timeout, which is real).
    pub latency_ms: u64,
    /// Share of JSON responses whose body is replaced by syntactically broken JSON.
    pub malformed_json_rate: f64,
    /// Share of JSON responses cut in the middle of their body.
    pub truncated_json_rate: f64,
}

/// How devices end their provisioning. Shares are probabilities per created device and must
/// sum to at most 1; the rest become `active`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeviceFaults {
    /// Share of devices that end `failed` and stay visible.
    pub failed_share: f64,
    /// Share of devices that fail and are then moved out of the project: `GET /devices/{id}`
    /// answers 403 "You are not authorized to view this device" and the project list omits them.
    pub forbidden_after_failure_share: f64,
    /// Share of devices that stay `provisioning` until deleted.
    pub stuck_provisioning_share: f64,
    /// Share of devices that pass through [`DeviceFaults::unknown_state`] before `active`.
    pub unknown_state_share: f64,
    /// The state name outside the documented enum that such devices report.
    pub unknown_state: String,
    /// Fates forced by hostname, ahead of the shares, so a test can target one node.
    pub by_hostname: BTreeMap<String, DeviceFate>,
}

impl Default for DeviceFaults {
    fn default() -> Self {
        DeviceFaults {
            failed_share: 0.0,
            forbidden_after_failure_share: 0.0,
            stuck_provisioning_share: 0.0,
            unknown_state_share: 0.0,
            unknown_state: "post_provisioning".to_owned(),
            by_hostname: BTreeMap::new(),
        }
    }
}

/// How one device's provisioning ends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceFate {
    /// `queued` → `provisioning` → `active`.
    #[default]
    Active,
    /// `queued` → `provisioning` → `failed`.
    Failed,
    /// Fails, then answers 403 and leaves the project's list.
    FailedThenForbidden,
    /// Stays `provisioning` until deleted.
    StuckProvisioning,
    /// Reports the plan's unknown state for a provisioning period before `active`.
    PassesUnknownState,
}

/// Faults of the nodes, applied by the node side.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeFaults {
    /// SSH connections are refused for this many simulated seconds after a node boots.
    pub ssh_refused_for_secs: f64,
    /// The apiserver starts this many simulated seconds after its static pod could.
    pub apiserver_start_delay_secs: f64,
}

/// A BMC or machine that misbehaves. In a fault plan (`rack:` by machine name, JSON or YAML):
/// `unauthorized`, `unavailable`, `{unavailable_requests: 2}`, `power_stuck`,
/// `{boots_with_mac: "52:54:00:00:00:99"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BmcFault {
    /// Every request is answered 401, whatever the credentials (a locked account).
    Unauthorized,
    /// Every request is answered 503 with `Retry-After` (a BMC busy or rebooting).
    Unavailable,
    /// The next this many requests of the machine's system are answered as
    /// [`BmcFault::Unavailable`], then the BMC answers (one that finished rebooting).
    UnavailableRequests(u32),
    /// Resets are accepted (204) but `PowerState` never changes.
    PowerStuck,
    /// The machine network-boots with this MAC, not its listed one (a swapped NIC or cable).
    BootsWithMac(String),
}

/// Why a fault plan was rejected.
#[derive(Debug, thiserror::Error)]
pub enum FaultPlanError {
    /// The file could not be read.
    #[error("cannot read fault plan {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a fault plan.
    #[error("cannot parse fault plan {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// An operation name is not one of [`OPERATIONS`].
    #[error("fault plan names unknown operation {0:?} (known: {known})", known = OPERATIONS.join(", "))]
    UnknownOperation(String),
    /// A rate or share is outside `[0, 1]`.
    #[error("fault plan field {field} is {value}, expected a probability between 0 and 1")]
    NotAProbability {
        /// The field, e.g. `operations.packet.devices.get.server_error_rate`.
        field: String,
        /// The value given.
        value: f64,
    },
    /// The device shares add up to more than 1.
    #[error("fault plan device shares add up to {0}, more than 1")]
    SharesAboveOne(f64),
    /// A machine's NIC would boot with something that is not a MAC.
    #[error(
        "fault plan field rack.{machine}.boots_with_mac is {mac:?}, expected a MAC like 52:54:00:00:00:99"
    )]
    NotAMac {
        /// The machine.
        machine: String,
        /// The value given.
        mac: String,
    },
    /// A duration is negative or not a number.
    #[error("fault plan field {field} is {value}, expected a non-negative number of seconds")]
    NotADuration {
        /// The field.
        field: &'static str,
        /// The value given.
        value: f64,
    },
}

impl FaultPlan {
    /// A plan without faults, whose random decisions use `seed`.
    pub fn seeded(seed: u64) -> Self {
        FaultPlan {
            seed,
            ..FaultPlan::default()
        }
    }

    /// Reads a plan from a `.json` file, or YAML for any other extension, and validates it.
    pub fn from_file(path: &Path) -> Result<Self, FaultPlanError> {
        let text = std::fs::read_to_string(path).map_err(|source| FaultPlanError::Read {
            path: path.to_owned(),
            source,
        })?;
        let parse_error = |message: String| FaultPlanError::Parse {
            path: path.to_owned(),
            message,
        };
        let plan: FaultPlan = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text).map_err(|e| parse_error(e.to_string()))?
        } else {
            serde_yaml::from_str(&text).map_err(|e| parse_error(e.to_string()))?
        };
        plan.validate()?;
        Ok(plan)
    }

    /// Checks operation names, probabilities and durations.
    pub fn validate(&self) -> Result<(), FaultPlanError> {
        for (name, op) in &self.operations {
            if name != ANY_OPERATION && !OPERATIONS.contains(&name.as_str()) {
                return Err(FaultPlanError::UnknownOperation(name.clone()));
            }
            for (field, value) in [
                ("server_error_rate", op.server_error_rate),
                ("lost_response_rate", op.lost_response_rate),
                ("rate_limited_rate", op.rate_limited_rate),
                ("malformed_json_rate", op.malformed_json_rate),
                ("truncated_json_rate", op.truncated_json_rate),
            ] {
                check_probability(&format!("operations.{name}.{field}"), value)?;
            }
        }
        let d = &self.devices;
        let shares = [
            ("devices.failed_share", d.failed_share),
            (
                "devices.forbidden_after_failure_share",
                d.forbidden_after_failure_share,
            ),
            (
                "devices.stuck_provisioning_share",
                d.stuck_provisioning_share,
            ),
            ("devices.unknown_state_share", d.unknown_state_share),
        ];
        for (field, value) in shares {
            check_probability(field, value)?;
        }
        let sum: f64 = shares.iter().map(|(_, v)| v).sum();
        if sum > 1.0 + f64::EPSILON {
            return Err(FaultPlanError::SharesAboveOne(sum));
        }
        for (field, value) in [
            (
                "nodes.ssh_refused_for_secs",
                self.nodes.ssh_refused_for_secs,
            ),
            (
                "nodes.apiserver_start_delay_secs",
                self.nodes.apiserver_start_delay_secs,
            ),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(FaultPlanError::NotADuration { field, value });
            }
        }
        for (machine, fault) in &self.rack {
            if let BmcFault::BootsWithMac(mac) = fault
                && !is_mac(mac)
            {
                return Err(FaultPlanError::NotAMac {
                    machine: machine.clone(),
                    mac: mac.clone(),
                });
            }
        }
        Ok(())
    }

    /// Sets the faults of one operation (a name from [`OPERATIONS`] or [`ANY_OPERATION`]).
    pub fn operation(mut self, name: &str, faults: OperationFaults) -> Self {
        self.operations.insert(name.to_owned(), faults);
        self
    }

    /// Sets the device fate shares.
    pub fn devices(mut self, devices: DeviceFaults) -> Self {
        self.devices = devices;
        self
    }

    /// Forces the fate of the device named `hostname`.
    pub fn device_fate(mut self, hostname: &str, fate: DeviceFate) -> Self {
        self.devices.by_hostname.insert(hostname.to_owned(), fate);
        self
    }

    /// Refuses SSH on each node for `refused` (simulated time) after it boots.
    pub fn ssh_refused_for(mut self, refused: Duration) -> Self {
        self.nodes.ssh_refused_for_secs = refused.as_secs_f64();
        self
    }

    /// Gives the rack's machine `name` a fault.
    pub fn rack_fault(mut self, name: &str, fault: BmcFault) -> Self {
        self.rack.insert(name.to_owned(), fault);
        self
    }

    /// Delays each apiserver start by `delay` (simulated time).
    pub fn apiserver_start_delay(mut self, delay: Duration) -> Self {
        self.nodes.apiserver_start_delay_secs = delay.as_secs_f64();
        self
    }

    /// The faults that apply to `operation`: its own entry, else the `"*"` entry.
    pub(crate) fn for_operation(&self, operation: &str) -> Option<&OperationFaults> {
        self.operations
            .get(operation)
            .or_else(|| self.operations.get(ANY_OPERATION))
    }
}

impl OperationFaults {
    /// Answers this share of requests with a 500.
    pub fn server_errors(mut self, rate: f64) -> Self {
        self.server_error_rate = rate;
        self
    }

    /// Runs this share of requests and then answers 502.
    pub fn lost_responses(mut self, rate: f64) -> Self {
        self.lost_response_rate = rate;
        self
    }

    /// Rate limits this share of requests, with `Retry-After: retry_after_secs`.
    pub fn rate_limited(mut self, rate: f64, retry_after_secs: u64) -> Self {
        self.rate_limited_rate = rate;
        self.retry_after_secs = retry_after_secs;
        self
    }

    /// Rate limits the next `count` requests.
    pub fn rate_limited_burst(mut self, count: u32, retry_after_secs: u64) -> Self {
        self.rate_limited_burst = count;
        self.retry_after_secs = retry_after_secs;
        self
    }

    /// Delays every request by `latency` (real time).
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
        self
    }

    /// Breaks this share of JSON bodies.
    pub fn malformed_json(mut self, rate: f64) -> Self {
        self.malformed_json_rate = rate;
        self
    }

    /// Truncates this share of JSON bodies.
    pub fn truncated_json(mut self, rate: f64) -> Self {
        self.truncated_json_rate = rate;
        self
    }
}

/// Six lowercase hex pairs joined by `:`, as a NIC's MAC is listed and booted with.
fn is_mac(mac: &str) -> bool {
    let pairs: Vec<&str> = mac.split(':').collect();
    pairs.len() == 6
        && pairs.iter().all(|p| {
            p.len() == 2
                && p.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

fn check_probability(field: &str, value: f64) -> Result<(), FaultPlanError> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(FaultPlanError::NotAProbability {
            field: field.to_owned(),
            value,
        })
    }
}

/// The fault plan in force and the RNG that draws its decisions.
pub(crate) struct FaultState {
    plan: FaultPlan,
    rng: StdRng,
    bursts: BTreeMap<String, u32>,
}

/// What to do to one request.
#[derive(Debug, Default)]
pub(crate) struct Decision {
    pub(crate) latency: Duration,
    pub(crate) rate_limited: Option<u64>,
    pub(crate) server_error: bool,
    pub(crate) lost_response: bool,
    pub(crate) malformed: bool,
    pub(crate) truncated: bool,
}

impl Decision {
    /// The injected faults of this decision, by name.
    pub(crate) fn kinds(&self) -> impl Iterator<Item = &'static str> {
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

    pub(crate) fn decide(&mut self, operation: &str) -> Decision {
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

#[cfg(test)]
mod tests {
    use super::*;
    use BmcFault;

    #[test]
    fn yaml_and_json_files_give_the_same_plan() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = dir.path().join("faults.yaml");
        std::fs::write(
            &yaml,
            "seed: 7\noperations:\n  packet.devices.get:\n    server_error_rate: 0.5\ndevices:\n  by_hostname:\n    c-0: failed_then_forbidden\nnodes:\n  ssh_refused_for_secs: 30\nrack:\n  rack-a1: power_stuck\n  rack-a2:\n    unavailable_requests: 2\n  rack-b1:\n    boots_with_mac: \"52:54:00:b1:00:99\"\n",
        )
        .unwrap();
        let json = dir.path().join("faults.json");
        std::fs::write(
            &json,
            r#"{"seed":7,"operations":{"packet.devices.get":{"server_error_rate":0.5}},"devices":{"by_hostname":{"c-0":"failed_then_forbidden"}},"nodes":{"ssh_refused_for_secs":30},"rack":{"rack-a1":"power_stuck","rack-a2":{"unavailable_requests":2},"rack-b1":{"boots_with_mac":"52:54:00:b1:00:99"}}}"#,
        )
        .unwrap();
        let built = FaultPlan::seeded(7)
            .operation(
                "packet.devices.get",
                OperationFaults::default().server_errors(0.5),
            )
            .device_fate("c-0", DeviceFate::FailedThenForbidden)
            .ssh_refused_for(Duration::from_secs(30))
            .rack_fault("rack-a1", BmcFault::PowerStuck)
            .rack_fault("rack-a2", BmcFault::UnavailableRequests(2))
            .rack_fault(
                "rack-b1",
                BmcFault::BootsWithMac("52:54:00:b1:00:99".into()),
            );
        assert_eq!(FaultPlan::from_file(&yaml).unwrap(), built);
        assert_eq!(FaultPlan::from_file(&json).unwrap(), built);
    }

    #[test]
    fn a_rack_fault_booting_with_something_else_than_a_mac_is_refused() {
        for mac in ["52-54-00-b1-00-99", "52:54:00:B1:00:99", "52:54:00:b1:00"] {
            let plan =
                FaultPlan::default().rack_fault("rack-b1", BmcFault::BootsWithMac(mac.into()));
            let error = plan.validate().unwrap_err().to_string();
            assert!(error.contains("rack.rack-b1.boots_with_mac"), "{error}");
        }
    }

    #[test]
    fn the_example_plan_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("faults.example.yaml");
        let plan = FaultPlan::from_file(&path).unwrap();
        assert_eq!(
            plan.devices.by_hostname["demo-controller-1"],
            DeviceFate::FailedThenForbidden
        );
        assert_eq!(plan.operations.len(), 4);
    }

    #[test]
    fn rejects_typos_and_impossible_numbers() {
        let typo = FaultPlan::default().operation("packet.device.get", OperationFaults::default());
        assert!(matches!(
            typo.validate(),
            Err(FaultPlanError::UnknownOperation(_))
        ));
        let rate =
            FaultPlan::default().operation("*", OperationFaults::default().server_errors(2.0));
        assert!(matches!(
            rate.validate(),
            Err(FaultPlanError::NotAProbability { .. })
        ));
        let shares = FaultPlan::default().devices(DeviceFaults {
            failed_share: 0.6,
            stuck_provisioning_share: 0.6,
            ..DeviceFaults::default()
        });
        assert!(matches!(
            shares.validate(),
            Err(FaultPlanError::SharesAboveOne(_))
        ));
    }

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
