//! `loko bench`: whole clusters of 3 controllers and 1 to 1000 workers against the in-process
//! simulator, each in a child process of its own (so that its peak RSS is its own), measured
//! against the simulated critical path and against what Terraform's parallelism of 10 would
//! take on the same simulated times.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context as _;
use engine::{CancellationToken, Outcome};
use journal::RunKind;
use serde::{Deserialize, Serialize};
use steps::assets::AssetDir;

use crate::cli::{BenchArgs, Global};
use crate::demo_agent::DemoAgent;
use crate::output::outln;
use crate::run_cmd::{
    Login, SIM_SSH_PORT, apply_plan, changes, embedded_sim_config, engine, history, open_journal,
    request, target, wire,
};

/// Simulated seconds on the critical path: a device queued and provisioning, then the DNS
/// change propagating (etcd and bootkube wait for the names), as the simulator's defaults.
fn critical_path_sim_secs() -> f64 {
    let t = sim::Timings::default();
    (t.queued + t.provisioning + t.dns_propagation).as_secs_f64()
}

/// Terraform applies at most 10 resources at once: the devices go in waves of 10, each a
/// provisioning long, before the rest of the critical path.
fn terraform_sim_secs(devices: usize) -> f64 {
    let t = sim::Timings::default();
    let waves = devices.div_ceil(10) as f64;
    waves * (t.queued + t.provisioning).as_secs_f64() + t.dns_propagation.as_secs_f64()
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
}

/// The figures of one cluster size; one JSON line each.
#[derive(Debug, Serialize, Deserialize)]
struct Figures {
    workers: usize,
    devices: usize,
    time_scale: f64,
    /// Real seconds from the first step to the cluster Ready.
    makespan_s: f64,
    /// Real seconds of the simulated critical path.
    lower_bound_s: f64,
    ratio: f64,
    /// The makespan and Terraform's estimate in simulated seconds: what Packet would take.
    makespan_sim_s: f64,
    terraform_sim_s: f64,
    /// `loko plan` (spec, journal, change classification) and building the DAG.
    plan_ms: f64,
    dag_ms: f64,
    packet_calls: BTreeMap<String, u64>,
    packet_calls_per_device: f64,
    /// List calls (the shared poller's) per simulated provisioning period.
    list_calls_per_provisioning_period: f64,
    rate_limited: u64,
    journal_events: usize,
    /// loko's peak resident set (the simulator runs in another process).
    peak_rss_mb: f64,
    /// When the last step of each kind succeeded, in real seconds since the run began.
    phases_s: BTreeMap<String, f64>,
}

pub async fn bench(args: &BenchArgs) -> anyhow::Result<ExitCode> {
    if !(args.time_scale.is_finite() && args.time_scale > 0.0) {
        anyhow::bail!("--time-scale {} is not a positive number", args.time_scale);
    }
    if let Some(spec) = &args.spec {
        let login = Login {
            port: args.ssh_port,
            user: args.ssh_user.clone(),
        };
        let figures = run_once(spec, args.time_scale, login).await?;
        outln!("{}", serde_json::to_string(&figures)?);
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "loko bench: 3 controllers + N workers against the simulator, time scale {} \
         (a {:.0}s simulated critical path takes {:.1}s), Packet API limit {}",
        args.time_scale,
        critical_path_sim_secs(),
        critical_path_sim_secs() * args.time_scale,
        match args.api_rate_limit {
            0 => "lifted".to_owned(),
            n => format!("{n} requests a minute"),
        }
    );
    outln!(
        "\n{:>7} {:>10} {:>10} {:>6} {:>10} {:>10} {:>7} {:>9} {:>9} {:>5} {:>7} {:>8}",
        "workers",
        "makespan",
        "bound",
        "ratio",
        "sim time",
        "terraform",
        "plan",
        "calls/dev",
        "lists/per",
        "429s",
        "events",
        "peak RSS"
    );
    let mut lines = Vec::new();
    for &workers in &args.workers {
        let f = size(workers, args.time_scale, args.api_rate_limit).await?;
        outln!(
            "{:>7} {:>9.2}s {:>9.2}s {:>6.3} {:>9.0}s {:>9.0}s {:>5.0}ms {:>9.2} {:>9.1} {:>5} {:>7} {:>6.0}MB",
            f.workers,
            f.makespan_s,
            f.lower_bound_s,
            f.ratio,
            f.makespan_sim_s,
            f.terraform_sim_s,
            f.plan_ms,
            f.packet_calls_per_device,
            f.list_calls_per_provisioning_period,
            f.rate_limited,
            f.journal_events,
            f.peak_rss_mb
        );
        let _ = std::io::stdout().flush();
        lines.push(serde_json::to_string(&f)?);
    }
    outln!(
        "\nsim time: the makespan in simulated seconds (what it would take on Packet); terraform: \
         ceil(devices/10) provisioning waves + DNS, Terraform's default parallelism of 10; \
         lists/per: list calls per provisioning period (one poll for all devices).\n"
    );
    for line in lines {
        outln!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

/// One size: a fresh simulator here (no state file: nothing survives, nothing is rewritten
/// per request), loko in a child process against it.
async fn size(workers: usize, time_scale: f64, api_rate_limit: u32) -> anyhow::Result<Figures> {
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let (mut config, ssh_user) = embedded_sim_config(
        &dir.path().join("nodes"),
        time_scale,
        PROJECT,
        "packet.example.com",
        "ZBENCH",
    )?;
    config.rate_limit.requests = match api_rate_limit {
        0 => u32::MAX,
        n => n,
    };
    let sim = sim::start(config).await?;
    let agent = DemoAgent::start(dir.path())?;
    let spec = dir.path().join("bench.yaml");
    write_spec(&spec, workers, &agent.public_line, &sim)?;

    let exe = std::env::current_exe().context("cannot find the loko binary to run")?;
    let out = tokio::process::Command::new(exe)
        .arg("bench")
        .arg("--spec")
        .arg(&spec)
        .args(["--time-scale", &time_scale.to_string()])
        .args(["--ssh-port", &SIM_SSH_PORT.to_string()])
        .args(["--ssh-user", &ssh_user])
        .env("PACKET_AUTH_TOKEN", sim.token())
        .env("SSH_AUTH_SOCK", &agent.socket)
        .env("AWS_ACCESS_KEY_ID", "loko-bench")
        .env("AWS_SECRET_ACCESS_KEY", "loko-bench")
        .env_remove("METAL_AUTH_TOKEN")
        .stderr(std::process::Stdio::inherit())
        .output()
        .await
        .context("cannot run the benchmark's loko")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        anyhow::bail!("the run of {workers} workers failed: {text}");
    }
    let line = text.lines().last().unwrap_or_default();
    let run: RunFigures = serde_json::from_str(line)
        .with_context(|| format!("the run of {workers} workers printed {line:?}"))?;
    let state = sim.state();
    sim.shutdown().await?;

    let devices = workers + 3;
    let packet_calls: BTreeMap<String, u64> = state
        .requests
        .into_iter()
        .filter(|(op, _)| op.starts_with("packet."))
        .collect();
    let total: u64 = packet_calls.values().sum();
    let lists = packet_calls
        .get("packet.devices.list")
        .copied()
        .unwrap_or(0);
    let t = sim::Timings::default();
    let provisioning_periods =
        run.makespan_s / ((t.queued + t.provisioning).as_secs_f64() * time_scale);
    let lower_bound = critical_path_sim_secs() * time_scale;
    Ok(Figures {
        workers,
        devices,
        time_scale,
        makespan_s: run.makespan_s,
        lower_bound_s: lower_bound,
        ratio: run.makespan_s / lower_bound,
        makespan_sim_s: run.makespan_s / time_scale,
        terraform_sim_s: terraform_sim_secs(devices),
        plan_ms: run.plan_ms,
        dag_ms: run.dag_ms,
        packet_calls,
        packet_calls_per_device: total as f64 / devices as f64,
        list_calls_per_provisioning_period: lists as f64 / provisioning_periods.max(1e-9),
        rate_limited: state.rate_limited_responses,
        journal_events: run.journal_events,
        peak_rss_mb: run.peak_rss_mb,
        phases_s: run.phases_s,
    })
}

/// The child: `loko run` of `spec` with loko's waits scaled, measured, printing nothing else.
async fn run_once(spec: &Path, time_scale: f64, login: Login) -> anyhow::Result<RunFigures> {
    let global = Global { state_dir: None };
    let t0 = Instant::now();
    let target = target(&global, spec)?;
    let journal = open_journal(&target.state_dir)?;
    let history = history(&journal)?;
    changes(&target.desired, &history)?;
    let plan_ms = t0.elapsed().as_secs_f64() * 1e3;

    let wiring = wire(&target, None, Some(login), Some(time_scale), false).await?;
    let assets = AssetDir::create(&target.assets)?;
    let t1 = Instant::now();
    let plan = apply_plan(&target, &history, &assets, &wiring)?;
    let dag_ms = t1.elapsed().as_secs_f64() * 1e3;

    let start = Instant::now();
    let milestones = Arc::new(Milestones::new());
    let report = engine(Arc::clone(&journal), Arc::clone(&milestones) as _)
        .run(
            &plan,
            request(RunKind::Apply, &target.desired)?,
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
    })
}

/// When the phases of a run ended, for the benchmark's report: the last success of each kind
/// of step (`ignition`, `device`, `dns`, ...), in seconds since the run began.
struct Milestones {
    start: Instant,
    last: Mutex<BTreeMap<String, f64>>,
}

impl Milestones {
    fn new() -> Milestones {
        Milestones {
            start: Instant::now(),
            last: Mutex::new(BTreeMap::new()),
        }
    }

    fn phases(&self) -> BTreeMap<String, f64> {
        self.last.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

impl engine::Observer for Milestones {
    fn notice(&self, notice: &engine::Notice) {
        let kind = notice.step.as_str().split('/').next().unwrap_or_default();
        let at = self.start.elapsed().as_secs_f64();
        let Ok(mut last) = self.last.lock() else {
            return;
        };
        match &notice.kind {
            engine::NoticeKind::Succeeded { .. } => {
                last.entry(format!("{kind} first")).or_insert(at);
                last.insert(kind.to_owned(), at);
            }
            engine::NoticeKind::Progress { message } if message.starts_with("created device") => {
                last.entry("device created first".to_owned()).or_insert(at);
                last.insert("device created".to_owned(), at);
            }
            engine::NoticeKind::Started { .. } => {
                last.entry(format!("{kind} started first")).or_insert(at);
            }
            _ => {}
        }
    }
}

const PROJECT: &str = "93fa1e81-0f3c-4b2e-9d8a-2c6e5f0a1b2c";

fn write_spec(path: &Path, workers: usize, key: &str, sim: &sim::SimHandle) -> anyhow::Result<()> {
    // A pool holds at most 100 nodes (the spec's limit): larger sizes take several.
    let mut pools = String::new();
    let mut left = workers;
    let mut i = 0;
    while left > 0 || i == 0 {
        let count = left.min(100);
        pools.push_str(&format!(
            "  - pool_name: pool{i}\n    count: {count}\n    type: t1.small.x86\n"
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
node_private_cidr: 10.128.0.0/16
endpoints:
  packet_api_url: {packet}
  route53_endpoint_url: {route53}
worker_pools:
{pools}",
        packet = sim.packet_url(),
        route53 = sim.route53_url(),
    );
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
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
