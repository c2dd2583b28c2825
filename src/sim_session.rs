//! The simulator of `--sim`: the demo's in-process session with its agent and nodes, a read-only
//! view of its saved cloud for `loko status --sim`, and the configurations `loko bench` shares.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use specs::DesiredCluster;

use crate::cli::SimOptions;
use crate::demo_agent::DemoAgent;
use crate::sim_rack::SimRack;
use crate::target::Target;

/// The port of the demo's nodes' SSH servers (each on its own 127.x.y.z address).
pub(crate) const SIM_SSH_PORT: u16 = 2222;

/// The demo's pace: a five-minute provisioning takes three seconds.
const DEMO_TIME_SCALE: f64 = 0.01;

/// The simulator of `--sim`, its demo agent, and how the clients reach it.
pub(crate) struct SimSession {
    pub(crate) handle: sim::SimHandle,
    pub(crate) agent: DemoAgent,
    pub(crate) time_scale: f64,
    /// The spec's machines behind the simulator's BMCs (`provider: redfish`).
    pub(crate) rack: Option<SimRack>,
}

impl SimSession {
    /// Starts the simulator in this process with its state beside the journal, so that a resumed
    /// demo sees the same cloud; its project and hosted zone are the spec's. A rack's machines
    /// (moved by [`crate::sim_rack::simulate`]) get the simulator's BMCs, booting into its nodes.
    pub(crate) async fn start(
        target: &Target,
        options: &SimOptions,
        redactor: &journal::Redactor,
    ) -> anyhow::Result<SimSession> {
        let dir = target.state_dir.join("sim");
        let node_root = dir.join("nodes");
        std::fs::create_dir_all(&node_root)
            .with_context(|| format!("cannot create {}", node_root.display()))?;
        let settings = &target.desired.settings;
        let time_scale = options.time_scale.unwrap_or(DEMO_TIME_SCALE);
        // Every node answers SSH in the demo, as real ones do.
        let (mut config, _user) = embedded_sim_config(
            &node_root,
            time_scale,
            settings.packet_project().ok().map(|p| p.as_str()),
            settings.dns_zone.as_str(),
            settings.dns_zone_id.as_str(),
            true,
        )?;
        config.state_file = Some(dir.join("state.json"));
        if let Some(path) = &options.sim_faults {
            config.faults = sim::FaultPlan::from_file(path)?;
        }
        let listed = target.desired.nodes.iter().any(|n| n.machine.is_some());
        let rack = match listed {
            true => Some(
                SimRack::start(
                    &target.desired,
                    &target.state_dir,
                    config.nodes.clone(),
                    time_scale,
                    &config.faults.rack,
                    redactor,
                )
                .await?,
            ),
            false => {
                seed_project(&mut config, &target.desired)?;
                None
            }
        };
        let handle = sim::start(config)
            .await
            .context("cannot start the simulator")?;
        let agent = DemoAgent::start(&dir)?;
        Ok(SimSession {
            handle,
            agent,
            time_scale,
            rack,
        })
    }

    /// Stops the simulator (its nodes, its state file written) and the rack's BMCs (its
    /// machines saved).
    pub(crate) async fn shutdown(self) -> anyhow::Result<()> {
        if let Some(rack) = self.rack {
            rack.rack.shutdown().await;
        }
        self.handle.shutdown().await?;
        Ok(())
    }
}

/// The simulated cloud of a `--sim` demo as last saved, for a command that only reads it
/// (`loko status --sim`): a simulator without nodes on a copy of the state file, so that a
/// `loko run --sim` of the same state directory, running meanwhile, keeps its own simulator,
/// its agent, its nodes and its state file to itself.
pub(crate) struct SimView {
    pub(crate) handle: sim::SimHandle,
    _copy: tempfile::TempDir,
}

impl SimView {
    pub(crate) async fn start(target: &Target, options: &SimOptions) -> anyhow::Result<SimView> {
        let copy = tempfile::tempdir().context("cannot create a temporary directory")?;
        let saved = target.state_dir.join("sim").join("state.json");
        let state_file = copy.path().join("state.json");
        match std::fs::copy(&saved, &state_file) {
            Ok(_) => {}
            // No demo yet: an empty cloud.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read {}", saved.display()));
            }
        }
        let settings = &target.desired.settings;
        let mut config = sim_config(
            copy.path(),
            options.time_scale.unwrap_or(DEMO_TIME_SCALE),
            settings.packet_project().ok().map(|p| p.as_str()),
            settings.dns_zone.as_str(),
            settings.dns_zone_id.as_str(),
        )?;
        config.state_file = Some(state_file);
        let handle = sim::start(config)
            .await
            .context("cannot start the simulator")?;
        Ok(SimView {
            handle,
            _copy: copy,
        })
    }
}

/// What the simulated project starts with, as the real project a spec was written for has it:
/// the hardware reservations the spec relies on, and the private network its devices get
/// (`node_private_cidr`). At first start only: a resumed demo's project keeps its own.
pub(crate) fn seed_project(
    config: &mut sim::SimConfig,
    desired: &DesiredCluster,
) -> anyhow::Result<()> {
    config.hardware_reservations = reservation_seeds(desired)?;
    let cidr = desired.settings.node_private_cidr.trunc();
    config.private_block = Some(
        sim::PrivateBlock::new(cidr.network(), cidr.prefix_len()).with_context(|| {
            format!("node_private_cidr {cidr} cannot be a simulated project's private network")
        })?,
    );
    Ok(())
}

/// The hardware reservations the spec relies on ([`DesiredCluster::reservations_needed`]), for
/// the simulated project. (At first start only: a resumed demo's project keeps its own.)
fn reservation_seeds(desired: &DesiredCluster) -> anyhow::Result<Vec<sim::ReservationSeed>> {
    desired
        .reservations_needed()
        .into_iter()
        .map(|need| {
            let id = need
                .id
                .map(|id| {
                    id.parse().with_context(|| {
                        format!(
                            "the reservation id {id:?} of {} is not a UUID",
                            need.node.as_deref().unwrap_or_default()
                        )
                    })
                })
                .transpose()?;
            Ok(sim::ReservationSeed {
                plan: need.plan,
                facility: need.facility,
                count: need.count,
                id,
            })
        })
        .collect()
}

/// A simulator with embedded SSH nodes under `node_root` on [`SIM_SSH_PORT`], the project
/// (none for a rack: the simulator makes one up, unused) and hosted zone given, everything on its clock (Packet's rate limit too), and the user its nodes
/// admit; workers answer SSH only with `worker_ssh` (loko logs into controllers only, and
/// `loko bench` leaves them without). For the demo and `loko bench`.
pub(crate) fn embedded_sim_config(
    node_root: &Path,
    time_scale: f64,
    project: Option<&str>,
    zone: &str,
    zone_id: &str,
    worker_ssh: bool,
) -> anyhow::Result<(sim::SimConfig, String)> {
    let nodes = sim::nodes::Nodes::new(sim::nodes::NodesConfig {
        root_dir: node_root.to_owned(),
        ssh_port: SIM_SSH_PORT,
        backend: sim::nodes::SshBackend::Embedded,
    })
    .with_context(|| format!("cannot prepare the nodes' roots in {}", node_root.display()))?;
    nodes.set_worker_ssh(worker_ssh);
    let user = nodes.ssh_login_user();
    let mut config = sim_config(node_root, time_scale, project, zone, zone_id)?;
    config.nodes = Arc::new(nodes);
    Ok((config, user))
}

/// A simulator without nodes, with the project (when the spec has one) and hosted zone given,
/// everything on its clock (Packet's rate limit too).
fn sim_config(
    node_root: &Path,
    time_scale: f64,
    project: Option<&str>,
    zone: &str,
    zone_id: &str,
) -> anyhow::Result<sim::SimConfig> {
    let mut config = sim::SimConfig::new(node_root.to_owned());
    config.time_scale = time_scale;
    config.project_id = project
        .map(|project| {
            project
                .parse()
                .with_context(|| format!("the project_id {project:?} is not a UUID"))
        })
        .transpose()?;
    config.hosted_zone = zone.to_owned();
    config.hosted_zone_id = Some(zone_id.to_owned());
    config.ssh_port = SIM_SSH_PORT;
    Ok(config)
}
