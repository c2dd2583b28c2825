//! The provisioning DAG of a cluster: from the desired cluster and what the journal knows, the
//! DAGs of `loko run` and `loko destroy` (data: each step's kind and params, bound to actions
//! by [`crate::actions`] when a run starts), and the `loko plan` summary.
//!
//! ```text
//! assets/pki ─┬─ assets/kubeconfigs ── ignition/<node> ── device/<node> ─┬─ dns ───────────────────────────────┐
//!             │                                                          ├─ etcd-secrets/<c> ── control-plane/<c> ─┤
//!             └─ assets/manifests ───────────────────────────────────────┴──────────────────────────── bootstrap ─┴─ ready
//! control-plane/<c> ── drain/<w> ── delete-device/<w>   (workers the journal knows that the spec
//!                                                       no longer has)
//! control-plane/<c> ── drain/<w> ── device/<w>          (a retyped pool's workers)
//! ```
//!
//! Step ids are stable (`device/<hostname>`), so a rerun or resume of the same spec finds every
//! step's recorded result. A node that leaves the spec gets a `delete-device/<hostname>` step;
//! it and the node's `device/` step invalidate each other, so a node can come and go repeatedly.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use engine::{Dag, DagError, ResourceClass, RetryPolicy, StepDef, StepKind};
use journal::{ClusterState, Digest, RunKind, StepId};
use serde::Serialize;
use specs::{DesiredCluster, DesiredNode, HardwareReservation, OsImage, RecordTarget};

use crate::assets;
pub use crate::changes::{Changes, changes};
use crate::dns::Route53;
use crate::kinds::{
    ApiParams, BootstrapKind, ControlPlaneKind, ControlPlaneParams, DeleteDevicesKind,
    DeleteDevicesParams, DeleteRecordsKind, DeleteRecordsParams, DeviceAddress, DeviceKind,
    DeviceParams, DnsKind, DnsParams, DrainKind, DrainParams, EtcdSecretsKind, IgnitionKind,
    KubeconfigsKind, KubeconfigsParams, ManifestsKind, NodeParams, PkiKind, ReadyKind, ReadyParams,
    RecordSource,
};
use crate::packet::{
    CREATE_INTENT, DeviceOs, DevicePoller, DeviceSettings, DeviceSpec, Location, PacketClient,
    cluster_tag, node_tag,
};
use crate::ssh::Ssh;

/// Calls to the Packet API.
pub const PACKET_API: ResourceClass = ResourceClass::new("packet-api");
/// Calls to Route53.
pub const DNS: ResourceClass = ResourceClass::new("dns");
/// SSH sessions to the nodes.
pub const SSH: ResourceClass = ResourceClass::new("ssh");

/// The clients every remote step uses.
#[derive(Clone)]
pub struct Clients {
    pub packet: Arc<PacketClient>,
    /// The one poller serving every waiting device step.
    pub poller: Arc<DevicePoller>,
    pub route53: Route53,
    pub ssh: Ssh,
}

/// Waits, deadlines, ports and access; the simulator's demo shrinks the waits with its time
/// scale.
#[derive(Clone, Debug)]
pub struct RunSettings {
    pub device: DeviceSettings,
    pub dns_poll: Duration,
    pub dns_deadline: Duration,
    pub ssh_port: u16,
    pub ssh_user: String,
    pub api_port: u16,
    pub ready_poll: Duration,
    pub ready_deadline: Duration,
    /// Overwrite DNS records that hold values loko did not set (`--take-over-dns`).
    pub take_over_dns: bool,
    /// How long a drain asks again for evictions a disruption budget refuses
    /// (`--drain-timeout`).
    pub drain_timeout: Duration,
    /// Delete workers' devices without draining their nodes (`--skip-drain`).
    pub skip_drain: bool,
    /// Keys the nodes admit besides the spec's `ssh_keys` (the demo's throwaway key). Not part
    /// of the desired cluster, so the spec and its journal stay as the user wrote them.
    pub extra_authorized_keys: Vec<specs::SshPublicKey>,
}

impl Default for RunSettings {
    fn default() -> Self {
        RunSettings {
            device: DeviceSettings::default(),
            // Every wait sees its change up to one poll late, and a cluster's critical path
            // crosses three of them (device, DNS, readiness): at 5 s that was up to 4 % of a
            // 370 s creation. Route53 allows 5 requests a second; the apiserver answers the
            // nodes list from its cache.
            dns_poll: Duration::from_secs(2),
            dns_deadline: Duration::from_secs(10 * 60),
            ssh_port: 22,
            ssh_user: "core".into(),
            api_port: 6443,
            ready_poll: Duration::from_secs(2),
            ready_deadline: Duration::from_secs(30 * 60),
            take_over_dns: false,
            // Five minutes: longer than a rolling update of a budgeted Deployment takes, shorter
            // than leaving a scale down hanging on a budget that will never allow it.
            drain_timeout: Duration::from_secs(5 * 60),
            skip_drain: false,
            extra_authorized_keys: Vec::new(),
        }
    }
}

/// What the journal knows of the cluster, for change classification and deletions.
#[derive(Clone, Debug, Default)]
pub struct History {
    /// The desired cluster of the latest `loko run` since the last destroy, finished or not.
    pub previous: Option<DesiredCluster>,
    /// Every node any run since the last destroy planned a device for: such a node may have a
    /// device, so one that leaves the spec is deleted.
    pub known_nodes: BTreeSet<String>,
    /// Steps with a recorded success (the journal's ledger).
    pub recorded: BTreeSet<StepId>,
    /// Nodes whose device create was sent (its intent is journaled) but whose result was not
    /// recorded: a run looks for that device by tag and adopts it before creating one.
    pub intended: BTreeMap<String, journal::RunId>,
    /// Nodes whose recorded device the cloud no longer has (by the refresh,
    /// [`crate::refresh`]), with the run that recorded it: the run creates them again.
    pub gone: BTreeMap<String, journal::RunId>,
    /// When the latest `loko run` that built something started or last resumed (ms since the
    /// epoch): the bootstrap token's window its kubeconfigs step was planned with.
    pub last_built_at_ms: Option<u64>,
}

/// The journal holds a desired cluster that this loko cannot read.
#[derive(Debug, thiserror::Error)]
#[error("run {run} recorded a desired cluster this loko cannot read: {reason}")]
pub struct HistoryError {
    pub run: journal::RunId,
    pub reason: String,
}

impl History {
    /// Reads the journal's folded state.
    pub fn read(state: &ClusterState) -> Result<History, HistoryError> {
        let mut history = History {
            recorded: state.ledger.keys().cloned().collect(),
            ..History::default()
        };
        // Only the latest run's desired cluster is read: a year of weekly runs of a large
        // cluster would otherwise parse fifty copies of it at every start.
        let mut latest: Option<(&journal::RunId, &journal::RunState)> = None;
        let mut planned: Option<&std::sync::Arc<[StepId]>> = None;
        for (id, run) in &state.runs {
            match run.kind {
                RunKind::Destroy => {
                    latest = None;
                    planned = None;
                    history.known_nodes.clear();
                    history.intended.clear();
                }
                // A run that built nothing (a typo in `project_id` answered by a 404 before any
                // device) is no part of the cluster's identity: what exists is.
                RunKind::Apply if !built_something(run) => {}
                RunKind::Apply => {
                    latest = Some((id, run));
                    // Runs of an unchanged plan share its list: its nodes are known already.
                    if !planned.is_some_and(|p| std::sync::Arc::ptr_eq(p, &run.plan)) {
                        history.known_nodes.extend(
                            run.plan
                                .iter()
                                .filter_map(|s| s.as_str().strip_prefix(DEVICE))
                                .map(str::to_owned),
                        );
                        planned = Some(&run.plan);
                    }
                    for (step, steps) in &run.steps {
                        let Some(host) = step.as_str().strip_prefix(DEVICE) else {
                            continue;
                        };
                        let created = steps
                            .attempts
                            .iter()
                            .any(|a| a.intents.iter().any(|i| i.effect == CREATE_INTENT));
                        if created {
                            history.intended.insert(host.to_owned(), *id);
                        }
                    }
                }
            }
        }
        if let Some((id, run)) = latest {
            history.last_built_at_ms = Some(
                run.resumes
                    .iter()
                    .map(|(at, _)| *at)
                    .fold(run.started_at_ms, u64::max),
            );
            let unreadable = |reason: String| HistoryError { run: *id, reason };
            let record = run.spec.value().map_err(|e| unreadable(e.to_string()))?;
            history.previous =
                Some(DesiredCluster::from_record(&record).map_err(|e| unreadable(e.to_string()))?);
        }
        history
            .intended
            .retain(|host, _| !history.recorded.contains(&ids::device(host)));
        Ok(history)
    }
}

/// True when `run` may have changed the cloud: a step other than the local ones (assets,
/// Ignition) journaled an intent (written before every create or delete) or succeeded.
fn built_something(run: &journal::RunState) -> bool {
    run.steps.iter().any(|(step, history)| {
        let local = ["assets/", "ignition/"]
            .iter()
            .any(|p| step.as_str().starts_with(p));
        history.attempts.iter().any(|a| {
            !a.intents.is_empty()
                || (!local && matches!(a.end, journal::AttemptEnd::Succeeded { .. }))
        })
    })
}

const DEVICE: &str = "device/";

pub mod ids;

/// Why a plan could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Dag(#[from] DagError),
    #[error("cannot digest the inputs of a step: {0}")]
    Inputs(String),
    #[error("the desired cluster has no controller")]
    NoController,
    #[error(transparent)]
    Refused(#[from] specs::RefusedChanges),
}

/// The digest of a step's own inputs.
fn inputs<T: Serialize + ?Sized>(value: &T) -> Result<Digest, BuildError> {
    Digest::of_json(value).map_err(|e| BuildError::Inputs(e.to_string()))
}

/// A step of kind `K` with its own inputs digest and `params` for its action.
fn step<K: StepKind>(id: StepId, own: Digest, params: &K::Params) -> Result<StepDef, BuildError> {
    StepDef::of::<K>(id, params, own).map_err(|e| BuildError::Inputs(e.to_string()))
}

fn node_params(host: &str) -> NodeParams {
    NodeParams {
        hostname: host.to_owned(),
    }
}

/// The DAG of `loko run`: bring the cluster to `desired`. Data only: it names each step's
/// kind and params, and [`crate::actions::actions`] binds them when the run starts.
/// `extra_keys` are the keys the nodes admit besides the spec's ([`RunSettings`]): part of
/// the Ignition steps' inputs, as they are of the Ignition.
pub fn apply_dag(
    desired: &DesiredCluster,
    history: &History,
    extra_keys: &[specs::SshPublicKey],
) -> Result<Dag, BuildError> {
    let settings = &desired.settings;
    let cluster = settings.cluster_name.as_str().to_owned();
    let mut steps = Vec::new();

    // Assets: local, cheap, and their inputs are the cluster-wide settings.
    let pki_inputs = assets::pki::PkiInputs::from_desired(desired);
    steps.push(step::<PkiKind>(
        ids::pki(),
        inputs(&(&pki_inputs, renewal_epoch(&pki_inputs, SystemTime::now())))?,
        &(),
    )?);
    // The kubelets' bootstrap token is reissued for nodes about to boot when it is half
    // spent (`assets::bootstrap_token`): while some node has no device yet, the step runs
    // again in each half of the token's lifetime, so a scale-up a month later gets a fresh one.
    // With none to boot, its window stays the one the latest building run planned it with, so
    // the run after a successful one has nothing to do.
    let nodes_to_boot = desired
        .nodes
        .iter()
        .any(|node| !history.recorded.contains(&ids::device(&node.hostname)));
    let planned_at = match history.last_built_at_ms {
        Some(ms) if !nodes_to_boot => SystemTime::UNIX_EPOCH + Duration::from_millis(ms),
        _ => SystemTime::now(),
    };
    let token_window = token_window(planned_at);
    steps.push(
        step::<KubeconfigsKind>(
            ids::kubeconfigs(),
            inputs(&(settings, token_window))?,
            &KubeconfigsParams { nodes_to_boot },
        )?
        .after([ids::pki()]),
    );
    steps.push(
        step::<ManifestsKind>(
            ids::manifests(),
            inputs(&(settings, assets::manifests::RENDERING))?,
            &(),
        )?
        .after([ids::pki()]),
    );

    // Workers whose device this run deletes (the plan's deletions and replacements):
    // controllers are never among them, their count and type cannot change.
    let drained: BTreeSet<String> = changes(desired, history)?.drain.into_iter().collect();

    // Nodes: Ignition, then the device. The Ignition's settings hold the extra keys.
    let mut ignition_settings = desired.settings.clone();
    ignition_settings
        .ssh_keys
        .extend(extra_keys.iter().cloned());
    for node in &desired.nodes {
        steps.push(
            step::<IgnitionKind>(
                ids::ignition(&node.hostname),
                inputs(&(&ignition_settings, node, desired.dns_service_ip))?,
                &node_params(&node.hostname),
            )?
            .after([ids::kubeconfigs()]),
        );
        let device = device_step(desired, node)?;
        // A retyped worker's device is deleted by its device step: its node is drained first.
        steps.push(match drained.contains(&node.hostname) {
            true => device.after([ids::drain(&node.hostname)]),
            false => device,
        });
    }

    // Nodes that left the spec, drained first unless already deleted.
    for host in history
        .known_nodes
        .iter()
        .filter(|host| desired.node(host).is_none())
    {
        let delete = step::<DeleteDevicesKind>(
            ids::delete_device(host),
            inputs(host.as_str())?,
            &DeleteDevicesParams {
                tag: node_tag(host),
            },
        )?
        .class(PACKET_API)
        .invalidates([ids::device(host)]);
        steps.push(match drained.contains(host) {
            true => delete.after([ids::drain(host)]),
            false => delete,
        });
    }

    let controllers: Vec<&DesiredNode> = desired.controllers().collect();
    steps.push(dns_step(desired, &controllers)?);

    // Bootstrap over SSH.
    for node in &controllers {
        steps.push(
            step::<EtcdSecretsKind>(
                ids::etcd_secrets(&node.hostname),
                inputs(&node.hostname)?,
                &node_params(&node.hostname),
            )?
            .after([
                ids::pki(),
                ids::device(&node.hostname),
                ids::ignition(&node.hostname),
            ])
            .class(SSH)
            .retry(ssh_retry()),
        );
    }
    if controllers.is_empty() {
        return Err(BuildError::NoController);
    }
    let api_name = format!("{cluster}.{}", settings.dns_zone.as_str());
    let api_controllers: Vec<StepId> = controllers
        .iter()
        .map(|c| ids::device(&c.hostname))
        .collect();
    for node in &controllers {
        steps.push(
            step::<ControlPlaneKind>(
                ids::control_plane(&node.hostname),
                inputs(&(&node.hostname, settings.enable_aggregation))?,
                &ControlPlaneParams {
                    hostname: node.hostname.clone(),
                    aggregation: settings.enable_aggregation,
                },
            )?
            // The PKI's fingerprints: a reissued certificate (a controller added to the
            // apiserver's names) is copied again. The apiserver reaches etcd by its members'
            // names: its secrets first.
            .after([
                ids::pki(),
                ids::kubeconfigs(),
                ids::manifests(),
                ids::etcd_secrets(&node.hostname),
                ids::device(&node.hostname),
                ids::ignition(&node.hostname),
            ])
            .class(SSH)
            .retry(ssh_retry()),
        );
    }
    // Drains reach the API as the bootstrap does, once the control plane serves it.
    let mut serving: Vec<StepId> = api_controllers.clone();
    serving.extend(controllers.iter().map(|c| ids::control_plane(&c.hostname)));
    for host in &drained {
        steps.push(
            step::<DrainKind>(
                ids::drain(host),
                inputs(host.as_str())?,
                &DrainParams {
                    api: ApiParams {
                        api_name: api_name.clone(),
                        controllers: api_controllers.clone(),
                    },
                    hostname: host.clone(),
                },
            )?
            .after(serving.clone()),
        );
    }
    let mut deps = vec![ids::kubeconfigs(), ids::manifests(), ids::dns()];
    for c in &controllers {
        // Their addresses reach the API; their control planes serve it.
        deps.push(ids::device(&c.hostname));
        deps.push(ids::control_plane(&c.hostname));
    }
    steps.push(
        step::<BootstrapKind>(
            ids::bootstrap(),
            inputs(&api_name)?,
            &ApiParams {
                api_name: api_name.clone(),
                controllers: api_controllers.clone(),
            },
        )?
        .after(deps)
        .retry(ssh_retry()),
    );
    let expected: Vec<String> = desired.nodes.iter().map(|n| n.hostname.clone()).collect();
    let mut deps = vec![ids::bootstrap()];
    deps.extend(desired.nodes.iter().map(|n| ids::device(&n.hostname)));
    steps.push(
        step::<ReadyKind>(
            ids::ready(),
            inputs(&expected)?,
            &ReadyParams {
                api: ApiParams {
                    api_name,
                    controllers: api_controllers,
                },
                expected_nodes: expected.clone(),
            },
        )?
        .after(deps)
        .retry(RetryPolicy::never())
        // A record of nodes ready an hour ago says nothing of now.
        .checks_now(),
    );
    Ok(Dag::new(steps)?)
}

/// The PKI step's inputs change once per renewal window, so that a cluster that is run again now
/// and then gets its certificates checked, and renewed before they expire (peer lesson:
/// clusters whose certificates silently expired after a year).
fn renewal_epoch(pki: &assets::pki::PkiInputs, now: SystemTime) -> u64 {
    let validity = Duration::from_secs(u64::from(pki.validity_hours) * 3600);
    let window = assets::pki::renewal_window(validity).as_secs().max(3600);
    now.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() / window)
        .unwrap_or_default()
}

/// Which half of a bootstrap token's lifetime `now` is in, counted from the epoch.
fn token_window(now: SystemTime) -> u64 {
    let half = (assets::bootstrap_token::LIFETIME / 2).as_secs();
    now.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() / half)
        .unwrap_or_default()
}

/// SSH steps wait for sshd of a freshly booted node: many attempts, bounded by time.
fn ssh_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 60,
        max_interval: Duration::from_secs(15),
        max_elapsed: Some(Duration::from_secs(30 * 60)),
        ..RetryPolicy::default()
    }
}

fn device_step(desired: &DesiredCluster, node: &DesiredNode) -> Result<StepDef, BuildError> {
    let os = match &node.os {
        OsImage::Flatcar { channel, .. } => DeviceOs::Flatcar {
            channel: channel.to_string(),
        },
        OsImage::Ipxe { script_url, .. } => DeviceOs::Ipxe {
            url: script_url.clone(),
        },
    };
    let reservation = match &node.reservation {
        HardwareReservation::None => None,
        other => other.api_value().map(str::to_owned),
    };
    let spec = DeviceSpec {
        cluster: desired.settings.cluster_name.as_str().to_owned(),
        hostname: node.hostname.clone(),
        plan: node.plan.as_str().to_owned(),
        location: Location::Facility(node.facility.as_str().to_owned()),
        os,
        reservation,
        // The run's asset directory gives them (see the device action).
        userdata_path: Default::default(),
        cluster_id: None,
    };
    // The Ignition is an input through the ignition step's outputs (its digest): a device is
    // reconciled when it changes, and adopted as it is (Workers ignore later user_data).
    let own = inputs(&spec.inputs())?;
    // Packet's `next-available` takes any free reservation of the plan, a reservation the spec
    // names for another node included: such a create waits until those nodes' devices exist.
    let named_first = if node.reservation == HardwareReservation::NextAvailable {
        desired
            .nodes
            .iter()
            .filter(|n| matches!(n.reservation, HardwareReservation::Id(_)) && n.plan == node.plan)
            .map(|n| n.hostname.clone())
            .collect()
    } else {
        Vec::new()
    };
    Ok(step::<DeviceKind>(
        ids::device(&node.hostname),
        own,
        &DeviceParams { spec, named_first },
    )?
    .after([ids::ignition(&node.hostname)])
    .class(PACKET_API)
    // A new device is a new node: when it leaves, it is drained again.
    .invalidates([
        ids::delete_device(&node.hostname),
        ids::drain(&node.hostname),
    ]))
}

fn dns_step(desired: &DesiredCluster, controllers: &[&DesiredNode]) -> Result<StepDef, BuildError> {
    let from = |node: &DesiredNode, which| (ids::device(&node.hostname), which);
    let records: Vec<RecordSource> = desired
        .dns_records
        .iter()
        .map(|record| RecordSource {
            name: record.name.clone(),
            ttl: i64::from(record.ttl_seconds),
            values_from: match record.target {
                RecordTarget::ControllersPublicIpv4 => controllers
                    .iter()
                    .map(|c| from(c, DeviceAddress::PublicIpv4))
                    .collect(),
                RecordTarget::ControllersPrivateIpv4 => controllers
                    .iter()
                    .map(|c| from(c, DeviceAddress::PrivateIpv4))
                    .collect(),
                RecordTarget::ControllerPrivateIpv4 { index } => controllers
                    .get(index as usize)
                    .map(|c| from(c, DeviceAddress::PrivateIpv4))
                    .into_iter()
                    .collect(),
            },
        })
        .collect();
    let names: Vec<&str> = records.iter().map(|r| r.name.as_str()).collect();
    let own = inputs(&(&names, desired.settings.dns_zone_id.as_str()))?;
    let zone_id = desired.settings.dns_zone_id.as_str().to_owned();
    Ok(
        step::<DnsKind>(ids::dns(), own, &DnsParams { zone_id, records })?
            .after(controllers.iter().map(|c| ids::device(&c.hostname)))
            .class(DNS),
    )
}

/// The DAG of `loko destroy`: every device tagged with the cluster (also ones a crash left
/// unrecorded) and the cluster's records. Every remote step's record is invalidated, so a later
/// `loko run` builds the cluster again; the assets (CA, keys) stay.
pub fn destroy_dag(desired: &DesiredCluster, history: &History) -> Result<Dag, BuildError> {
    let local = [ids::pki(), ids::kubeconfigs(), ids::manifests()];
    let remote: Vec<StepId> = history
        .recorded
        .iter()
        .filter(|s| !local.contains(s) && !s.as_str().starts_with("ignition/"))
        .filter(|s| !s.as_str().starts_with("destroy/"))
        .cloned()
        .collect();
    let cluster = desired.settings.cluster_name.as_str();
    let names: Vec<String> = desired.dns_records.iter().map(|r| r.name.clone()).collect();
    // Each destroy runs again even when the last one succeeded: devices may have appeared since.
    let nonce = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    Ok(Dag::new(vec![
        step::<DeleteDevicesKind>(
            ids::destroy_devices(),
            inputs(&(cluster, nonce))?,
            &DeleteDevicesParams {
                tag: cluster_tag(cluster),
            },
        )?
        .class(PACKET_API)
        .invalidates(remote.clone()),
        step::<DeleteRecordsKind>(
            ids::destroy_dns(),
            inputs(&(&names, nonce))?,
            &DeleteRecordsParams {
                zone_id: desired.settings.dns_zone_id.as_str().to_owned(),
                names,
            },
        )?
        .class(DNS)
        .invalidates(remote),
    ])?)
}
