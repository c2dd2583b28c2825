//! Engine benchmark; prints figures, asserts nothing. Run: `cargo bench -p engine`.
//!
//! Overhead of the engine for a 10,000-step DAG of no-op steps: every step still journals
//! `StepStarted` and `StepSucceeded` durably, so this measures scheduling plus group commit.

use std::sync::Arc;
use std::time::Instant;

use engine::{
    Actions, CancellationToken, Dag, Engine, ResourceClass, RunRequest, StepContext, StepDef,
    StepError,
};
use journal::{Digest, Journal, Outputs, RunKind, StepId};

const NOOP: ResourceClass = ResourceClass::new("noop");

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        for (width, layers) in [(100usize, 100usize), (10_000, 1), (1, 1_000)] {
            bench(width, layers).await;
        }
    });
}

/// `layers` layers of `width` steps; each step depends on the step with the same index in the
/// layer before (width 1 is a chain; layers 1 is a flat fan).
async fn bench(width: usize, layers: usize) {
    let mut steps = Vec::with_capacity(width * layers);
    for layer in 0..layers {
        for i in 0..width {
            let id = StepId::new(format!("l{layer}/s{i}")).expect("id");
            let mut step = StepDef::new(id, "noop", Digest::of(b"noop")).class(NOOP);
            if layer > 0 {
                step = step.after([StepId::new(format!("l{}/s{i}", layer - 1)).expect("id")]);
            }
            steps.push(step);
        }
    }
    let n = steps.len();
    let dir = tempfile::tempdir().expect("tempdir");
    let journal = Arc::new(Journal::open(dir.path()).expect("journal"));
    let t_plan = Instant::now();
    let plan = Dag::new(steps).expect("plan");
    let plan_ms = t_plan.elapsed().as_secs_f64() * 1e3;
    let request = RunRequest {
        kind: RunKind::Apply,
        spec_digest: Digest::of(b"bench"),
        spec: serde_json::json!({}),
    };
    let actions = Actions::new().bind_action("noop", |_ctx: StepContext| async {
        Ok::<_, StepError>(Outputs::new())
    });
    let engine = Engine::new(Arc::clone(&journal)).limit(NOOP, 256);
    let t_run = Instant::now();
    let report = engine
        .run(&plan, &actions, request.clone(), CancellationToken::new())
        .await
        .expect("run");
    let run_s = t_run.elapsed().as_secs_f64();
    let t_again = Instant::now();
    let again = engine
        .run(&plan, &actions, request, CancellationToken::new())
        .await
        .expect("rerun");
    let again_ms = t_again.elapsed().as_secs_f64() * 1e3;
    let events: u64 = journal.with_state(|s| s.runs.values().map(|r| r.events).sum());
    println!(
        "engine: {n} no-op steps ({layers} layer(s) x {width}): plan {plan_ms:.1} ms, run {run_s:.3} s ({events} durable events, {:.0} steps/s), {:?}; up-to-date rerun {again_ms:.1} ms ({:?})",
        n as f64 / run_s,
        report.outcome,
        again.outcome
    );
}
