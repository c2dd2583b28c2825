//! Wiring a run: the API clients (for the simulator or what the spec and environment name, checked
//! before any step), the run's settings, the actions bound to them, and the engine.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use engine::{Engine, RunRequest};
use journal::{Digest, Journal, Redactor, RunKind};
use specs::{DesiredCluster, SshPublicKey};
use steps::assets::AssetDir;
use steps::classes;
use steps::dns::Route53;
use steps::packet::{DevicePoller, PacketClient, Timeouts, Token, cluster_tag};
use steps::preflight::Problem;
use steps::run_context::{Clients, Machines, RunContext, RunSettings};
use steps::ssh::Ssh;

use crate::failure::{EXIT_USAGE, UserError};
use crate::setup::{route53, route53_check, setup_error};
use crate::sim_session::{SIM_SSH_PORT, SimSession};
use crate::target::Target;

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
/// `time_scale` is that of a simulator started elsewhere (`--time-scale` without `--sim`). The
/// token and keys it reads are told to `redactor`.
pub(crate) async fn connect(
    target: &Target,
    sim: Option<&sim::SimHandle>,
    time_scale: Option<f64>,
    mut problems: Vec<Problem>,
    redactor: &Redactor,
) -> anyhow::Result<(PacketClient, Route53)> {
    let project = target.desired.settings.packet_project()?.as_str();
    let (route53, route53_url) = route53(target, sim, redactor).await;
    let (url, token) = match sim {
        Some(sim) => (sim.packet_url(), Some(Token::new(sim.token(), redactor))),
        None => {
            let token = match Token::from_env(redactor) {
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
            (url, token)
        }
    };
    let scale = sim.map_or(time_scale, |s| Some(s.time_scale()));
    let packet = token
        .map(|token| {
            PacketClient::new(&url, project, &token, &Timeouts::default())
                .map(|client| client.server_time_scale(scale.unwrap_or(1.0)))
        })
        .transpose()?;
    problems.extend(
        steps::preflight::check(
            packet.as_ref().map(|p| (p, url.as_str())),
            route53_check(target, &route53, &route53_url),
        )
        .await,
    );
    match packet {
        Some(packet) if problems.is_empty() => Ok((packet, route53)),
        _ => Err(setup_error(&problems).into()),
    }
}

/// What a command asks of [`wire`] besides its target.
#[derive(Default)]
pub(crate) struct WireConfig<'a> {
    /// The demo's simulator and agent (`--sim`); none for the cloud the spec names.
    pub(crate) sim: Option<&'a SimSession>,
    /// How to log into the nodes; none for a command that logs into no node (`destroy`),
    /// which then needs no agent.
    pub(crate) login: Option<Login>,
    /// `--time-scale`: waits shrink alike (under `--sim`, the simulator's own scale counts).
    pub(crate) time_scale: Option<f64>,
    /// `--take-over-dns`: overwrite records that hold values loko did not set.
    pub(crate) take_over_dns: bool,
}

/// The clients and settings of a run, checked before any step: the setup's problems (the
/// agent's keys, the token, the project, the endpoints) are one usage error listing them all.
/// What the clients read (the token, the keys) is told to `redactor`, the run journal's.
pub(crate) async fn wire(
    target: &Target,
    config: WireConfig<'_>,
    redactor: &Redactor,
) -> anyhow::Result<Wiring> {
    let WireConfig {
        sim,
        login,
        time_scale,
        take_over_dns,
    } = config;
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
    let (machines, route53) = match target.boot_server {
        // A rack: its BMCs, boot server and Route53 checked instead of Packet.
        Some(_) => {
            let config = crate::rack_run::RackConfig {
                sim: sim.map(|s| &s.handle),
                rack: sim.and_then(|s| s.rack.as_ref()),
                time_scale,
                // A command that logs into no node (destroy) boots none: no boot server.
                boots: login.is_some(),
            };
            let (rack, route53) =
                crate::rack_run::prepare(target, config, problems, redactor).await?;
            (Machines::Rack(Arc::new(rack)), route53)
        }
        None => {
            let (packet, route53) = connect(
                target,
                sim.map(|s| &s.handle),
                time_scale,
                problems,
                redactor,
            )
            .await?;
            let packet = Arc::new(packet);
            let poller = Arc::new(DevicePoller::spawn(
                Arc::clone(&packet),
                cluster_tag(target.desired.settings.cluster_name.as_str()),
                timings.device.poll.clone(),
            ));
            let client = packet;
            (Machines::Packet { client, poller }, route53)
        }
    };
    let mut ssh = Ssh {
        agent,
        ..Ssh::default()
    };
    if let Some(scale) = sim.map(|s| s.time_scale).or(time_scale) {
        // A simulated node boots in scaled time too; the floor stays above the refusals a
        // busy machine sees while simulated nodes boot (the fault suite's are 3 s).
        ssh.refusal_limit =
            Duration::from_secs_f64(ssh.refusal_limit.as_secs_f64() * scale).max(REFUSAL_FLOOR);
    }
    Ok(Wiring {
        clients: Clients {
            machines,
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

/// The least time every node may refuse SSH before it is taken for a wrong port.
const REFUSAL_FLOOR: Duration = Duration::from_secs(10);

/// The simulator runs `scale` real seconds per simulated one; waits shrink alike, with floors
/// that keep a busy machine from spinning.
pub(crate) fn scaled_timings(scale: f64, ssh_port: u16) -> RunSettings {
    let scaled = |d: Duration, floor_ms: u64| {
        Duration::from_secs_f64(d.as_secs_f64() * scale).max(Duration::from_millis(floor_ms))
    };
    let base = RunSettings::default();
    let mut device = base.device.clone();
    device.poll = device.poll.scaled(scale, Duration::from_millis(50));
    device.provision_deadline = scaled(device.provision_deadline, 5_000);
    RunSettings {
        device,
        dns_poll: scaled(base.dns_poll, 50),
        dns_deadline: scaled(base.dns_deadline, 30_000),
        ssh_port,
        ready_poll: scaled(base.ready_poll, 100),
        ready_deadline: scaled(base.ready_deadline, 60_000),
        drain_timeout: scaled(base.drain_timeout, 5_000),
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

/// The actions of the provisioning DAGs, bound to the run's clients and asset directory.
pub(crate) fn actions(target: &Target, assets: AssetDir, wiring: &Wiring) -> engine::Actions {
    steps::actions::actions(RunContext {
        desired: target.desired.clone(),
        assets,
        clients: wiring.clients.clone(),
        settings: wiring.timings.clone(),
    })
}

pub(crate) fn request(kind: RunKind, desired: &DesiredCluster) -> anyhow::Result<RunRequest> {
    Ok(RunRequest {
        kind,
        spec_digest: Digest::of_json(desired)?,
        // The digest is of the desired cluster alone, so that recording its format did not
        // change the digest of a spec (an interrupted run of an earlier loko resumes).
        spec: desired.to_record()?,
    })
}

pub(crate) fn engine(journal: Arc<Journal>, observer: Arc<dyn engine::Observer>) -> Engine {
    Engine::new(journal)
        // Calls in flight, not a rate: Packet's limit is 600 requests a minute, and refused
        // ones are paced by its Retry-After. Each call of a step also journals its intent
        // (a durable append shared by the calls in flight), so at 16 a scale-down of 1000
        // sent its first 600 deletes over 1.2 s instead of at once.
        .limit(classes::PACKET_API, 64)
        .limit(classes::ROUTE53, 4)
        .limit(classes::SSH, 8)
        // Every machine has its own BMC; a slot is held while the machine installs, so the
        // limit is how many machines install at once (the boot server serves them all).
        .limit(classes::REDFISH, 32)
        .limit(engine::ResourceClass::LOCAL, 4)
        .observer(observer)
}
