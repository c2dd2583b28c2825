//! `loko journal`: the audit log, read from the journal's fold.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::Context;
use journal::{Attempt, AttemptEnd, Journal, Outputs, RunId, RunOutcome, RunState, StepId};
use serde_json::json;

use crate::cli::{Global, JournalArgs};
use crate::failure::UserError;

/// The journal's directory inside the state directory.
pub fn journal_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("journal")
}

pub fn run(global: &Global, args: &JournalArgs) -> anyhow::Result<ExitCode> {
    let Some(state_dir) = &global.state_dir else {
        return Err(UserError::usage(
            "loko journal needs to know which cluster",
            "pass --state-dir <asset_dir>/.loko",
        )
        .into());
    };
    let dir = journal_dir(state_dir);
    if !dir.exists() {
        return Err(UserError::usage(
            format!("no journal at {}", dir.display()),
            "a journal is created by the first `loko run`; check --state-dir",
        )
        .into());
    }
    let journal = Journal::open(&dir)?;
    let state = journal.state();
    let run_id = match args.run {
        Some(n) => Some(RunId(n)),
        None if args.step.is_some() => state.last_run().map(|r| r.id),
        None => None,
    };
    let Some(run_id) = run_id else {
        list_runs(&state, args.json);
        return Ok(ExitCode::SUCCESS);
    };
    let run = state.runs.get(&run_id).ok_or_else(|| {
        UserError::usage(
            format!("journal {} has no run {run_id}", dir.display()),
            "`loko journal` lists the runs",
        )
    })?;
    match &args.step {
        Some(step) => {
            let step = StepId::new(step.clone()).context("--step")?;
            let history = run.steps.get(&step).ok_or_else(|| {
                UserError::usage(
                    format!("run {run_id} has no step {step}"),
                    format!("`loko journal {run_id}` lists its steps"),
                )
            })?;
            show_attempts(&step, &history.attempts, args.json);
        }
        None if args.json => {
            for (seq, record) in journal.records(run_id)? {
                println!(
                    "{}",
                    json!({"run": run_id, "seq": seq, "at_ms": record.at_ms, "event": record.event})
                );
            }
        }
        None => show_run(&state, run),
    }
    Ok(ExitCode::SUCCESS)
}

fn list_runs(state: &journal::ClusterState, as_json: bool) {
    if !as_json {
        println!(
            "{:<5} {:<8} {:<21} {:>9} {:>7}  OUTCOME",
            "RUN", "KIND", "STARTED", "DURATION", "STEPS"
        );
    }
    for run in state.runs.values() {
        let done = run
            .steps
            .values()
            .filter(|h| {
                h.attempts
                    .iter()
                    .any(|a| matches!(a.end, AttemptEnd::Succeeded { .. }))
            })
            .count();
        let end_ms = run.ended.as_ref().map(|(at, _)| *at);
        if as_json {
            println!(
                "{}",
                json!({
                    "run": run.id, "kind": run.kind, "started_at_ms": run.started_at_ms,
                    "ended": run.ended.as_ref().map(|(at, o)| json!({"at_ms": at, "outcome": o})),
                    "resumes": run.resumes.len(), "plan_steps": run.plan.len(),
                    "steps_run": run.steps.len(), "steps_succeeded": done, "events": run.events,
                    "spec_digest": run.spec_digest,
                })
            );
            continue;
        }
        println!(
            "{:<5} {:<8} {:<21} {:>9} {:>7}  {}{}",
            run.id.to_string(),
            format!("{:?}", run.kind).to_lowercase(),
            timestamp(run.started_at_ms),
            end_ms.map_or("-".into(), |e| duration(
                e.saturating_sub(run.started_at_ms)
            )),
            format!("{done}/{}", run.plan.len()),
            outcome_text(run),
            match run.resumes.len() {
                0 => String::new(),
                n => format!(" (resumed {n}x)"),
            }
        );
    }
}

fn outcome_text(run: &RunState) -> String {
    match &run.ended {
        None => "unfinished (resumable)".into(),
        Some((_, RunOutcome::Succeeded)) => "succeeded".into(),
        Some((_, RunOutcome::Interrupted)) => "interrupted (resumable)".into(),
        Some((_, RunOutcome::Failed { failed, skipped })) => format!(
            "failed: {} failed, {} skipped (resumable)",
            failed.len(),
            skipped.len()
        ),
    }
}

fn show_run(state: &journal::ClusterState, run: &RunState) {
    println!(
        "run {} ({}), started {} by {}: {}",
        run.id,
        format!("{:?}", run.kind).to_lowercase(),
        timestamp(run.started_at_ms),
        run.started_by,
        outcome_text(run)
    );
    for (at, by) in &run.resumes {
        println!("  resumed {} by {by}", timestamp(*at));
    }
    println!(
        "{:<44} {:>8} {:>9}  {:<10} OUTPUTS / ERROR",
        "STEP", "ATTEMPTS", "DURATION", "STATUS"
    );
    // Steps in plan order; steps of the run that left the plan (a resumed run with a new plan)
    // after them.
    let mut order: Vec<&StepId> = run
        .plan
        .iter()
        .filter(|s| run.steps.contains_key(*s))
        .collect();
    order.extend(run.steps.keys().filter(|s| !run.plan.contains(s)));
    for step in order {
        let history = &run.steps[step];
        let total_ms: u64 = history.attempts.iter().map(attempt_ms).sum();
        let (status, detail) = match (history.attempts.last(), &history.skipped_because) {
            (_, Some(because)) => ("skipped".to_owned(), format!("because {because} failed")),
            (None, None) => ("pending".to_owned(), String::new()),
            (Some(a), None) => match &a.end {
                AttemptEnd::Unfinished => ("unfinished".to_owned(), String::new()),
                AttemptEnd::Succeeded { outputs, .. } => {
                    ("succeeded".to_owned(), outputs_text(outputs))
                }
                AttemptEnd::Failed {
                    error, retryable, ..
                } if *retryable && is_interruption(error) => {
                    ("interrupted".to_owned(), String::new())
                }
                AttemptEnd::Failed {
                    error, retryable, ..
                } => (
                    if *retryable { "failed" } else { "failed!" }.to_owned(),
                    error.clone(),
                ),
            },
        };
        println!(
            "{:<44} {:>8} {:>9}  {:<10} {}",
            step.as_str(),
            history.attempts.len(),
            duration(total_ms),
            status,
            one_line(&detail, 100)
        );
    }
    // Steps of the plan without an attempt in this run were reused, or not reached when the
    // run stopped: only a step with a success in an earlier run can have been reused.
    let (earlier, never): (Vec<&StepId>, Vec<&StepId>) = run
        .plan
        .iter()
        .filter(|s| !run.steps.contains_key(*s))
        .partition(|s| succeeded_before(state, run.id, s));
    if run.succeeded() {
        if !earlier.is_empty() {
            println!(
                "({} step(s) of the plan reused results recorded earlier)",
                earlier.len()
            );
        }
        return;
    }
    if !never.is_empty() {
        println!(
            "({} step(s) of the plan never started: the run stopped before them)",
            never.len()
        );
    }
    if !earlier.is_empty() {
        println!(
            "({} step(s) of the plan have results recorded earlier: reused, unless the run stopped before them)",
            earlier.len()
        );
    }
}

/// True when a run before `run` recorded a success of `step`.
fn succeeded_before(state: &journal::ClusterState, run: RunId, step: &StepId) -> bool {
    state.runs.range(..run).any(|(_, r)| {
        r.steps.get(step).is_some_and(|h| {
            h.attempts
                .iter()
                .any(|a| matches!(a.end, AttemptEnd::Succeeded { .. }))
        })
    })
}

/// The error the engine journals for an attempt the run's cancellation stopped.
fn is_interruption(error: &str) -> bool {
    error == engine::StepError::Interrupted.to_string()
}

fn show_attempts(step: &StepId, attempts: &[Attempt], as_json: bool) {
    for a in attempts {
        if as_json {
            println!("{}", json!({"step": step, "attempt": a}));
            continue;
        }
        println!(
            "{step} attempt {} started {} (inputs {})",
            a.attempt,
            timestamp(a.started_at_ms),
            &a.inputs_digest.short()
        );
        for intent in &a.intents {
            println!(
                "  intent {}: {} {}",
                timestamp(intent.at_ms),
                intent.effect,
                outputs_text(&intent.detail)
            );
        }
        match &a.end {
            AttemptEnd::Unfinished => println!("  no outcome recorded (the process stopped)"),
            AttemptEnd::Succeeded {
                outputs,
                duration_ms,
                ..
            } => {
                println!("  succeeded after {}", duration(*duration_ms));
                for (k, v) in outputs.iter() {
                    println!("    {k} = {v}");
                }
            }
            AttemptEnd::Failed {
                error,
                retryable,
                duration_ms,
                ..
            } => println!(
                "  failed after {} ({}): {error}",
                duration(*duration_ms),
                if *retryable { "retryable" } else { "permanent" }
            ),
        }
    }
}

fn attempt_ms(a: &Attempt) -> u64 {
    match &a.end {
        AttemptEnd::Unfinished => 0,
        AttemptEnd::Succeeded { duration_ms, .. } | AttemptEnd::Failed { duration_ms, .. } => {
            *duration_ms
        }
    }
}

fn outputs_text(outputs: &Outputs) -> String {
    outputs
        .iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn one_line(text: &str, max: usize) -> String {
    let line = text.replace('\n', " ");
    if line.chars().count() <= max {
        line
    } else {
        format!("{}…", line.chars().take(max - 1).collect::<String>())
    }
}

fn timestamp(ms: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

fn duration(ms: u64) -> String {
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let rounded = Duration::from_secs(ms / 1000);
    humantime::format_duration(rounded)
        .to_string()
        .replace(' ', "")
}
