//! The actions of the provisioning steps, bound to their kinds when a run starts.
//!
//! [`crate::cluster`] builds the DAG as data: each step names its kind and carries its params
//! (a device's spec, a record's sources, a hostname). [`actions`] binds every kind to the code
//! that runs it, with what only a run has: the API clients, the waits and ports of
//! [`RunSettings`], the asset directory and the desired cluster the run records. So
//! `loko graph` and `loko plan` build the same DAG as `loko run` without a client or a
//! directory, and the DAG's params are the contract between the two halves (a kind's params
//! type is named here, next to its action).

use std::collections::BTreeMap;
use std::sync::Arc;

use engine::{ActionKind, Actions, StepContext, StepError};
use journal::{Digest, Outputs, StepId};
use serde::{Deserialize, Serialize};
use specs::DesiredCluster;

use crate::apply::BootstrapStep;
use crate::assets::{self, AssetDir};
use crate::bootstrap::{ControlPlaneStep, EtcdSecretsStep, NodeAccess};
use crate::cluster::{Clients, RunSettings, ids};
use crate::dns::{DnsDeleteStep, DnsStep, RecordSource};
use crate::drain::DrainStep;
use crate::ignition;
use crate::packet::{DeleteDeviceStep, DeviceSpec, DeviceStep};
use crate::readiness::ReadinessStep;

/// The CA, keys and certificates (no params: they come from the desired cluster).
pub const PKI: ActionKind = ActionKind::new("assets/pki");
/// The kubeconfigs and the kubelets' bootstrap token ([`KubeconfigsParams`]).
pub const KUBECONFIGS: ActionKind = ActionKind::new("assets/kubeconfigs");
/// The static control plane's pods and the cluster's manifests (no params).
pub const MANIFESTS: ActionKind = ActionKind::new("assets/manifests");
/// A node's Ignition and SSH host key ([`NodeParams`]).
pub const IGNITION: ActionKind = ActionKind::new("ignition");
/// A node's device ([`DeviceParams`]).
pub const DEVICE: ActionKind = ActionKind::new("device");
/// Every device with a tag: a node that left the spec, or the whole cluster on destroy
/// ([`DeleteDevicesParams`]).
pub const DELETE_DEVICES: ActionKind = ActionKind::new("delete-devices");
/// The cluster's DNS records ([`DnsParams`]).
pub const DNS: ActionKind = ActionKind::new("dns");
/// Deleting the cluster's DNS records ([`DeleteRecordsParams`]).
pub const DELETE_RECORDS: ActionKind = ActionKind::new("delete-records");
/// The etcd certificates to a controller ([`NodeParams`]).
pub const ETCD_SECRETS: ActionKind = ActionKind::new("etcd-secrets");
/// A controller's static control plane, copied over SSH ([`ControlPlaneParams`]).
pub const CONTROL_PLANE: ActionKind = ActionKind::new("control-plane");
/// The cluster's manifests applied through the API once it answers ([`BootstrapParams`]).
pub const BOOTSTRAP: ActionKind = ActionKind::new("bootstrap");
/// A worker's node cordoned, drained and its Node deleted before its device is
/// ([`DrainParams`]).
pub const DRAIN: ActionKind = ActionKind::new("drain");
/// The apiserver answers and every node is Ready ([`ReadyParams`]).
pub const READY: ActionKind = ActionKind::new("ready");

/// The node a step is about.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeParams {
    pub hostname: String,
}

/// Whether the kubeconfigs step issues a bootstrap token for nodes about to boot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KubeconfigsParams {
    /// Some node of the plan has no device yet: its Ignition needs a token with at least half
    /// its lifetime left.
    pub nodes_to_boot: bool,
}

/// A device step's params.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceParams {
    pub spec: DeviceSpec,
    /// Nodes whose named reservations a `next-available` create could take.
    pub named_first: Vec<String>,
}

/// The tag every device to delete carries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeleteDevicesParams {
    pub tag: String,
}

/// The records of the DNS step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DnsParams {
    pub zone_id: String,
    pub records: Vec<RecordSource>,
}

/// The records `loko destroy` deletes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeleteRecordsParams {
    pub zone_id: String,
    pub names: Vec<String>,
}

/// The controller whose static control plane a step installs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ControlPlaneParams {
    pub hostname: String,
    /// The apiserver serves the aggregation layer (`enable_aggregation`).
    pub aggregation: bool,
}

/// Where the bootstrap step reaches the API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BootstrapParams {
    /// `<cluster>.<dns_zone>`.
    pub api_name: String,
    /// The controllers' device steps, whose `public_ipv4` outputs reach the apiserver.
    pub controllers: Vec<StepId>,
}

/// The node a drain step drains, and where it reaches the API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DrainParams {
    /// `<cluster>.<dns_zone>`.
    pub api_name: String,
    /// The controllers' device steps, whose `public_ipv4` outputs reach the apiserver.
    pub controllers: Vec<StepId>,
    /// The worker's hostname (its Node's name).
    pub hostname: String,
}

/// What the readiness step waits for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReadyParams {
    /// `<cluster>.<dns_zone>`.
    pub api_name: String,
    /// The controllers' device steps, whose `public_ipv4` outputs reach the apiserver.
    pub controllers: Vec<StepId>,
    /// Hostnames that must be Ready.
    pub expected_nodes: Vec<String>,
}

/// What a run supplies to the actions.
pub struct RunContext {
    /// The desired cluster, as the run records it.
    pub desired: DesiredCluster,
    /// The asset directory, created by the run.
    pub assets: AssetDir,
    pub clients: Clients,
    pub settings: RunSettings,
}

/// `action` with the run's context, which each attempt gets a handle on.
fn with_run<F, Fut>(
    run: &Arc<RunContext>,
    action: F,
) -> impl Fn(StepContext) -> Fut + Send + Sync + 'static
where
    F: Fn(Arc<RunContext>, StepContext) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Outputs, StepError>> + Send + 'static,
{
    let run = Arc::clone(run);
    move |ctx| action(Arc::clone(&run), ctx)
}

/// The action of a kind that has a step type: reads the step's params (of type `$P`) into
/// `$params`, builds the step from them and the run's context `$run` with `$step`, and runs it.
/// A macro, not a function: each step type has its own inherent `async fn run(&self, ctx)`,
/// with no trait over them to be generic on.
macro_rules! step_action {
    ($run:expr, |$r:ident, $params:ident: $P:ty| $step:expr) => {
        with_run($run, |$r, ctx: StepContext| async move {
            let $params: $P = ctx.params()?;
            let step = $step;
            step.run(ctx).await
        })
    };
}

/// Where the API steps reach the apiserver: each controller's device step's `public_ipv4`.
fn public_ipv4_of(controllers: Vec<StepId>) -> Vec<(StepId, &'static str)> {
    controllers
        .into_iter()
        .map(|c| (c, "public_ipv4"))
        .collect()
}

/// How the SSH steps reach a controller.
fn node_access(settings: &RunSettings, hostname: String) -> NodeAccess {
    NodeAccess {
        device_step: ids::device(&hostname),
        host_key_step: ids::ignition(&hostname),
        hostname,
        port: settings.ssh_port,
        user: settings.ssh_user.clone(),
    }
}

fn local_error(e: impl std::fmt::Display) -> StepError {
    StepError::permanent(e)
}

/// Every kind of the provisioning DAGs bound to its action for one run.
pub fn actions(run: RunContext) -> Actions {
    // One copy of the cluster, with the run's extra keys, for every node's Ignition (a copy
    // per node would be quadratic: 1000 nodes, 1000 copies of 1000 nodes).
    let for_ignition = {
        let mut d = run.desired.clone();
        d.settings
            .ssh_keys
            .extend(run.settings.extra_authorized_keys.iter().cloned());
        Arc::new(d)
    };
    let run = Arc::new(run);
    let actions = Actions::new().bind_action(
        PKI,
        with_run(&run, |run, ctx: StepContext| async move {
            let pki_inputs = assets::pki::PkiInputs::from_desired(&run.desired);
            let report =
                assets::pki::ensure_pki(&run.assets, &pki_inputs, std::time::SystemTime::now())
                    .map_err(local_error)?;
            for file in &report.files {
                if let assets::pki::FileStatus::Reissued { reason } = &file.status {
                    ctx.progress(format!("reissued {}: {reason}", file.path));
                }
            }
            for warning in &report.warnings {
                tracing::warn!("{warning}");
                ctx.progress(warning.clone());
            }
            // Fingerprints only: dependents rerun exactly when a certificate changed (a
            // reissued etcd certificate is copied to the controllers again).
            let fingerprints: BTreeMap<&str, &str> = report
                .files
                .iter()
                .map(|f| (f.path.as_str(), f.sha256.as_str()))
                .collect();
            Ok(Outputs::new().with("sha256", &fingerprints)?)
        }),
    );
    let actions = actions.bind_action(
        KUBECONFIGS,
        with_run(&run, |run, ctx: StepContext| async move {
            let KubeconfigsParams { nodes_to_boot } = ctx.params()?;
            let (dir, desired) = (&run.assets, &run.desired);
            let token = assets::bootstrap_token::ensure_token(
                dir,
                std::time::SystemTime::now(),
                nodes_to_boot,
            )
            .map_err(local_error)?;
            assets::kubeconfig::write_kubeconfigs(dir, desired, &token).map_err(local_error)?;
            let kubelet =
                assets::kubeconfig::kubelet_kubeconfig(dir, desired).map_err(local_error)?;
            // The token's id and expiration are public (the id names its Secret); a new token
            // changes the digest, so every Ignition and the bootstrap step follow it.
            Ok(Outputs::new()
                .with("admin", "auth/kubeconfig")?
                .with("kubelet_sha256", Digest::of(kubelet.as_bytes()).to_hex())?
                .with("bootstrap_token_id", &token.id)?
                .with("bootstrap_token_expiration", &token.expiration)?)
        }),
    );
    let actions = actions.bind_action(
        MANIFESTS,
        with_run(&run, |run, _ctx: StepContext| async move {
            let report = assets::manifests::render_manifests(&run.assets, &run.desired)
                .map_err(local_error)?;
            Ok(Outputs::new().with("files", &report)?)
        }),
    );
    let r = Arc::clone(&run);
    let actions = actions.bind_action(IGNITION, move |ctx: StepContext| {
        let (run, desired) = (Arc::clone(&r), Arc::clone(&for_ignition));
        async move {
            let NodeParams { hostname } = ctx.params()?;
            let node = desired.node(&hostname).ok_or_else(|| {
                StepError::permanent(format!("{hostname} is not a node of the desired cluster"))
            })?;
            let dir = &run.assets;
            let host_key = ignition::ensure_host_key(dir, &hostname).map_err(local_error)?;
            let kubelet =
                assets::kubeconfig::kubelet_kubeconfig(dir, &desired).map_err(local_error)?;
            let text =
                ignition::render(&desired, node, &host_key, &kubelet).map_err(local_error)?;
            let path = ignition::write(dir, &hostname, &text).map_err(local_error)?;
            Ok(Outputs::new()
                .with("ssh_host_key", host_key.public_line())?
                .with("userdata_path", path.display().to_string())?
                .with("ignition_sha256", ignition::digest(&text))?)
        }
    });
    let actions = actions.bind_action(
        DEVICE,
        step_action!(&run, |run, params: DeviceParams| {
            let mut spec = params.spec;
            spec.userdata_path = ignition::path(&run.assets, &spec.hostname);
            // The CA exists: the PKI step comes before every device.
            spec.cluster_id = assets::pki::cluster_id(&run.assets).map_err(local_error)?;
            DeviceStep {
                client: Arc::clone(&run.clients.packet),
                poller: Arc::clone(&run.clients.poller),
                spec,
                settings: run.settings.device.clone(),
                named_first: params.named_first,
                private_network: run.desired.settings.node_private_cidr,
            }
        }),
    );
    let actions = actions.bind_action(
        DELETE_DEVICES,
        step_action!(&run, |run, params: DeleteDevicesParams| DeleteDeviceStep {
            client: Arc::clone(&run.clients.packet),
            poller: Arc::clone(&run.clients.poller),
            tag: params.tag,
            deadline: run.settings.device.provision_deadline,
        }),
    );
    let actions = actions.bind_action(
        DNS,
        step_action!(&run, |run, params: DnsParams| DnsStep {
            route53: run.clients.route53.clone(),
            zone_id: params.zone_id,
            records: params.records,
            take_over: run.settings.take_over_dns,
            poll_every: run.settings.dns_poll,
            in_sync_deadline: run.settings.dns_deadline,
        }),
    );
    let actions = actions.bind_action(
        DELETE_RECORDS,
        step_action!(&run, |run, params: DeleteRecordsParams| DnsDeleteStep {
            route53: run.clients.route53.clone(),
            zone_id: params.zone_id,
            names: params.names,
            poll_every: run.settings.dns_poll,
            in_sync_deadline: run.settings.dns_deadline,
        }),
    );
    let actions = actions.bind_action(
        ETCD_SECRETS,
        step_action!(&run, |run, params: NodeParams| EtcdSecretsStep {
            ssh: run.clients.ssh.clone(),
            node: node_access(&run.settings, params.hostname),
            asset_dir: run.assets.root().to_owned(),
        }),
    );
    let actions = actions.bind_action(
        CONTROL_PLANE,
        step_action!(&run, |run, params: ControlPlaneParams| ControlPlaneStep {
            ssh: run.clients.ssh.clone(),
            node: node_access(&run.settings, params.hostname),
            asset_dir: run.assets.root().to_owned(),
            aggregation: params.aggregation,
        }),
    );
    let actions = actions.bind_action(
        BOOTSTRAP,
        step_action!(&run, |run, params: BootstrapParams| BootstrapStep {
            api_name: params.api_name,
            port: run.settings.api_port,
            controllers: public_ipv4_of(params.controllers),
            asset_dir: run.assets.root().to_owned(),
            poll_every: run.settings.ready_poll,
            deadline: run.settings.ready_deadline,
        }),
    );
    let actions = actions.bind_action(
        DRAIN,
        step_action!(&run, |run, params: DrainParams| DrainStep {
            api_name: params.api_name,
            port: run.settings.api_port,
            controllers: public_ipv4_of(params.controllers),
            node: params.hostname,
            asset_dir: run.assets.root().to_owned(),
            poll_every: run.settings.ready_poll,
            timeout: run.settings.drain_timeout,
            skip: run.settings.skip_drain,
        }),
    );
    actions.bind_action(
        READY,
        step_action!(&run, |run, params: ReadyParams| ReadinessStep {
            api_name: params.api_name,
            port: run.settings.api_port,
            controllers: public_ipv4_of(params.controllers),
            expected_nodes: params.expected_nodes,
            workloads: crate::assets::manifests::workloads(&run.desired),
            asset_dir: run.assets.root().to_owned(),
            poll_every: run.settings.ready_poll,
            deadline: run.settings.ready_deadline,
        }),
    )
}
