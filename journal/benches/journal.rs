//! Journal benchmarks; prints figures, asserts nothing. Run: `cargo bench -p journal`, or
//! `cargo bench -p journal -- weekly` (or `appends`, `open`) for one part.
//!
//! - durable appends per second with 1 and 64 concurrent writers (group commit at work);
//! - time to open and fold a journal of 100,000 events, and of one with the most records after
//!   its last snapshot (see `journal/src/snapshot.rs`);
//! - time to open the journal of a 5,000-worker cluster after a year of weekly runs (52 runs,
//!   each recording the whole desired cluster and plan), the target being < 200 ms.

use std::sync::Arc;
use std::time::Instant;

use journal::testing::{started, succeeded};
use journal::{Digest, Event, Journal, Outputs, RunKind, StepId};

// The allocator the loko binary uses, so that the figures are loko's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Set in the child process that opens a journal and prints the milliseconds it took.
const OPEN_ONLY_ENV: &str = "LOKO_BENCH_OPEN_ONLY";

fn main() {
    if let Ok(dir) = std::env::var(OPEN_ONLY_ENV) {
        let t0 = Instant::now();
        let journal = Journal::open(std::path::Path::new(&dir)).expect("open");
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        drop(journal);
        println!("{ms}");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    // `cargo bench -p journal -- NAME...` runs only the named parts: appends, open, weekly.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |part: &str| only.is_empty() || only.iter().any(|o| o == part);
    runtime.block_on(async {
        if wanted("appends") {
            for writers in [1usize, 64] {
                appends_per_second(writers).await;
            }
        }
        if wanted("open") {
            open_and_fold(100_000).await;
            // The most records a journal of at most that size folds after its last snapshot.
            let every = journal::SNAPSHOT_EVERY as usize;
            let worst = 100_000 / every * every - 1;
            open_and_fold(worst).await;
        }
        if wanted("weekly") {
            a_year_of_weekly_runs(5_000, 52).await;
        }
    });
}

/// The bench's journal directory: a temporary one, or one kept for profiling
/// (`LOKO_BENCH_KEEP=/path cargo bench -p journal`, then `journal/examples/fold_probe.rs`).
enum KeepDir {
    Temp(tempfile::TempDir),
    Kept(std::path::PathBuf),
}

impl KeepDir {
    fn path(&self) -> &std::path::Path {
        match self {
            KeepDir::Temp(t) => t.path(),
            KeepDir::Kept(p) => p,
        }
    }
}

/// A journal in `dir` with one run begun, as every bench needs.
async fn open_with_run(dir: &std::path::Path) -> (Arc<Journal>, journal::RunId) {
    let journal = Arc::new(Journal::open(dir).expect("open"));
    let run = journal
        .begin_run(
            RunKind::Apply,
            Digest::of(b"bench"),
            serde_json::json!({}),
            vec![],
        )
        .await
        .expect("begin");
    (journal, run)
}

async fn appends_per_second(writers: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (journal, run) = open_with_run(dir.path()).await;
    let per_writer = if writers == 1 { 2_000 } else { 200 };
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let journal = Arc::clone(&journal);
        tasks.push(tokio::spawn(async move {
            let step = StepId::new(format!("bench/{w}")).expect("id");
            for attempt in 1..=per_writer {
                journal
                    .append(run, started(&step, attempt))
                    .await
                    .expect("append");
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer");
    }
    let total = writers * per_writer as usize;
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "journal append: {writers:>2} writer(s): {total} durable appends in {secs:.3} s = {:.0} appends/s",
        total as f64 / secs
    );
}

async fn open_and_fold(events: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = match std::env::var("LOKO_BENCH_KEEP") {
        Ok(path) => {
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).expect("keep dir");
            KeepDir::Kept(std::path::PathBuf::from(path))
        }
        Err(_) => KeepDir::Temp(dir),
    };
    let t0 = Instant::now();
    {
        let (journal, run) = open_with_run(dir.path()).await;
        // Writers in parallel so that writing 100k durable events takes seconds, not minutes.
        let steps = (events - 1) / 2;
        let mut tasks = Vec::new();
        for w in 0..64 {
            let journal = Arc::clone(&journal);
            tasks.push(tokio::spawn(async move {
                for i in (w..steps).step_by(64) {
                    let step = StepId::new(format!("device/node-{i}")).expect("id");
                    journal
                        .append(run, started(&step, 1))
                        .await
                        .expect("append");
                    let outputs = Outputs::new()
                        .with("device_id", format!("6f1c3b0e-0000-4000-8000-{i:012}"))
                        .and_then(|o| o.with("public_ipv4", "127.10.0.1"))
                        .expect("outputs");
                    journal
                        .append(run, succeeded(&step, 1, outputs, 1))
                        .await
                        .expect("append");
                }
            }));
        }
        for t in tasks {
            t.await.expect("writer");
        }
    }
    let written = t0.elapsed();
    // Opened by fresh processes, as `loko run` resuming a cluster would: the writer's heap and
    // caches are not there to help. Five opens; the spread shows how busy the machine was.
    let mut ms: Vec<f64> = (0..5).map(|_| open_in_child(dir.path())).collect();
    ms.sort_by(f64::total_cmp);
    let journal = Journal::open(dir.path()).expect("reopen");
    let (count, ledger) = journal.with_state(|s| {
        (
            s.runs.values().map(|r| r.events).sum::<u64>(),
            s.ledger.len(),
        )
    });
    let after = count % journal::SNAPSHOT_EVERY;
    println!(
        "journal open+fold: {count} events ({ledger} step results; snapshot + {after} records): median {:.1} ms (min {:.1}, max {:.1}, 5 processes); written in {:.1} s by 64 writers",
        ms[2],
        ms[0],
        ms[4],
        written.as_secs_f64()
    );
}

/// A desired cluster as `loko run` records it in `run_started`: every node with its settings
/// (the shape of `specs::DesiredNode`), so that each of a year's runs weighs what a real one
/// does.
fn desired_cluster(workers: usize) -> serde_json::Value {
    let node = |hostname: String, role: &str, pool: Option<String>, index: usize| {
        serde_json::json!({
            "hostname": hostname, "role": role, "pool": pool, "index": index,
            "plan": "c3.small.x86", "facility": "ams1",
            "os": {"channel": "stable", "version": "current", "arch": "amd64", "ipxe_script_url": null},
            "reservation": "none",
            "labels": {"node.supernova.io/role": "backend"},
            "taints": [], "raid": "none",
        })
    };
    let mut nodes: Vec<serde_json::Value> = (0..3)
        .map(|i| node(format!("big-controller-{i}"), "controller", None, i))
        .collect();
    nodes.extend((0..workers).map(|i| {
        let pool = format!("pool{}", i / 1000);
        node(
            format!("big-{pool}-worker-{}", i % 1000),
            "worker",
            Some(pool),
            i % 1000,
        )
    }));
    serde_json::json!({"settings": {"cluster_name": "big", "dns_zone": "packet.example.com"}, "nodes": nodes})
}

/// The journal of a cluster of `workers` workers after `runs` weekly runs: the first creates
/// it (ignition and device steps of every node: started, intent, succeeded), each later one
/// records the whole desired cluster and plan again and reruns a hundred steps (a renewal
/// check, a pool scaled). Opened by fresh processes, as a resume is.
async fn a_year_of_weekly_runs(workers: usize, runs: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = desired_cluster(workers);
    let hosts: Vec<String> = spec["nodes"]
        .as_array()
        .map(|nodes| {
            nodes
                .iter()
                .filter_map(|n| n["hostname"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let mut plan: Vec<StepId> = [
        "assets/pki",
        "assets/kubeconfigs",
        "assets/manifests",
        "dns",
    ]
    .iter()
    .map(|s| StepId::new(*s).expect("id"))
    .collect();
    for host in &hosts {
        plan.push(StepId::new(format!("ignition/{host}")).expect("id"));
        plan.push(StepId::new(format!("device/{host}")).expect("id"));
    }
    let t0 = Instant::now();
    {
        let journal = Arc::new(Journal::open(dir.path()).expect("open"));
        for week in 0..runs {
            let run = journal
                .begin_run(
                    RunKind::Apply,
                    Digest::of(format!("week {week}").as_bytes()),
                    spec.clone(),
                    plan.clone(),
                )
                .await
                .expect("begin");
            // Week 0 builds every node; later weeks rerun a hundred steps.
            let touched: Vec<StepId> = match week {
                0 => plan.clone(),
                _ => plan.iter().skip(4 + week * 7).take(100).cloned().collect(),
            };
            let attempt = u32::try_from(week + 1).expect("attempt");
            let mut tasks = Vec::new();
            for w in 0..64 {
                let journal = Arc::clone(&journal);
                let mine: Vec<StepId> = touched.iter().skip(w).step_by(64).cloned().collect();
                tasks.push(tokio::spawn(async move {
                    for (i, step) in mine.into_iter().enumerate() {
                        journal
                            .append(run, started(&step, attempt))
                            .await
                            .expect("append");
                        if step.as_str().starts_with("device/") {
                            let intent = Event::StepIntent {
                                step: step.clone(),
                                attempt,
                                effect: "create device".to_owned(),
                                detail: Outputs::new()
                                    .with("plan", "c3.small.x86")
                                    .expect("detail"),
                            };
                            journal.append(run, intent).await.expect("append");
                        }
                        let outputs = Outputs::new()
                            .with("device_id", format!("6f1c3b0e-0000-4000-8000-{w:04}{i:08}"))
                            .and_then(|o| o.with("public_ipv4", "127.10.0.1"))
                            .and_then(|o| o.with("private_ipv4", "10.128.0.1"))
                            .expect("outputs");
                        journal
                            .append(run, succeeded(&step, attempt, outputs, 1))
                            .await
                            .expect("append");
                    }
                }));
            }
            for t in tasks {
                t.await.expect("writer");
            }
            journal
                .append(
                    run,
                    Event::RunEnded {
                        outcome: journal::RunOutcome::Succeeded,
                    },
                )
                .await
                .expect("end");
        }
    }
    let written = t0.elapsed();
    let mut ms: Vec<f64> = (0..5).map(|_| open_in_child(dir.path())).collect();
    ms.sort_by(f64::total_cmp);
    let journal = Journal::open(dir.path()).expect("reopen");
    let (count, run_count) =
        journal.with_state(|s| (s.runs.values().map(|r| r.events).sum::<u64>(), s.runs.len()));
    println!(
        "journal open+fold: a {workers}-worker cluster after {run_count} weekly runs ({count} events): median {:.1} ms (min {:.1}, max {:.1}, 5 processes; target < 200 ms); written in {:.1} s",
        ms[2],
        ms[0],
        ms[4],
        written.as_secs_f64()
    );
}

fn open_in_child(dir: &std::path::Path) -> f64 {
    let me = std::env::current_exe().expect("bench executable");
    let out = std::process::Command::new(me)
        .env(OPEN_ONLY_ENV, dir)
        .output()
        .expect("run the bench's child");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("milliseconds")
}
