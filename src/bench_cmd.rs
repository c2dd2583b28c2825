//! `loko bench`: every kind of run (create, change a pool's type, scale down, scale up,
//! destroy) on clusters of 3 controllers and 1 to 5000 workers against the in-process
//! simulator. Each run is a child process of its own (so that its peak RSS is loko's), measured
//! against its own lower bound: the simulated critical path, including what Packet's rate limit
//! forces, and beside what Terraform's parallelism of 10 would take on the same simulated times.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use engine::{CancellationToken, Outcome};
use journal::RunKind;
use serde::{Deserialize, Serialize};
use steps::assets::AssetDir;
use steps::cluster;

use crate::bench_timeline::Milestones;
use crate::cli::{BenchArgs, Global, Scenario};
use crate::demo_agent::DemoAgent;
use crate::journal_location::open_journal;
use crate::output::outln;
use crate::sim_session::{SIM_SSH_PORT, embedded_sim_config};
use crate::target::{changes, history, target};
use crate::wiring::{Login, WireConfig, actions, engine, request, wire};

/// A pool holds at most this many of the bench's workers: 5000 workers are 5 pools.
const POOL_SIZE: usize = 1000;

/// Devices besides the N workers: 3 controllers, and one worker in a pool that never changes
/// (a spec needs a worker, and scaling down takes the N to 0).
const FIXED: u64 = 4;

/// Packet lists at most this many devices a page.
const PAGE: u64 = 1000;

/// What the simulator's clock and Packet's rate limit allow at best: the scenarios' lower
/// bounds, in simulated seconds.
struct Model {
    t: sim::Timings,
    /// Requests a window; `None` when the limit is lifted.
    per_window: Option<u64>,
    window_s: f64,
}

/// A lower bound and what it is made of, in simulated seconds.
#[derive(Debug, Serialize, Deserialize)]
struct Bound {
    total_s: f64,
    /// The binding path, term by term.
    parts: String,
}

fn secs(d: std::time::Duration) -> f64 {
    d.as_secs_f64()
}

impl Model {
    fn new(api_rate_limit: u32) -> Model {
        Model {
            t: sim::Timings::default(),
            per_window: (api_rate_limit > 0).then_some(u64::from(api_rate_limit)),
            window_s: secs(sim::RateLimit::default().window),
        }
    }

    /// The earliest simulated time the `k`-th request of a run (from 1) can be sent: windows
    /// open one after another from the run's first request.
    fn slot(&self, k: u64) -> f64 {
        match self.per_window {
            Some(per) => (k.saturating_sub(1) / per) as f64 * self.window_s,
            None => 0.0,
        }
    }

    /// List calls one look at `devices` devices takes (an empty list is one call too).
    fn pages(devices: u64) -> u64 {
        devices.div_ceil(PAGE).max(1)
    }

    /// The bound of `scenario` on a cluster of `workers` changing workers. Every
    /// change first lists the cluster's devices once (the lookups that reconcile), then sends
    /// its creates or deletes; the critical path waits for the last of them.
    fn bound(&self, scenario: Scenario, workers: u64) -> Bound {
        let (qp, deprov, dns) = (
            secs(self.t.queued + self.t.provisioning),
            secs(self.t.deprovisioning),
            secs(self.t.dns_propagation),
        );
        let all = workers + FIXED;
        match scenario {
            Scenario::Create => {
                let ctrl = self.slot(1 + 3) + qp + dns;
                let last = self.slot(1 + all);
                let total = ctrl.max(last + qp);
                Bound {
                    total_s: total,
                    parts: format!(
                        "max(controllers {:.0}+{qp:.0}+dns {dns:.0}, last create {last:.0}+{qp:.0})",
                        self.slot(4)
                    ),
                }
            }
            Scenario::ScaleUp => {
                let last = self.slot(Self::pages(FIXED) + workers);
                Bound {
                    total_s: last + qp,
                    parts: format!("last create {last:.0}+{qp:.0}"),
                }
            }
            Scenario::ScaleDown => {
                let last = self.slot(Self::pages(all) + workers);
                Bound {
                    total_s: last + deprov,
                    parts: format!("last delete {last:.0}+{deprov:.0}"),
                }
            }
            Scenario::ChangeType => {
                // A device is created again once its old one is gone, seen by one more listing.
                let pages = Self::pages(all);
                let last = self
                    .slot(2 * pages + 2 * workers)
                    .max(self.slot(pages + 1) + deprov);
                Bound {
                    total_s: last + qp,
                    parts: format!(
                        "last create {last:.0} (after delete+{deprov:.0}, {} requests)+{qp:.0}",
                        2 * pages + 2 * workers
                    ),
                }
            }
            Scenario::Destroy => {
                let last = self.slot(Self::pages(all) + all);
                let total = (last + deprov).max(dns);
                Bound {
                    total_s: total,
                    parts: format!("max(last delete {last:.0}+{deprov:.0}, dns {dns:.0})"),
                }
            }
        }
    }

    /// Terraform applies at most 10 resources at once: devices go in waves of 10.
    fn terraform(&self, scenario: Scenario, workers: u64) -> f64 {
        let (qp, deprov, dns) = (
            secs(self.t.queued + self.t.provisioning),
            secs(self.t.deprovisioning),
            secs(self.t.dns_propagation),
        );
        let waves = |n: u64| n.div_ceil(10) as f64;
        match scenario {
            Scenario::Create => waves(workers + FIXED) * qp + dns,
            Scenario::ScaleUp => waves(workers) * qp,
            Scenario::ScaleDown => waves(workers) * deprov,
            Scenario::ChangeType => waves(workers) * (deprov + qp),
            Scenario::Destroy => waves(workers + FIXED) * deprov,
        }
    }
}

/// What the child measures of its own run: loko alone, the simulator lives in the parent.
#[derive(Debug, Serialize, Deserialize)]
struct RunFigures {
    makespan_s: f64,
    plan_ms: f64,
    dag_ms: f64,
    journal_events: usize,
    peak_rss_mb: f64,
    phases_s: BTreeMap<String, f64>,
    /// Polls of the shared device poller (each one list call per page).
    polls: u64,
}

/// The figures of one scenario at one size; one JSON line each.
#[derive(Debug, Serialize)]
struct Figures {
    scenario: Scenario,
    workers: usize,
    time_scale: f64,
    /// Real seconds from the first step to the last.
    makespan_s: f64,
    /// Real seconds of the scenario's lower bound.
    lower_bound_s: f64,
    bound: Bound,
    ratio: f64,
    /// The makespan and Terraform's estimate in simulated seconds: what Packet would take.
    makespan_sim_s: f64,
    terraform_sim_s: f64,
    /// `loko plan` (spec, journal, change classification) and building the DAG.
    plan_ms: f64,
    dag_ms: f64,
    packet_calls: BTreeMap<String, u64>,
    /// Device list calls per poll of the shared poller, per page of 1000 devices: 1 is one
    /// cluster-wide listing per poll, whatever the number of waiters; above 1, something
    /// listed besides the poller.
    lists_per_poll_per_page: f64,
    rate_limited: u64,
    /// CPU seconds the simulator (this process) spent during the run: what booting and serving
    /// the machines cost the two cores loko shares.
    sim_cpu_s: f64,
    journal_events: usize,
    /// loko's peak resident set (the simulator runs in another process).
    peak_rss_mb: f64,
    /// When the last step of each kind succeeded, in real seconds since the run began.
    phases_s: BTreeMap<String, f64>,
}

pub async fn bench(args: &BenchArgs, redactor: &journal::Redactor) -> anyhow::Result<ExitCode> {
    if !(args.time_scale.is_finite() && args.time_scale > 0.0) {
        anyhow::bail!("--time-scale {} is not a positive number", args.time_scale);
    }
    if let Some(spec) = &args.spec {
        let login = Login {
            port: args.ssh_port,
            user: args.ssh_user.clone(),
        };
        let figures = run_once(
            spec,
            args.time_scale,
            login,
            args.destroy,
            args.journal.clone(),
            redactor,
        )
        .await?;
        outln!("{}", serde_json::to_string(&figures)?);
        return Ok(ExitCode::SUCCESS);
    }
    let model = Model::new(args.api_rate_limit);
    outln!(
        "loko bench: 3 controllers, 1 worker and N workers against the simulator, time scale {}, Packet API \
         limit {}",
        args.time_scale,
        match args.api_rate_limit {
            0 => "lifted".to_owned(),
            n => format!("{n} requests a minute"),
        }
    );
    outln!(
        "\n{:<12} {:>7} {:>10} {:>10} {:>6} {:>9} {:>10} {:>7} {:>10} {:>5} {:>7} {:>8} {:>8}  bound (simulated s)",
        "scenario",
        "workers",
        "makespan",
        "bound",
        "ratio",
        "sim time",
        "terraform",
        "plan",
        "lists/poll",
        "429s",
        "events",
        "peak RSS",
        "sim CPU",
    );
    let mut all = Vec::new();
    for &workers in &args.workers {
        for f in size(workers, args, &model).await? {
            outln!(
                "{:<12} {:>7} {:>9.2}s {:>9.2}s {:>6.3} {:>8.0}s {:>9.0}s {:>5.0}ms {:>10.2} {:>5} {:>7} {:>6.0}MB {:>7.1}s  {}",
                scenario_name(f.scenario),
                f.workers,
                f.makespan_s,
                f.lower_bound_s,
                f.ratio,
                f.makespan_sim_s,
                f.terraform_sim_s,
                f.plan_ms,
                f.lists_per_poll_per_page,
                f.rate_limited,
                f.journal_events,
                f.peak_rss_mb,
                f.sim_cpu_s,
                f.bound.parts,
            );
            let _ = std::io::stdout().flush();
            all.push(f);
        }
    }
    outln!(
        "\nsim time: the makespan in simulated seconds (what it would take on Packet); terraform: \
         the same changes in waves of 10 (Terraform's default parallelism); lists/poll: device \
         list calls per poll of the shared poller per page of 1000 devices (1 = one cluster-wide \
         listing per poll, nothing else lists); sim CPU: CPU time of the simulator (this process) during the run; bound: the \
         scenario's critical path, where `last create` is when Packet's rate \
         limit lets the last create out at the earliest.\n"
    );
    for f in &all {
        outln!("{}", serde_json::to_string(f)?);
    }
    if let Some(path) = &args.plot {
        let points: Vec<crate::bench_plot::Point> = all
            .iter()
            .map(|f| crate::bench_plot::Point {
                scenario: scenario_name(f.scenario),
                workers: f.workers,
                ratio: f.ratio,
                makespan_sim_s: f.makespan_sim_s,
                terraform_sim_s: f.terraform_sim_s,
            })
            .collect();
        let svg = crate::bench_plot::svg(&points, args.time_scale);
        std::fs::write(path, svg).with_context(|| format!("cannot write {}", path.display()))?;
        outln!("\nplot: {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn scenario_name(s: Scenario) -> &'static str {
    match s {
        Scenario::Create => "create",
        Scenario::ChangeType => "change-type",
        Scenario::ScaleDown => "scale-down",
        Scenario::ScaleUp => "scale-up",
        Scenario::Destroy => "destroy",
    }
}

/// The chain of runs on one cluster, in order, with the spec each applies: (scenario, pools'
/// counts, pools' type).
const CHAIN: [(Scenario, bool, &str); 5] = [
    (Scenario::Create, true, "t1.small.x86"),
    (Scenario::ChangeType, true, "c3.small.x86"),
    (Scenario::ScaleDown, false, "c3.small.x86"),
    (Scenario::ScaleUp, true, "c3.small.x86"),
    (Scenario::Destroy, true, "c3.small.x86"),
];

/// One size: a fresh simulator here (no state file: nothing survives, nothing is rewritten
/// per request), each run of the chain up to the last selected scenario in a child process.
async fn size(workers: usize, args: &BenchArgs, model: &Model) -> anyhow::Result<Vec<Figures>> {
    let Some(last) = args.scenarios.iter().max().copied() else {
        return Ok(Vec::new());
    };
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let (mut config, ssh_user) = embedded_sim_config(
        &dir.path().join("nodes"),
        args.time_scale,
        Some(PROJECT),
        "packet.example.com",
        "ZBENCH",
        // loko logs into controllers only; thousands of workers' SSH servers would only cost
        // the cores loko shares.
        false,
    )?;
    config.private_block = Some(sim::PrivateBlock::new(
        PRIVATE_NETWORK.0,
        PRIVATE_NETWORK.1,
    )?);
    config.rate_limit.requests = match args.api_rate_limit {
        0 => u32::MAX,
        n => n,
    };
    let sim = sim::start(config).await?;
    let agent = DemoAgent::start(dir.path())?;
    let spec = dir.path().join("bench.yaml");
    let exe = std::env::current_exe().context("cannot find the loko binary to run")?;

    let mut figures = Vec::new();
    for (scenario, full, plan) in CHAIN.into_iter().filter(|(s, ..)| *s <= last) {
        write_spec(&spec, workers, full, plan, &agent.public_line, &sim)?;
        let before = sim.state();
        let cpu_before = process_cpu_s();
        sim.restart_rate_window();
        let mut command = tokio::process::Command::new(&exe);
        command
            .arg("bench")
            .arg("--spec")
            .arg(&spec)
            .args(["--time-scale", &args.time_scale.to_string()])
            .args(["--ssh-port", &SIM_SSH_PORT.to_string()])
            .args(["--ssh-user", &ssh_user])
            .env("PACKET_AUTH_TOKEN", sim.token())
            .env("SSH_AUTH_SOCK", &agent.socket)
            .env("AWS_ACCESS_KEY_ID", "loko-bench")
            .env("AWS_SECRET_ACCESS_KEY", "loko-bench")
            .env_remove("METAL_AUTH_TOKEN");
        if scenario == Scenario::Destroy {
            command.arg("--destroy");
        }
        if let Some(url) = &args.journal {
            // A journal per cluster, as each cluster's state directory is its own.
            let url = url.trim_end_matches('/');
            command.args([
                "--journal",
                &format!("{url}/bench-{}-{workers}", std::process::id()),
            ]);
        }
        let out = command
            .output()
            .await
            .context("cannot run the benchmark's loko")?;
        let text = String::from_utf8_lossy(&out.stdout);
        let name = scenario_name(scenario);
        if !out.status.success() {
            anyhow::bail!(
                "the {name} run of {workers} workers failed ({}): {text}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let line = text.lines().last().unwrap_or_default();
        let run: RunFigures = serde_json::from_str(line)
            .with_context(|| format!("the {name} run of {workers} workers printed {line:?}"))?;
        if !args.scenarios.contains(&scenario) {
            continue;
        }
        let sim_cpu_s = process_cpu_s() - cpu_before;
        let after = sim.state();
        let packet_calls: BTreeMap<String, u64> = after
            .requests
            .iter()
            .filter(|(op, _)| op.starts_with("packet."))
            .map(|(op, n)| {
                (
                    op.clone(),
                    n - before.requests.get(op).copied().unwrap_or(0),
                )
            })
            .filter(|(_, n)| *n > 0)
            .collect();
        let lists = packet_calls
            .get("packet.devices.list")
            .copied()
            .unwrap_or(0);
        let n = workers as u64;
        let listed = Model::pages(n + FIXED) as f64;
        let polls = run.polls.max(1) as f64;
        let bound = model.bound(scenario, n);
        let lower_bound_s = bound.total_s * args.time_scale;
        figures.push(Figures {
            scenario,
            workers,
            time_scale: args.time_scale,
            makespan_s: run.makespan_s,
            lower_bound_s,
            ratio: run.makespan_s / lower_bound_s,
            bound,
            makespan_sim_s: run.makespan_s / args.time_scale,
            terraform_sim_s: model.terraform(scenario, n),
            plan_ms: run.plan_ms,
            dag_ms: run.dag_ms,
            packet_calls,
            lists_per_poll_per_page: lists as f64 / polls / listed,
            rate_limited: after.rate_limited_responses - before.rate_limited_responses,
            sim_cpu_s,
            journal_events: run.journal_events,
            peak_rss_mb: run.peak_rss_mb,
            phases_s: run.phases_s,
        });
    }
    sim.shutdown().await?;
    Ok(figures)
}

/// The child: `loko run` (or `loko destroy`) of `spec` with loko's waits scaled, measured,
/// printing nothing else.
async fn run_once(
    spec: &Path,
    time_scale: f64,
    login: Login,
    destroy: bool,
    journal: Option<String>,
    redactor: &journal::Redactor,
) -> anyhow::Result<RunFigures> {
    let global = Global {
        journal,
        ..Global::default()
    };
    let t0 = Instant::now();
    let target = target(&global, spec)?;
    let journal = open_journal(&target.journal, redactor)?;
    let history = history(&journal)?;
    if !destroy {
        changes(&target.desired, &history)?;
    }
    let plan_ms = t0.elapsed().as_secs_f64() * 1e3;

    let config = WireConfig {
        login: (!destroy).then_some(login),
        time_scale: Some(time_scale),
        ..WireConfig::default()
    };
    let wiring = wire(&target, config, redactor).await?;
    let t1 = Instant::now();
    let (plan, kind) = match destroy {
        true => (
            cluster::destroy_dag(&target.desired, &history)?,
            RunKind::Destroy,
        ),
        false => (
            cluster::apply_dag(
                &target.desired,
                &history,
                &wiring.timings.extra_authorized_keys,
            )?,
            RunKind::Apply,
        ),
    };
    let dag_ms = t1.elapsed().as_secs_f64() * 1e3;
    let assets = AssetDir::create(&target.assets)?.redacting(redactor.clone());
    let actions = actions(&target, assets, &wiring);

    let start = Instant::now();
    let milestones = Arc::new(Milestones::new());
    let report = engine(Arc::clone(&journal), Arc::clone(&milestones) as _)
        .run(
            &plan,
            &actions,
            request(kind, &target.desired)?,
            CancellationToken::new(),
        )
        .await?;
    let makespan = start.elapsed();
    if report.outcome != Outcome::Succeeded {
        anyhow::bail!("the run ended {:?}", report.outcome);
    }
    let run = report
        .run
        .context("the run recorded nothing in the journal")?;
    Ok(RunFigures {
        makespan_s: makespan.as_secs_f64(),
        plan_ms,
        dag_ms,
        journal_events: journal.records(run)?.len(),
        peak_rss_mb: peak_rss_mb(),
        phases_s: milestones.phases(),
        polls: match &wiring.clients.machines {
            steps::run_context::Machines::Packet { poller, .. } => poller.polls(),
            steps::run_context::Machines::Rack(_) => 0,
        },
    })
}

const PROJECT: &str = "93fa1e81-0f3c-4b2e-9d8a-2c6e5f0a1b2c";
/// The private network of the bench's project, which its spec names: a /16 holds the /31s of
/// 5,000 workers and their replacements during a type change.
const PRIVATE_NETWORK: (std::net::Ipv4Addr, u8) = (std::net::Ipv4Addr::new(10, 128, 0, 0), 16);

/// The bench's cluster: a pool of one worker that stays, and `workers` in pools of at most
/// [`POOL_SIZE`], each at its full count or at 0, all of type `plan`.
fn write_spec(
    path: &Path,
    workers: usize,
    full: bool,
    plan: &str,
    key: &str,
    sim: &sim::SimHandle,
) -> anyhow::Result<()> {
    let mut pools = String::from("  - pool_name: base\n    count: 1\n    type: t1.small.x86\n");
    let mut left = workers;
    let mut i = 0;
    while left > 0 || i == 0 {
        let count = left.min(POOL_SIZE);
        let shown = if full { count } else { 0 };
        pools.push_str(&format!(
            "  - pool_name: pool{i}\n    count: {shown}\n    type: {plan}\n"
        ));
        left -= count;
        i += 1;
    }
    let text = format!(
        "cluster_name: bench
dns_zone: packet.example.com
dns_zone_id: ZBENCH
ssh_keys: [\"{key}\"]
asset_dir: ./assets
project_id: {PROJECT}
facility: ams1
controller_count: 3
controller_type: t1.small.x86
management_cidrs: [0.0.0.0/0]
node_private_cidr: {private_network}/{private_prefix}
endpoints:
  packet_api_url: {packet}
  route53_endpoint_url: {route53}
worker_pools:
{pools}",
        packet = sim.packet_url(),
        route53 = sim.route53_url(),
        private_network = PRIVATE_NETWORK.0,
        private_prefix = PRIVATE_NETWORK.1,
    );
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// CPU seconds (user and system) this process has used; 0 where /proc does not say.
fn process_cpu_s() -> f64 {
    // Fields after the command name: state is the first, utime the 12th, stime the 13th, in
    // clock ticks of 1/100 s (USER_HZ on Linux).
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
            Some((ticks(11)? + ticks(12)?) / 100.0)
        })
        .unwrap_or(0.0)
}

/// The process's peak resident set (`VmHWM`), in MB; 0 where /proc does not say.
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
