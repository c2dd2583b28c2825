//! `loko run`, `loko plan` and `loko destroy`: a spec, its journal, the clients, the engine.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use engine::{CancellationToken, Engine, Outcome, RunRequest};
use journal::{Digest, Journal, RunKind};
use specs::{DesiredCluster, SshPublicKey};
use steps::assets::AssetDir;
use steps::cluster::{self, Clients, History, RunSettings};
use steps::dns::Route53;
use steps::packet::{DevicePoller, PacketClient, Timeouts, Token, cluster_tag};
use steps::preflight::Problem;
use steps::ssh::Ssh;

use crate::cli::{DestroyArgs, Global, GraphArgs, PlanArgs, RunArgs, SimOptions, StatusArgs};
use crate::demo_agent::DemoAgent;
use crate::failure::{EXIT_DIFFERS, EXIT_FAILED, EXIT_USAGE, UserError};
pub(crate) use crate::journal_location::open_journal;
use crate::output::{out, outln};
use crate::progress::Printer;
use crate::spec_cmd::load_spec;

/// The port of the demo's nodes' SSH servers (each on its own 127.x.y.z address).
pub(crate) const SIM_SSH_PORT: u16 = 2222;

/// The demo's pace: a five-minute provisioning takes three seconds.
const DEMO_TIME_SCALE: f64 = 0.01;

/// Exit code of an interrupted run.
const EXIT_INTERRUPTED: u8 = 130;

/// A spec with its desired cluster and where its state lives.
pub(crate) struct Target {
    pub(crate) desired: DesiredCluster,
    pub(crate) assets: PathBuf,
    pub(crate) state_dir: PathBuf,
    /// Where the journal lives: the state directory's `journal`, or etcd.
    pub(crate) journal: journal::Location,
    endpoints: specs::Endpoints,
}

pub(crate) fn target(global: &Global, spec_path: &Path) -> anyhow::Result<Target> {
    let spec = load_spec(spec_path)?;
    // Absolute paths: they are recorded, shown, and handed to the simulator's nodes.
    let absolute = |path: &Path| {
        std::path::absolute(path)
            .with_context(|| format!("cannot resolve the path {}", path.display()))
    };
    let assets = absolute(&spec.asset_dir)?;
    let state_dir = match &global.state_dir {
        Some(dir) => absolute(dir)?,
        None => assets.join(".loko"),
    };
    Ok(Target {
        desired: spec.desired(),
        assets,
        journal: crate::journal_location::location(global, &state_dir)?,
        state_dir,
        endpoints: spec.endpoints.clone(),
    })
}

pub(crate) fn history(journal: &Journal) -> anyhow::Result<History> {
    journal
        .with_state(History::read)
        .map_err(anyhow::Error::from)
}

/// Refused changes are usage errors naming each field.
pub(crate) fn changes(
    desired: &DesiredCluster,
    history: &History,
) -> anyhow::Result<cluster::Changes> {
    cluster::changes(desired, history).map_err(|refused| {
        UserError {
            message: refused.to_string(),
            code: EXIT_USAGE,
            hint: Some(
                "only adding a worker pool, scaling a pool (even to 0) and changing a pool's type can change after installation; \
                 put the field back, or destroy the cluster and create it again"
                    .into(),
            ),
        }
        .into()
    })
}

/// The simulator of `--sim`, its demo agent, and how the clients reach it.
pub(crate) struct SimSession {
    pub(crate) handle: sim::SimHandle,
    agent: DemoAgent,
    time_scale: f64,
}

impl SimSession {
    /// Starts the simulator in this process with its state beside the journal, so that a resumed
    /// demo sees the same cloud; its project and hosted zone are the spec's.
    pub(crate) async fn start(target: &Target, options: &SimOptions) -> anyhow::Result<SimSession> {
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
            settings.project_id.as_str(),
            settings.dns_zone.as_str(),
            settings.dns_zone_id.as_str(),
            true,
        )?;
        config.state_file = Some(dir.join("state.json"));
        config.hardware_reservations = reservation_seeds(&target.desired)?;
        if let Some(path) = &options.sim_faults {
            config.faults = sim::FaultPlan::from_file(path)?;
        }
        let handle = sim::start(config)
            .await
            .context("cannot start the simulator")?;
        let agent = DemoAgent::start(&dir)?;
        Ok(SimSession {
            handle,
            agent,
            time_scale,
        })
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
            settings.project_id.as_str(),
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

/// The hardware reservations the spec relies on, for the simulated project: each one it names
/// by id, and one per node that takes the `next-available` one of its plan and facility. (At
/// first start only: a resumed demo's project keeps its own.)
pub(crate) fn reservation_seeds(
    desired: &DesiredCluster,
) -> anyhow::Result<Vec<sim::ReservationSeed>> {
    let mut seeds = Vec::new();
    let mut any: BTreeMap<(String, String), u32> = BTreeMap::new();
    for node in &desired.nodes {
        let (plan, facility) = (
            node.plan.as_str().to_owned(),
            node.facility.as_str().to_owned(),
        );
        match &node.reservation {
            specs::HardwareReservation::Id(id) => seeds.push(sim::ReservationSeed {
                plan,
                facility,
                count: 1,
                id: Some(id.parse().with_context(|| {
                    format!(
                        "the reservation id {id:?} of {} is not a UUID",
                        node.hostname
                    )
                })?),
            }),
            specs::HardwareReservation::NextAvailable => {
                *any.entry((plan, facility)).or_default() += 1
            }
            specs::HardwareReservation::None => {}
        }
    }
    seeds.extend(
        any.into_iter()
            .map(|((plan, facility), count)| sim::ReservationSeed {
                plan,
                facility,
                count,
                id: None,
            }),
    );
    Ok(seeds)
}

/// A simulator with embedded SSH nodes under `node_root` on [`SIM_SSH_PORT`], the project and
/// hosted zone given, everything on its clock (Packet's rate limit too), and the user its nodes
/// admit; workers answer SSH only with `worker_ssh` (loko logs into controllers only, and
/// `loko bench` leaves them without). For the demo and `loko bench`.
pub(crate) fn embedded_sim_config(
    node_root: &Path,
    time_scale: f64,
    project: &str,
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

/// A simulator without nodes, with the project and hosted zone given, everything on its clock
/// (Packet's rate limit too).
fn sim_config(
    node_root: &Path,
    time_scale: f64,
    project: &str,
    zone: &str,
    zone_id: &str,
) -> anyhow::Result<sim::SimConfig> {
    let mut config = sim::SimConfig::new(node_root.to_owned());
    config.time_scale = time_scale;
    config.project_id = Some(
        project
            .parse()
            .with_context(|| format!("the project_id {project:?} is not a UUID"))?,
    );
    config.hosted_zone = zone.to_owned();
    config.hosted_zone_id = Some(zone_id.to_owned());
    config.ssh_port = SIM_SSH_PORT;
    config.rate_limit.window = config.rate_limit.window.mul_f64(time_scale);
    Ok(config)
}

/// Everything a run talks to.
pub(crate) struct Wiring {
    pub(crate) clients: Clients,
    pub(crate) timings: RunSettings,
}

/// How to reach the nodes over SSH.
pub(crate) struct Login {
    pub(crate) port: u16,
    pub(crate) user: String,
}

/// The API clients, for the simulator of `--sim` or for what the spec and environment name,
/// checked before any step ([`steps::preflight`]): every problem found (with `problems`, those
/// the caller found already) is one usage error listing them all.
async fn connect(
    target: &Target,
    sim: Option<&sim::SimHandle>,
    mut problems: Vec<Problem>,
) -> anyhow::Result<(PacketClient, Route53)> {
    let project = target.desired.settings.project_id.as_str();
    let (url, token, route53, route53_url) = match sim {
        Some(sim) => (
            sim.packet_url(),
            Some(Token::new(sim.token())),
            Route53::with_static_credentials(&sim.route53_url(), "loko-sim", "loko-sim-secret")
                .await,
            sim.route53_url(),
        ),
        None => {
            let token = match Token::from_env() {
                Ok(token) => Some(token),
                Err(e) => {
                    problems.push(Problem {
                        what: e.to_string(),
                        hint: "export PACKET_AUTH_TOKEN=<an API key of your user>, or try the simulator: loko run SPEC --sim".into(),
                    });
                    None
                }
            };
            let url = target
                .endpoints
                .packet_api_url
                .clone()
                .unwrap_or_else(|| steps::packet::DEFAULT_BASE_URL.to_owned());
            let endpoint = target
                .endpoints
                .route53_endpoint_url
                .clone()
                .or_else(|| std::env::var(steps::dns::ENDPOINT_ENV).ok());
            let route53 = Route53::from_env(endpoint.as_deref()).await;
            let route53_url = endpoint.unwrap_or_else(|| "https://route53.amazonaws.com".into());
            (url, token, route53, route53_url)
        }
    };
    let packet = token
        .map(|token| PacketClient::new(&url, project, &token, &Timeouts::default()))
        .transpose()?;
    problems.extend(
        steps::preflight::check(
            packet.as_ref().map(|p| (p, url.as_str())),
            Some((&route53, route53_url.as_str())),
            target.desired.settings.dns_zone_id.as_str(),
        )
        .await,
    );
    match packet {
        Some(packet) if problems.is_empty() => Ok((packet, route53)),
        _ => Err(setup_error(&problems).into()),
    }
}

/// The problems of the setup as one error: every one on its line with what to do.
fn setup_error(problems: &[Problem]) -> UserError {
    let list: String = problems
        .iter()
        .map(|p| format!("\n  - {}\n    ({})", p.what, p.hint))
        .collect();
    UserError {
        message: format!(
            "{} problem(s) with the setup; nothing was changed:{list}",
            problems.len()
        ),
        code: EXIT_USAGE,
        hint: Some("fix them and run the same command again".into()),
    }
}

pub(crate) async fn wire(
    target: &Target,
    sim: Option<&SimSession>,
    login: Option<Login>,
    time_scale: Option<f64>,
    take_over_dns: bool,
) -> anyhow::Result<Wiring> {
    if let Some(scale) = time_scale.filter(|s| !(s.is_finite() && *s > 0.0)) {
        return Err(UserError {
            message: format!("--time-scale {scale} is not a positive number"),
            code: EXIT_USAGE,
            hint: None,
        }
        .into());
    }
    let (agent, timings, extra_keys) = match sim {
        Some(sim) => {
            let key = SshPublicKey::parse(&sim.agent.public_line)
                .map_err(|e| anyhow::anyhow!("the demo key: {e}"))?;
            (
                Some(sim.agent.socket.clone()),
                scaled_timings(sim.time_scale, SIM_SSH_PORT),
                vec![key],
            )
        }
        None => {
            let mut settings = match time_scale {
                Some(scale) => scaled_timings(scale, 22),
                None => RunSettings::default(),
            };
            if let Some(login) = &login {
                settings.ssh_port = login.port;
                settings.ssh_user = login.user.clone();
            }
            (None, settings, Vec::new())
        }
    };
    // Before anything is created: a run that cannot log into its nodes must not start.
    let mut problems = Vec::new();
    if login.is_some()
        && let Err(problem) = check_agent(agent.as_deref(), &target.desired, &extra_keys)
    {
        problems.push(problem);
    }
    let (packet, route53) = connect(target, sim.map(|s| &s.handle), problems).await?;
    let packet = Arc::new(packet);
    let poller = Arc::new(DevicePoller::spawn(
        Arc::clone(&packet),
        cluster_tag(target.desired.settings.cluster_name.as_str()),
        timings.device.poll_interval,
    ));
    let ssh = Ssh {
        agent,
        ..Ssh::default()
    };
    Ok(Wiring {
        clients: Clients {
            packet,
            poller,
            route53,
            ssh,
        },
        timings: RunSettings {
            take_over_dns,
            extra_authorized_keys: extra_keys,
            ..timings
        },
    })
}

/// The simulator runs `scale` real seconds per simulated one; waits shrink alike, with floors
/// that keep a busy machine from spinning.
pub(crate) fn scaled_timings(scale: f64, ssh_port: u16) -> RunSettings {
    let scaled = |d: Duration, floor_ms: u64| {
        Duration::from_secs_f64(d.as_secs_f64() * scale).max(Duration::from_millis(floor_ms))
    };
    let base = RunSettings::default();
    let mut device = base.device.clone();
    device.poll_interval = scaled(device.poll_interval, 50);
    device.provision_deadline = scaled(device.provision_deadline, 5_000);
    RunSettings {
        device,
        dns_poll: scaled(base.dns_poll, 50),
        dns_deadline: scaled(base.dns_deadline, 30_000),
        ssh_port,
        ready_poll: scaled(base.ready_poll, 100),
        ready_deadline: scaled(base.ready_deadline, 60_000),
        ..base
    }
}

/// Before any device exists: one of the agent's keys must be in the spec's `ssh_keys`, or no
/// SSH step could ever log in (a failure the tutorial's users met only after 10 minutes).
fn check_agent(
    socket: Option<&Path>,
    desired: &DesiredCluster,
    extra: &[SshPublicKey],
) -> Result<(), Problem> {
    let agent_keys = steps::ssh::agent_keys(socket).map_err(|reason| Problem {
        what: format!("no usable ssh-agent: {reason}"),
        hint: match socket {
            Some(socket) => format!(
                "the demo's own agent at {} does not answer; run the command again",
                socket.display()
            ),
            None => "start one and load the key whose public half is in ssh_keys: eval $(ssh-agent) && ssh-add ~/.ssh/id_ed25519".into(),
        },
    })?;
    let wanted: Vec<Vec<u8>> = desired
        .settings
        .ssh_keys
        .iter()
        .chain(extra)
        .filter_map(|k| steps::ssh::public_key_blob(k.as_str()))
        .collect();
    if agent_keys.iter().any(|k| wanted.contains(k)) {
        return Ok(());
    }
    Err(Problem {
        what: format!(
            "none of the ssh-agent's {} key(s) is in the spec's ssh_keys, so loko could not log into the nodes",
            agent_keys.len()
        ),
        hint: "ssh-add the private key of one of ssh_keys (ssh-add -L lists what the agent holds)"
            .into(),
    })
}

/// The DAG of `loko run` for the target, from the journal's history.
pub(crate) fn apply_plan(
    target: &Target,
    history: &History,
    assets: &AssetDir,
    wiring: &Wiring,
) -> anyhow::Result<engine::Plan> {
    Ok(cluster::apply_plan(
        &target.desired,
        history,
        assets,
        &wiring.clients,
        &wiring.timings,
    )?)
}

pub(crate) fn request(kind: RunKind, desired: &DesiredCluster) -> anyhow::Result<RunRequest> {
    Ok(RunRequest {
        kind,
        spec_digest: Digest::of_json(desired)?,
        spec: serde_json::to_value(desired)?,
    })
}

pub(crate) fn engine(journal: Arc<Journal>, observer: Arc<dyn engine::Observer>) -> Engine {
    Engine::new(journal)
        .limit(cluster::PACKET_API, 16)
        .limit(cluster::DNS, 4)
        .limit(cluster::SSH, 8)
        .limit(engine::ResourceClass::LOCAL, 4)
        .observer(observer)
}

/// Ctrl-C or SIGTERM cancels the run: no new step starts, and the steps in flight stop at their
/// next safe point and record their outcome (the run ends `interrupted`, resumable). A second
/// signal stops at once: the journal already holds everything done, so that too resumes.
fn cancel_on_interrupt(printer: Arc<Printer>) -> anyhow::Result<CancellationToken> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt =
        signal(SignalKind::interrupt()).context("cannot listen for Ctrl-C (SIGINT)")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let cancel = CancellationToken::new();
    let token = cancel.clone();
    tokio::spawn(async move {
        let name = tokio::select! {
            Some(()) = interrupt.recv() => "interrupted (Ctrl-C)",
            Some(()) = terminate.recv() => "terminated (SIGTERM)",
            else => return,
        };
        let in_flight = printer.in_flight();
        let shown: Vec<&str> = in_flight.iter().take(5).map(String::as_str).collect();
        let more = match in_flight.len().saturating_sub(shown.len()) {
            0 => String::new(),
            n => format!(" and {n} more"),
        };
        let waiting = match in_flight.len() {
            0 => String::new(),
            n => format!(
                "; waiting for the {n} step(s) in flight to stop and record where they are ({}{more})",
                shown.join(", ")
            ),
        };
        crate::progress::suspended(|| {
            eprintln!(
                "{name}: no new step starts{waiting}. A second Ctrl-C stops at once; either way, \
                 run the same command again to resume"
            )
        });
        token.cancel();
        tokio::select! {
            Some(()) = interrupt.recv() => {}
            Some(()) = terminate.recv() => {}
            else => return,
        }
        crate::progress::suspended(|| {
            eprintln!(
                "stopped at once; the journal holds every step done: run the same command again to resume"
            )
        });
        std::process::exit(i32::from(EXIT_INTERRUPTED));
    });
    Ok(cancel)
}

fn outcome_code(outcome: &Outcome, what: &str) -> anyhow::Result<ExitCode> {
    match outcome {
        Outcome::UpToDate | Outcome::Succeeded => Ok(ExitCode::SUCCESS),
        Outcome::Interrupted => {
            eprintln!("{what} interrupted; run the same command again to resume");
            Ok(ExitCode::from(EXIT_INTERRUPTED))
        }
        Outcome::Failed { failed, skipped } => {
            for (step, error) in failed {
                eprintln!("failed: {step}: {}", journal::redact(error));
            }
            if !skipped.is_empty() {
                eprintln!("skipped {} step(s) that depend on them", skipped.len());
            }
            Err(UserError {
                message: format!("{what} failed: {} step(s) failed", failed.len()),
                code: EXIT_FAILED,
                hint: Some(
                    "fix the cause and run the same command again: finished steps are not repeated (loko journal shows every attempt)"
                        .into(),
                ),
            }
            .into())
        }
    }
}

pub async fn run(global: &Global, args: &RunArgs) -> anyhow::Result<ExitCode> {
    let target = target(global, &args.spec)?;
    let journal = open_journal(&target.journal)?;
    let history = history(&journal)?;
    // Refused changes stop here, before any API is called.
    let changes = changes(&target.desired, &history)?;
    crate::guard::new_devices(changes.devices_to_create(), args.max_new_devices, args.yes)?;
    let sim = match args.sim.sim {
        true => Some(SimSession::start(&target, &args.sim).await?),
        false => None,
    };
    let login = Some(Login {
        port: args.ssh_port,
        user: args.ssh_user.clone(),
    });
    let wiring = wire(
        &target,
        sim.as_ref(),
        login,
        args.sim.time_scale,
        args.take_over_dns,
    )
    .await?;
    if !args.json {
        outln!("{changes}");
    }
    let assets = AssetDir::create(&target.assets).map_err(|e| UserError {
        message: format!("asset_dir: {e}"),
        code: EXIT_USAGE,
        hint: Some("asset_dir must be a writable directory; it holds the cluster's keys".into()),
    })?;
    let plan = apply_plan(&target, &history, &assets, &wiring)?;
    let printer = Arc::new(Printer::new(args.json, &plan.step_ids()));
    let report = engine(Arc::clone(&journal), Arc::clone(&printer) as _)
        .run(
            &plan,
            request(RunKind::Apply, &target.desired)?,
            cancel_on_interrupt(Arc::clone(&printer))?,
        )
        .await;
    printer.finish();
    let report = report?;
    printer.ended(report.run, &report.outcome);
    if let Some(sim) = sim {
        sim.handle.shutdown().await?;
    }
    if !args.json && matches!(report.outcome, Outcome::Succeeded | Outcome::UpToDate) {
        print_nodes(&journal, &target.desired);
    }
    if report.outcome == Outcome::UpToDate && !args.json {
        outln!("Nothing to do: the cluster matches the spec.");
    }
    let code = outcome_code(&report.outcome, "the run")?;
    if !args.json && report.outcome != Outcome::Interrupted {
        let settings = &target.desired.settings;
        let spec = args.spec.display();
        if args.sim.sim {
            // The demo's apiserver lived in this process: a KUBECONFIG would point at nothing.
            outln!(
                "\nCluster {} is ready, in the simulator that ran inside this command; it stopped \
                 with it, and its cloud is kept in {} for the next --sim command.\n\
                 Next: loko status {spec} --sim · loko journal {spec} · loko destroy {spec} --sim --yes",
                settings.cluster_name,
                target.state_dir.join("sim").display()
            );
        } else {
            outln!(
                "\nCluster {} is ready: https://{}.{}:6443\nexport KUBECONFIG={}",
                settings.cluster_name,
                settings.cluster_name,
                settings.dns_zone,
                target.assets.join("auth/kubeconfig").display()
            );
        }
    }
    Ok(code)
}

/// The nodes as the journal recorded them: what a user looks for after a run.
fn print_nodes(journal: &Journal, desired: &DesiredCluster) {
    let ledger = journal.with_state(|state| state.ledger.clone());
    outln!(
        "\n{:<34} {:<10} {:<37} {:<15} PRIVATE IPV4",
        "NODE",
        "ROLE",
        "DEVICE",
        "PUBLIC IPV4"
    );
    for node in &desired.nodes {
        let outputs = ledger.get(&cluster::ids::device(&node.hostname));
        let field = |key: &str| {
            outputs
                .and_then(|r| r.outputs.get::<String>(key).ok())
                .unwrap_or_else(|| "-".into())
        };
        let role = match node.role {
            specs::Role::Controller => "controller",
            specs::Role::Worker => "worker",
        };
        outln!(
            "{:<34} {:<10} {:<37} {:<15} {}",
            node.hostname,
            role,
            field("device_id"),
            field("public_ipv4"),
            field("private_ipv4")
        );
    }
}

pub async fn plan(global: &Global, args: &PlanArgs) -> anyhow::Result<ExitCode> {
    let target = target(global, &args.spec)?;
    // Reading the journal needs its lock: a plan during a run would show a moving target.
    let journal = open_journal(&target.journal)?;
    let history = history(&journal)?;
    let changes = changes(&target.desired, &history)?;
    if args.json {
        let mut json = serde_json::to_value(&changes)?;
        json["devices_to_create"] = changes.devices_to_create().into();
        outln!("{json}");
    } else {
        outln!("{changes}");
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn destroy(global: &Global, args: &DestroyArgs) -> anyhow::Result<ExitCode> {
    let target = target(global, &args.spec)?;
    let journal = open_journal(&target.journal)?;
    let history = history(&journal)?;
    if !args.yes
        && !confirm(
            &target.desired,
            &doomed(&journal, &target.desired, &history),
        )?
    {
        eprintln!("destroy cancelled");
        return Ok(ExitCode::from(EXIT_USAGE));
    }
    let sim = match args.sim.sim {
        true => Some(SimSession::start(&target, &args.sim).await?),
        false => None,
    };
    // Destroying logs into no node: no agent needed.
    let wiring = wire(&target, sim.as_ref(), None, args.sim.time_scale, false).await?;
    let plan = cluster::destroy_plan(&target.desired, &history, &wiring.clients, &wiring.timings)?;
    let printer = Arc::new(Printer::new(args.json, &plan.step_ids()));
    let report = engine(journal, Arc::clone(&printer) as _)
        .run(
            &plan,
            request(RunKind::Destroy, &target.desired)?,
            cancel_on_interrupt(Arc::clone(&printer))?,
        )
        .await;
    printer.finish();
    let report = report?;
    printer.ended(report.run, &report.outcome);
    if let Some(sim) = sim {
        sim.handle.shutdown().await?;
    }
    let code = outcome_code(&report.outcome, "destroy")?;
    if !args.json && report.outcome != Outcome::Interrupted {
        outln!(
            "Cluster {} destroyed: its devices and DNS records are gone; {} keeps its CA and keys.",
            target.desired.settings.cluster_name,
            target.assets.display()
        );
    }
    Ok(code)
}

/// What `loko destroy` deletes, as the journal knows it: one line per device and record.
fn doomed(journal: &Journal, desired: &DesiredCluster, history: &History) -> Vec<String> {
    let ledger = journal.with_state(|state| state.ledger.clone());
    let mut lines: Vec<String> = history
        .known_nodes
        .iter()
        .map(|host| {
            let device = ledger
                .get(&cluster::ids::device(host))
                .and_then(|r| r.outputs.get::<String>("device_id").ok());
            match device {
                Some(id) => format!("device {id} ({host})"),
                None => format!("the device of {host}, if it was created"),
            }
        })
        .collect();
    let name = desired.settings.cluster_name.as_str();
    lines.push(format!(
        "any other device tagged loko:cluster={name} in project {}",
        desired.settings.project_id
    ));
    lines.extend(
        desired
            .dns_records
            .iter()
            .map(|r| format!("DNS record {} (zone {})", r.name, r.zone_id)),
    );
    lines
}

/// Lists what will be deleted and asks on a terminal; refuses without one (use `--yes`).
fn confirm(desired: &DesiredCluster, doomed: &[String]) -> anyhow::Result<bool> {
    use std::io::{BufRead as _, IsTerminal as _, Write as _};
    let name = desired.settings.cluster_name.as_str();
    let list: String = doomed.iter().map(|l| format!("\n  - {l}")).collect();
    if !std::io::stdin().is_terminal() {
        return Err(UserError {
            message: format!("destroy of cluster {name} needs confirmation; it deletes:{list}"),
            code: EXIT_USAGE,
            hint: Some("pass --yes when not on a terminal".into()),
        }
        .into());
    }
    outln!("Destroy cluster {name}? This deletes:{list}");
    out!("The asset directory (CA, keys) is kept. Type the cluster name to confirm: ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(answer.trim() == name)
}

pub async fn graph(global: &Global, args: &GraphArgs) -> anyhow::Result<ExitCode> {
    let target = target(global, &args.spec)?;
    let journal = open_journal(&target.journal)?;
    let history = history(&journal)?;
    changes(&target.desired, &history)?;
    // The plan's actions hold clients; these point nowhere and are never called.
    let inert = "http://127.0.0.1:9";
    let packet = Arc::new(PacketClient::new(
        inert,
        target.desired.settings.project_id.as_str(),
        &Token::new("inert"),
        &Timeouts::default(),
    )?);
    let clients = Clients {
        poller: Arc::new(DevicePoller::spawn(
            Arc::clone(&packet),
            String::new(),
            Duration::from_secs(3600),
        )),
        packet,
        route53: Route53::with_static_credentials(inert, "inert", "inert").await,
        ssh: Ssh::default(),
    };
    let assets = AssetDir::create(&target.assets)?;
    let plan = cluster::apply_plan(
        &target.desired,
        &history,
        &assets,
        &clients,
        &RunSettings::default(),
    )?;
    out!("{}", plan.to_dot());
    Ok(ExitCode::SUCCESS)
}

pub async fn status(global: &Global, args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let target = target(global, &args.spec)?;
    // A read-only command: it never starts the demo's agent or nodes, nor writes its state.
    let sim = match args.sim.sim {
        true => Some(SimView::start(&target, &args.sim).await?),
        false => None,
    };
    let (packet, route53) = connect(&target, sim.as_ref().map(|s| &s.handle), Vec::new()).await?;
    let settings = &target.desired.settings;
    let devices = packet
        .list_devices(&cluster_tag(settings.cluster_name.as_str()))
        .await
        .context("cannot list the cluster's devices")?;
    let mut differences = Vec::new();
    let mut nodes = Vec::new();
    for node in &target.desired.nodes {
        let tag = steps::packet::node_tag(&node.hostname);
        let mine: Vec<_> = devices.iter().filter(|d| d.has_tag(&tag)).collect();
        match mine.as_slice() {
            [] => {
                nodes.push(
                    serde_json::json!({"node": node.hostname, "device": null, "state": "missing"}),
                );
                differences.push(format!("{} has no device", node.hostname));
            }
            [device, rest @ ..] => {
                nodes.push(serde_json::json!({
                    "node": node.hostname,
                    "device": device.id,
                    "state": device.state.to_string(),
                    "public_ipv4": device.public_ipv4().map(|ip| ip.to_string()),
                    "private_ipv4": device.private_ipv4().map(|ip| ip.to_string()),
                }));
                if !rest.is_empty() {
                    differences.push(format!("{} has {} devices", node.hostname, mine.len()));
                }
                if device.plan_slug().is_some_and(|p| p != node.plan.as_str()) {
                    differences.push(format!(
                        "{} is a {} (the spec says {})",
                        node.hostname,
                        device.plan_slug().unwrap_or_default(),
                        node.plan
                    ));
                }
                if device.state.to_string() != "active" {
                    differences.push(format!("{} is {}, not active", node.hostname, device.state));
                }
            }
        }
    }
    for device in &devices {
        if !target
            .desired
            .nodes
            .iter()
            .any(|n| device.has_tag(&steps::packet::node_tag(&n.hostname)))
        {
            differences.push(format!(
                "device {} ({}) is tagged with the cluster but no node of the spec",
                device.id, device.hostname
            ));
        }
    }
    let mut records = Vec::new();
    for record in &target.desired.dns_records {
        let current = route53
            .a_record(record.zone_id.as_str(), &record.name)
            .await
            .with_context(|| format!("cannot read record {}", record.name))?;
        let values: Option<Vec<String>> =
            current.map(|r| r.values.iter().map(|v| v.to_string()).collect());
        if values.is_none() {
            differences.push(format!("record {} is missing", record.name));
        }
        records.push(serde_json::json!({"name": record.name, "values": values}));
    }
    if let Some(sim) = sim {
        sim.handle.shutdown().await?;
    }
    if args.json {
        outln!(
            "{}",
            serde_json::json!({
                "cluster": settings.cluster_name.as_str(),
                "matches": differences.is_empty(),
                "nodes": nodes,
                "records": records,
                "differences": differences,
            })
        );
    } else {
        print_status(&nodes, &records, &differences);
    }
    Ok(if differences.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_DIFFERS)
    })
}

/// The tables of `loko status`.
fn print_status(
    nodes: &[serde_json::Value],
    records: &[serde_json::Value],
    differences: &[String],
) {
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_owned();
    outln!(
        "{:<41} {:<37} {:<13} {:<16} PRIVATE IPV4",
        "NODE",
        "DEVICE",
        "STATE",
        "PUBLIC IPV4"
    );
    for n in nodes {
        outln!(
            "{:<41} {:<37} {:<13} {:<16} {}",
            text(&n["node"]),
            text(&n["device"]),
            text(&n["state"]),
            text(&n["public_ipv4"]),
            text(&n["private_ipv4"])
        );
    }
    outln!("\n{:<51} VALUES", "RECORD");
    for r in records {
        let values = match r["values"].as_array() {
            Some(values) => values.iter().map(text).collect::<Vec<_>>().join(", "),
            None => "missing".to_owned(),
        };
        outln!("{:<51} {values}", text(&r["name"]));
    }
    if differences.is_empty() {
        outln!("\nThe cluster matches the spec.");
    } else {
        outln!("\nDifferences from the spec:");
        for d in differences {
            outln!("  {d}");
        }
    }
}
