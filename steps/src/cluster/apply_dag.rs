//! The DAG of `loko run`: bring the cluster to the desired one.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use engine::{Dag, RetryPolicy, StepDef};
use journal::StepId;
use specs::{DesiredCluster, DesiredNode, HardwareReservation, OsImage, RecordTarget};

use super::build::{BuildError, inputs, node_params, retire_step, step};
use crate::assets;
use crate::changes::changes;
use crate::classes::{PACKET_API, REDFISH, ROUTE53, SSH};
use crate::history::History;
use crate::kinds::{
    ApiParams, BootstrapKind, ControlPlaneKind, ControlPlaneParams, DeleteDevicesKind,
    DeleteDevicesParams, DeviceAddress, DeviceKind, DeviceParams, DnsKind, DnsParams, DrainKind,
    DrainParams, EtcdSecretsKind, IgnitionKind, KubeconfigsKind, KubeconfigsParams, MachineKind,
    MachineParams, ManifestsKind, PkiKind, ReadyKind, ReadyParams, RecordSource,
};
use crate::packet::{DeviceOs, DeviceSpec, Location, node_tag};
use crate::provider::Change;
use crate::provider::rack::machine_change;
use crate::step_name::StepName;

/// The DAG of `loko run`: bring the cluster to `desired`. Data only: it names each step's
/// kind and params, and [`crate::actions::actions`] binds them when the run starts.
/// `extra_keys` are the keys the nodes admit besides the spec's
/// ([`RunSettings`](crate::run_context::RunSettings)): part of the Ignition steps' inputs, as
/// they are of the Ignition.
pub fn apply_dag(
    desired: &DesiredCluster,
    history: &History,
    extra_keys: &[specs::SshPublicKey],
) -> Result<Dag, BuildError> {
    let settings = &desired.settings;
    let mut steps = Vec::new();

    // Assets: local, cheap, and their inputs are the cluster-wide settings.
    let pki_inputs = assets::pki::PkiInputs::from_desired(desired);
    steps.push(step::<PkiKind>(
        StepName::Pki.id(),
        inputs(&(&pki_inputs, renewal_epoch(&pki_inputs, SystemTime::now())))?,
        &(),
    )?);
    // The kubelets' bootstrap token is reissued for nodes about to boot when it is half
    // spent (`assets::bootstrap_token`): while some node has no device yet, the step runs
    // again in each half of the token's lifetime, so a scale-up a month later gets a fresh one.
    // With none to boot, its window stays the one the latest building run planned it with, so
    // the run after a successful one has nothing to do.
    let nodes_to_boot = desired.nodes.iter().any(|node| {
        !history
            .recorded
            .contains(&StepName::node_machine(node).id())
    });
    let planned_at = match history.last_built_at_ms {
        Some(ms) if !nodes_to_boot => SystemTime::UNIX_EPOCH + Duration::from_millis(ms),
        _ => SystemTime::now(),
    };
    let token_window = token_window(planned_at);
    steps.push(
        step::<KubeconfigsKind>(
            StepName::Kubeconfigs.id(),
            inputs(&(settings, token_window))?,
            &KubeconfigsParams { nodes_to_boot },
        )?
        .after([StepName::Pki.id()]),
    );
    steps.push(
        step::<ManifestsKind>(
            StepName::Manifests.id(),
            inputs(&(settings, assets::manifests::RENDERING))?,
            &(),
        )?
        .after([StepName::Pki.id()]),
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
                StepName::Ignition(node.hostname.clone()).id(),
                inputs(&(&ignition_settings, node, desired.dns_service_ip))?,
                &node_params(&node.hostname),
            )?
            .after([StepName::Kubeconfigs.id()]),
        );
        let device = match &node.machine {
            Some(machine) => machine_step(node, machine, history)?,
            None => device_step(desired, node)?,
        };
        // A retyped worker's device is deleted by its device step: its node is drained first.
        steps.push(match drained.contains(&node.hostname) {
            true => device.after([StepName::Drain(node.hostname.clone()).id()]),
            false => device,
        });
    }

    // Nodes that left the spec, drained first, until their removal is recorded: a step that
    // removed one is not planned again (its drain, done, is no longer its dependency, so it
    // would run again for nothing, and a run after a scale down would not be up to date).
    for host in history.known_nodes.iter().filter(|host| {
        desired.node(host).is_none()
            && !StepName::removal_recorded(host, |id| history.recorded.contains(id))
    }) {
        let delete = match history.machines.get(host) {
            // A rack's node: its machine is powered off.
            Some(machine) => retire_step(
                &MachineParams::retiring(host, machine),
                inputs(&(host.as_str(), machine))?,
            )?,
            None => step::<DeleteDevicesKind>(
                StepName::DeleteDevice(host.clone()).id(),
                inputs(host.as_str())?,
                &DeleteDevicesParams {
                    tag: node_tag(host),
                },
            )?
            .class(PACKET_API)
            .invalidates([StepName::Device(host.clone()).id()]),
        };
        steps.push(match drained.contains(host) {
            true => delete.after([StepName::Drain(host.clone()).id()]),
            false => delete,
        });
    }

    let controllers: Vec<&DesiredNode> = desired.controllers().collect();
    // A spec that names its API address itself has no record: no dns step.
    let dns = desired
        .settings
        .route53()
        .map(|_| dns_step(desired, &controllers));
    let has_dns = dns.is_some();
    steps.extend(dns.transpose()?);

    // Bootstrap over SSH.
    for node in &controllers {
        steps.push(
            step::<EtcdSecretsKind>(
                StepName::EtcdSecrets(node.hostname.clone()).id(),
                inputs(&node.hostname)?,
                &node_params(&node.hostname),
            )?
            .after([
                StepName::Pki.id(),
                StepName::node_machine(node).id(),
                StepName::Ignition(node.hostname.clone()).id(),
            ])
            .class(SSH)
            .retry(ssh_retry()),
        );
    }
    if controllers.is_empty() {
        return Err(BuildError::NoController);
    }
    let (api_name, _) = settings.apiserver_hosts();
    let api_controllers: Vec<StepId> = controllers
        .iter()
        .map(|c| StepName::node_machine(c).id())
        .collect();
    for node in &controllers {
        steps.push(
            step::<ControlPlaneKind>(
                StepName::ControlPlane(node.hostname.clone()).id(),
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
                StepName::Pki.id(),
                StepName::Kubeconfigs.id(),
                StepName::Manifests.id(),
                StepName::EtcdSecrets(node.hostname.clone()).id(),
                StepName::node_machine(node).id(),
                StepName::Ignition(node.hostname.clone()).id(),
            ])
            .class(SSH)
            .retry(ssh_retry()),
        );
    }
    // Drains reach the API as the bootstrap does, once the control plane serves it.
    let mut serving: Vec<StepId> = api_controllers.clone();
    serving.extend(
        controllers
            .iter()
            .map(|c| StepName::ControlPlane(c.hostname.clone()).id()),
    );
    for host in &drained {
        steps.push(
            step::<DrainKind>(
                StepName::Drain(host.clone()).id(),
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
    let mut deps = vec![StepName::Kubeconfigs.id(), StepName::Manifests.id()];
    deps.extend(has_dns.then(|| StepName::Dns.id()));
    for c in &controllers {
        // Their addresses reach the API; their control planes serve it.
        deps.push(StepName::node_machine(c).id());
        deps.push(StepName::ControlPlane(c.hostname.clone()).id());
    }
    steps.push(
        step::<BootstrapKind>(
            StepName::Bootstrap.id(),
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
    let mut deps = vec![StepName::Bootstrap.id()];
    deps.extend(desired.nodes.iter().map(|n| StepName::node_machine(n).id()));
    steps.push(
        step::<ReadyKind>(
            StepName::Ready.id(),
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
        machine_type: node.plan.as_str().to_owned(),
        // Only a Packet cluster's nodes get devices, and each of those has a facility.
        location: Location::Facility(
            node.facility
                .as_ref()
                .map(|f| f.to_string())
                .unwrap_or_default(),
        ),
        os,
        reservation,
        // The run's asset directory gives them (see the device action).
        userdata_path: Default::default(),
        cluster_id: None,
    };
    // The Ignition is an input through the ignition step's outputs (its digest): a device is
    // reconciled when it changes, and adopted as it is (Workers ignore later user_data).
    let own = inputs(&spec.inputs())?;
    // Packet's `next-available` takes any free reservation of the machine type, a reservation
    // the spec names for another node included: such a create waits until those nodes' devices
    // exist.
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
        StepName::Device(node.hostname.clone()).id(),
        own,
        &DeviceParams { spec, named_first },
    )?
    .after([StepName::Ignition(node.hostname.clone()).id()])
    .class(PACKET_API)
    // A new device is a new node: when it leaves, it is drained again.
    .invalidates([
        StepName::DeleteDevice(node.hostname.clone()).id(),
        StepName::Drain(node.hostname.clone()).id(),
    ]))
}

/// A rack node's machine step: booted once its Ignition is written. Its own inputs are the
/// machine (a changed MAC or BMC is another machine); the Ignition is an input through the
/// ignition step's outputs, so a changed Ignition boots the machine again. A node whose
/// machine is replaced ([`machine_change`]) powers the one it had off first.
fn machine_step(
    node: &DesiredNode,
    machine: &specs::Machine,
    history: &History,
) -> Result<StepDef, BuildError> {
    let replaces = history
        .machines
        .get(&node.hostname)
        .filter(|was| matches!(machine_change(was, machine), Change::Recreate { .. }))
        .cloned();
    Ok(step::<MachineKind>(
        StepName::Machine(node.hostname.clone()).id(),
        inputs(machine)?,
        &MachineParams {
            hostname: node.hostname.clone(),
            machine: machine.clone(),
            // The refresh found it off: it comes back from its disk.
            from_disk: replaces.is_none() && history.gone.contains_key(&node.hostname),
            replaces,
        },
    )?
    .after([StepName::Ignition(node.hostname.clone()).id()])
    .class(REDFISH)
    // A booted machine is a new node: when it leaves, it is drained and retired again.
    .invalidates([
        StepName::Drain(node.hostname.clone()).id(),
        StepName::Retire(node.hostname.clone()).id(),
    ]))
}

fn dns_step(desired: &DesiredCluster, controllers: &[&DesiredNode]) -> Result<StepDef, BuildError> {
    let from = |node: &DesiredNode, which| (StepName::node_machine(node).id(), which);
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
        step::<DnsKind>(StepName::Dns.id(), own, &DnsParams { zone_id, records })?
            .after(controllers.iter().map(|c| StepName::node_machine(c).id()))
            .class(ROUTE53),
    )
}
