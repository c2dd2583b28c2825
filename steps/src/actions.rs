//! The actions of the provisioning steps, bound to their kinds when a run starts.
//!
//! [`crate::cluster`] builds the DAG as data: each step names its kind and carries its params
//! (a device's spec, a record's sources, a hostname). [`actions`] binds every kind to the code
//! that runs it, with what only a run has: the API clients, the waits and ports of
//! [`RunSettings`](crate::run_context::RunSettings), the asset directory and the desired
//! cluster the run records. So `loko graph` and `loko plan` build the same DAG as `loko run`
//! without a client or a directory. The kinds' params and outputs types ([`crate::kinds`]) are
//! the contract between the two halves, checked by the compiler.

use std::collections::BTreeMap;
use std::sync::Arc;

use engine::{Actions, StepContext, StepError, StepKind};
use journal::Digest;

use crate::assets;
use crate::bootstrap::BootstrapStep;
use crate::control_plane::{ControlPlaneStep, EtcdSecretsStep, NodeAccess};
use crate::dns::{DnsDeleteStep, DnsStep};
use crate::drain::DrainStep;
use crate::ignition;
use crate::kinds::{
    BootstrapKind, ControlPlaneKind, DeleteDevicesKind, DeleteDevicesOutputs, DeleteRecordsKind,
    DeviceKind, DnsKind, DrainKind, EtcdSecretsKind, IgnitionKind, IgnitionOutputs,
    KubeconfigsKind, KubeconfigsOutputs, MachineKind, ManifestsKind, ManifestsOutputs, PkiKind,
    PkiOutputs, ReadyKind, RetireMachineKind, RetireOutputs,
};
use crate::provider::MachineProvider as _;
use crate::provider::packet::PacketMachine;
use crate::readiness::ReadinessStep;
use crate::run_context::RunContext;
use crate::step_name::StepName;

/// `actions` with kind `K` bound to `action`, which each attempt calls with a handle on the
/// run's context, the step's context and its params.
fn bind<K, F, Fut>(actions: Actions, run: &Arc<RunContext>, action: F) -> Actions
where
    K: StepKind,
    F: Fn(Arc<RunContext>, StepContext, K::Params) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<K::Outputs, StepError>> + Send + 'static,
{
    let run = Arc::clone(run);
    actions.bind::<K, _, _>(move |ctx, params| action(Arc::clone(&run), ctx, params))
}

/// The action of a kind that has a step type: builds the step from the step's params
/// `$params` and the run's context `$r` with `$step`, and runs it. A macro, not a function:
/// each step type has its own inherent `async fn run(&self, ctx)`, with no trait over them to
/// be generic on.
macro_rules! bind_step {
    ($actions:expr, $K:ty, $run:expr, |$r:ident, $params:ident| $step:expr) => {
        bind::<$K, _, _>($actions, $run, |$r, ctx: StepContext, $params| async move {
            let step = $step;
            step.run(ctx).await
        })
    };
}

/// How the SSH steps reach a controller: through the addresses its device or machine step
/// published.
fn node_access(run: &RunContext, hostname: String) -> NodeAccess {
    let settings = &run.settings;
    let device_step = match run.desired.node(&hostname) {
        Some(node) => StepName::node_machine(node),
        None => StepName::Device(hostname.clone()),
    };
    NodeAccess {
        device_step: device_step.id(),
        host_key_step: StepName::Ignition(hostname.clone()).id(),
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
    let actions = bind::<PkiKind, _, _>(
        Actions::new(),
        &run,
        |run, ctx: StepContext, ()| async move {
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
            let sha256: BTreeMap<String, String> = report
                .files
                .iter()
                .map(|f| (f.path.clone(), f.sha256.clone()))
                .collect();
            Ok(PkiOutputs { sha256 })
        },
    );
    let actions =
        bind::<KubeconfigsKind, _, _>(actions, &run, |run, _ctx: StepContext, params| async move {
            let nodes_to_boot = params.nodes_to_boot;
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
            Ok(KubeconfigsOutputs {
                admin: "auth/kubeconfig".into(),
                kubelet_sha256: Digest::of(kubelet.as_bytes()).to_hex(),
                bootstrap_token_id: token.id.clone(),
                bootstrap_token_expiration: token.expiration.clone(),
            })
        });
    let actions =
        bind::<ManifestsKind, _, _>(actions, &run, |run, _ctx: StepContext, ()| async move {
            let files = assets::manifests::render_manifests(&run.assets, &run.desired)
                .map_err(local_error)?;
            Ok(ManifestsOutputs { files })
        });
    let r = Arc::clone(&run);
    let actions = actions.bind::<IgnitionKind, _, _>(move |_ctx: StepContext, params| {
        let (run, desired) = (Arc::clone(&r), Arc::clone(&for_ignition));
        async move {
            let hostname = params.hostname;
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
            Ok(IgnitionOutputs {
                ssh_host_key: host_key.public_line().to_owned(),
                userdata_path: path.display().to_string(),
                ignition_sha256: ignition::digest(&text),
            })
        }
    });
    let actions = bind::<DeviceKind, _, _>(actions, &run, |run, ctx, params| async move {
        let mut spec = params.spec;
        spec.userdata_path = ignition::path(&run.assets, &spec.hostname);
        // The CA exists: the PKI step comes before every device.
        spec.cluster_id = assets::pki::cluster_id(&run.assets).map_err(local_error)?;
        let hostname = spec.hostname.clone();
        let machine = PacketMachine {
            spec,
            named_first: params.named_first,
        };
        let provided = run
            .packet("device")?
            .ensure(&ctx, &hostname, &machine)
            .await?;
        Ok(provided.into())
    });
    let actions = bind::<MachineKind, _, _>(actions, &run, |run, ctx, params| async move {
        let hostname = params.hostname;
        let rack = run.clients.machines.rack(&hostname)?;
        if let Some(was) = &params.replaces {
            rack.retire(&ctx, was).await?;
        }
        if params.from_disk {
            let provided = rack
                .provider
                .power_on(&ctx, &hostname, &params.machine)
                .await?;
            return Ok(provided.into());
        }
        let path = ignition::path(&run.assets, &hostname);
        let ignition = std::fs::read_to_string(&path).map_err(|e| {
            StepError::permanent(format!(
                "node {hostname}: cannot read its Ignition {}: {e}",
                path.display()
            ))
        })?;
        let provided = rack
            .boot(&ctx, &hostname, &params.machine, ignition)
            .await?;
        Ok(provided.into())
    });
    let actions = bind::<RetireMachineKind, _, _>(actions, &run, |run, ctx, params| async move {
        let rack = run.clients.machines.rack(&params.hostname)?;
        rack.retire(&ctx, &params.machine).await?;
        // A destroy's node whose spec names another machine than the one booted: both off.
        if let Some(was) = &params.replaces {
            rack.retire(&ctx, was).await?;
        }
        Ok(RetireOutputs {
            machine: params.machine.name.to_string(),
        })
    });
    let actions = bind::<DeleteDevicesKind, _, _>(actions, &run, |run, ctx, params| async move {
        let deleted = run
            .packet("delete-devices")?
            .delete_tagged(&ctx, &params.tag)
            .await?;
        Ok(DeleteDevicesOutputs {
            tag: params.tag,
            deleted_devices: deleted,
        })
    });
    let actions = bind_step!(actions, DnsKind, &run, |run, params| DnsStep {
        route53: run.clients.route53.clone(),
        zone_id: params.zone_id,
        records: params.records,
        take_over: run.settings.take_over_dns,
        poll_every: run.settings.dns_poll,
        in_sync_deadline: run.settings.dns_deadline,
    });
    let actions = bind_step!(actions, DeleteRecordsKind, &run, |run, params| {
        DnsDeleteStep {
            route53: run.clients.route53.clone(),
            zone_id: params.zone_id,
            names: params.names,
            poll_every: run.settings.dns_poll,
            in_sync_deadline: run.settings.dns_deadline,
        }
    });
    let actions = bind_step!(actions, EtcdSecretsKind, &run, |run, params| {
        EtcdSecretsStep {
            ssh: run.clients.ssh.clone(),
            node: node_access(&run, params.hostname),
            asset_dir: run.assets.root().to_owned(),
        }
    });
    let actions = bind_step!(actions, ControlPlaneKind, &run, |run, params| {
        ControlPlaneStep {
            ssh: run.clients.ssh.clone(),
            node: node_access(&run, params.hostname),
            asset_dir: run.assets.root().to_owned(),
            aggregation: params.aggregation,
        }
    });
    let actions = bind_step!(actions, BootstrapKind, &run, |run, params| BootstrapStep {
        api_name: params.api_name,
        port: run.settings.api_port,
        controllers: params.controllers,
        asset_dir: run.assets.root().to_owned(),
        poll_every: run.settings.ready_poll,
        deadline: run.settings.ready_deadline,
    });
    let actions = bind_step!(actions, DrainKind, &run, |run, params| DrainStep {
        api_name: params.api.api_name,
        port: run.settings.api_port,
        controllers: params.api.controllers,
        node: params.hostname,
        asset_dir: run.assets.root().to_owned(),
        poll_every: run.settings.ready_poll,
        timeout: run.settings.drain_timeout,
        skip: run.settings.skip_drain,
    });
    bind_step!(actions, ReadyKind, &run, |run, params| ReadinessStep {
        api_name: params.api.api_name,
        port: run.settings.api_port,
        controllers: params.api.controllers,
        expected_nodes: params.expected_nodes,
        workloads: crate::assets::manifests::workloads(&run.desired),
        asset_dir: run.assets.root().to_owned(),
        poll_every: run.settings.ready_poll,
        deadline: run.settings.ready_deadline,
    })
}
