//! `loko journal`: the audit log, read from the journal's fold.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use journal::{
    Attempt, AttemptEnd, Journal, Location, Outputs, RunId, RunOutcome, RunState, StepId,
};
use serde_json::json;

use crate::cli::{Global, JournalArgs};
use crate::failure::UserError;
use crate::output::{errln, outln};

pub async fn run(global: &Global, args: &JournalArgs) -> anyhow::Result<ExitCode> {
    // `loko journal SPEC [RUN]`, or with --state-dir, `loko journal [RUN]` (and a spec, if given,
    // only names the cluster the directory is of).
    let (state_dir, run) = match (&global.state_dir, &args.spec) {
        (Some(dir), Some(first)) if args.run.is_none() && first.parse::<u64>().is_ok() => {
            (dir.clone(), first.parse().ok())
        }
        (Some(dir), None) => (dir.clone(), args.run),
        // With a spec, the journal is checked to be its cluster's (the state directory is
        // --state-dir's all the same).
        (_, Some(spec)) => (
            crate::target::target(global, Path::new(spec))?.state_dir,
            args.run,
        ),
        (None, None) => {
            return Err(UserError::usage(
                "loko journal needs to know which cluster",
                "pass the spec (loko journal cluster.yaml) or its state directory (--state-dir <asset_dir>/.loko)",
            )
            .into());
        }
    };
    let location = crate::journal_location::location(global, &state_dir)?;
    let journal = match &location {
        Location::Etcd(config) if args.follow => {
            return follow_etcd(config, args.json, args.since.map(RunId)).await;
        }
        Location::Dir(dir) if args.follow => {
            return follow(dir, args.json, args.since.map(RunId)).await;
        }
        Location::Dir(dir) if !dir.exists() => {
            return Err(UserError::usage(
                format!("no journal at {}", dir.display()),
                "a journal is created by the first `loko run`; check the spec's asset_dir or --state-dir",
            )
            .into());
        }
        // etcd is read without the lock, so during a run too.
        location => Journal::open_read_only(location)?,
    };
    let dir = journal.path().to_owned();
    let state = journal.state();
    let run_id = match run {
        Some(n) => Some(RunId(n)),
        None if args.step.is_some() => state.last_run().map(|r| r.id),
        None => None,
    };
    let Some(run_id) = run_id else {
        list_runs(&state, args.json);
        return Ok(ExitCode::SUCCESS);
    };
    // The command as this one was given, so that a hint runs as printed.
    let again = match (&global.state_dir, &args.spec) {
        (Some(dir), _) => format!("loko journal --state-dir {}", dir.display()),
        (None, spec) => format!("loko journal {}", spec.as_deref().unwrap_or("SPEC")),
    };
    let run = state.runs.get(&run_id).ok_or_else(|| {
        UserError::usage(
            format!("journal {} has no run {run_id}", dir.display()),
            format!("`{again}` lists the runs"),
        )
    })?;
    match &args.step {
        Some(step) => {
            let step = StepId::new(step.clone()).context("--step")?;
            let history = run.steps.get(&step).ok_or_else(|| {
                UserError::usage(
                    format!("run {run_id} has no step {step}"),
                    format!("`{again} {run_id}` lists its steps"),
                )
            })?;
            show_attempts(&step, &history.attempts, args.json);
        }
        None if args.json => {
            for (seq, record) in journal.records(run_id)? {
                outln!(
                    "{}",
                    json!({"run": run_id, "seq": seq, "at_ms": record.at_ms, "event": record.event})
                );
            }
        }
        None => {
            show_run(&state, run);
            // Not folded into the state (a snapshot would not keep it): read from the run's
            // records.
            for (_, record) in journal.records(run_id)? {
                if let Some(text) = crate::team::resealed_text(&record.event) {
                    outln!("{text}");
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn list_runs(state: &journal::ClusterState, as_json: bool) {
    if !as_json {
        outln!(
            "{:<5} {:<8} {:<23} {:>9} {:>7}  OUTCOME",
            "RUN",
            "KIND",
            "STARTED",
            "DURATION",
            "STEPS"
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
            outln!(
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
        outln!(
            "{:<5} {:<8} {:<23} {:>9} {:>7}  {}{}",
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
    outln!(
        "run {} ({}), started {} by {}: {}",
        run.id,
        format!("{:?}", run.kind).to_lowercase(),
        timestamp(run.started_at_ms),
        run.started_by,
        outcome_text(run)
    );
    for (at, by) in &run.resumes {
        outln!("  resumed {} by {by}", timestamp(*at));
    }
    outln!(
        "{:<44} {:>8} {:>9}  {:<10} OUTPUTS / ERROR",
        "STEP",
        "ATTEMPT",
        "DURATION",
        "STATUS"
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
        outln!(
            "{:<44} {:>8} {:>9}  {:<10} {}",
            step.as_str(),
            attempt_numbers(&history.attempts),
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
            outln!(
                "({} step(s) of the plan reused results recorded earlier)",
                earlier.len()
            );
        }
        return;
    }
    if !never.is_empty() {
        outln!(
            "({} step(s) of the plan never started: the run stopped before them)",
            never.len()
        );
    }
    if !earlier.is_empty() {
        outln!(
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
            outln!("{}", json!({"step": step, "attempt": a}));
            continue;
        }
        outln!(
            "{step} attempt {} started {} (inputs {})",
            a.attempt,
            timestamp(a.started_at_ms),
            &a.inputs_digest.short()
        );
        for intent in &a.intents {
            outln!(
                "  intent {}: {} {}",
                timestamp(intent.at_ms),
                intent.effect,
                outputs_text(&intent.detail)
            );
        }
        match &a.end {
            AttemptEnd::Unfinished => outln!("  no outcome recorded (the process stopped)"),
            AttemptEnd::Succeeded {
                outputs,
                duration_ms,
                ..
            } => {
                outln!("  succeeded after {}", duration(*duration_ms));
                for (k, v) in outputs.iter() {
                    outln!("    {k} = {v}");
                }
            }
            AttemptEnd::Failed {
                error,
                retryable,
                duration_ms,
                ..
            } => outln!(
                "  failed after {} ({}): {error}",
                duration(*duration_ms),
                if *retryable { "retryable" } else { "permanent" }
            ),
        }
    }
}

/// The numbers of a run's attempts of a step (`4`, or `4-6`): attempts count over the
/// cluster's life, as the progress lines and `--step` number them, so a step that runs in
/// every run (readiness) shows its fourth attempt in the fourth run.
fn attempt_numbers(attempts: &[Attempt]) -> String {
    match (attempts.first(), attempts.last()) {
        (Some(first), Some(last)) if first.attempt != last.attempt => {
            format!("{}-{}", first.attempt, last.attempt)
        }
        (Some(first), _) => first.attempt.to_string(),
        _ => "-".into(),
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
    journal::human_time(ms)
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

/// `--follow`: prints the events of the run in progress (or of the next one) as the loko
/// holding the journal publishes them (its feed, see `journal::FEED_FILE`) once durable, until
/// it closes the journal or exits; `since` adds every run from that one on. Never opens the
/// journal while a loko holds it, so it never stands in the way of a run.
async fn follow(dir: &Path, as_json: bool, since: Option<RunId>) -> anyhow::Result<ExitCode> {
    let path = dir.join(journal::FEED_FILE);
    // The last record printed: a holder's feed starts with the journal's history, which a
    // later holder publishes again.
    let mut last: Option<(RunId, journal::Seq)> = None;
    if let Some(since) = since
        && live_holder(&path).is_none()
        && dir.exists()
    {
        // Nobody holds the journal: the earlier runs come from the journal itself.
        let journal = Journal::open_read_only(&journal::Location::Dir(dir.to_owned()))?;
        let runs: Vec<RunId> = journal
            .state()
            .runs
            .range(since..)
            .map(|(id, _)| *id)
            .collect();
        for run in runs {
            for (seq, record) in journal.records(run)? {
                print_followed(run, seq, &record, as_json);
                last = Some((run, seq));
            }
        }
    }
    let mut waiting_said = false;
    loop {
        let Some((pid, by)) = live_holder(&path) else {
            if !waiting_said {
                errln!(
                    "no run in progress on this cluster; waiting for the next one (Ctrl-C to stop; --since RUN shows earlier runs)"
                );
                waiting_said = true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let mut offset = 0u64;
        let mut partial = String::new();
        // The first run of this holder's feed to print; decided at its first read.
        let mut from = since;
        let mut first_read = true;
        // A holder that only reads the journal (`loko plan`) publishes no record: the follower
        // goes on waiting for a run rather than end with it.
        let mut records = 0usize;
        'holder: loop {
            let alive = process_alive(pid);
            let (text, len) = read_from(&path, offset);
            if len < offset {
                // Rewritten by a new holder.
                break;
            }
            offset += text.len() as u64;
            partial.push_str(&text);
            let mut lines = Vec::new();
            while let Some(end) = partial.find('\n') {
                let line: String = partial.drain(..=end).collect();
                lines.extend(journal::parse_feed_line(line.trim_end()));
            }
            if std::mem::take(&mut first_read) && from.is_none() {
                from = Some(run_in_progress(&lines));
            }
            for line in lines {
                match line {
                    journal::FeedLine::Record { run, seq, record } => {
                        let shown = from.is_none_or(|from| run >= from)
                            && last.is_none_or(|last| (run, seq) > last);
                        if !shown {
                            continue;
                        }
                        if records == 0 {
                            errln!("following the run of {by}");
                        }
                        records += 1;
                        last = Some((run, seq));
                        print_followed(run, seq, &record, as_json);
                    }
                    journal::FeedLine::Closed if records == 0 => break 'holder,
                    journal::FeedLine::Closed => {
                        errln!("{by} closed the journal");
                        return Ok(ExitCode::SUCCESS);
                    }
                    journal::FeedLine::Header { pid: other, .. } if other != pid => {
                        break 'holder;
                    }
                    _ => {}
                }
            }
            if !alive && records == 0 {
                break;
            }
            if !alive {
                errln!(
                    "{by} exited without closing the journal (it was killed); the next run resumes"
                );
                return Ok(ExitCode::SUCCESS);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The run a holder's first published lines show in progress: the last one started and not
/// ended; else the next one, when every run in them has ended.
fn run_in_progress(lines: &[journal::FeedLine]) -> RunId {
    let mut latest = RunId(0);
    let mut ended = false;
    for line in lines {
        if let journal::FeedLine::Record { run, record, .. } = line
            && *run >= latest
        {
            ended = (*run == latest && ended)
                || matches!(record.event, journal::Event::RunEnded { .. });
            latest = *run;
        }
    }
    match ended || latest == RunId(0) {
        true => RunId(latest.0 + 1),
        false => latest,
    }
}

/// One followed record: a JSON object, or a line for people.
fn print_followed(run: RunId, seq: journal::Seq, record: &journal::Record, as_json: bool) {
    if as_json {
        outln!(
            "{}",
            json!({"run": run, "seq": seq, "at_ms": record.at_ms, "event": record.event})
        );
    } else {
        outln!("{}", event_line(run, record));
    }
}

/// `--follow` on an etcd journal: the run in progress (its lock is held) from its start, or,
/// when none is, the next run; `since` adds every run from that one on. Then each record as it
/// is written (an etcd watch), until interrupted: with a shared journal, the next run may come
/// from anywhere.
async fn follow_etcd(
    config: &journal::store::EtcdConfig,
    as_json: bool,
    since: Option<RunId>,
) -> anyhow::Result<ExitCode> {
    let held = journal::store::EtcdStore::holder(config)
        .map_err(|e| anyhow::anyhow!("journal {}: {e}", config.url()))?
        .is_some();
    let last = Journal::open_read_only(&Location::Etcd(config.clone()))?
        .state()
        .last_run()
        .map(|run| run.id);
    let from = match (since, last) {
        (Some(since), _) => since,
        (None, Some(last)) if held => last,
        (None, last) => {
            errln!(
                "no run in progress on this cluster; waiting for the next one (Ctrl-C to stop; --since RUN shows earlier runs)"
            );
            RunId(last.map_or(1, |run| run.0 + 1))
        }
    };
    errln!("following {} (Ctrl-C to stop)", config.url());
    let mut bad = None;
    journal::follow_etcd(config, |run, seq, record| match record {
        Ok(record) => {
            if run >= from {
                print_followed(run, seq, &record, as_json);
            }
            true
        }
        Err(e) => {
            bad = Some(format!("record {seq} of run {run} is unreadable: {e}"));
            false
        }
    })
    .await
    .with_context(|| format!("following {}", config.url()))?;
    match bad {
        Some(why) => Err(anyhow::anyhow!("journal {}: {why}", config.url())),
        None => Ok(ExitCode::SUCCESS),
    }
}

/// The holder a feed names, if it is running and has not closed the journal.
fn live_holder(path: &Path) -> Option<(u32, String)> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut lines = text.lines();
    let Some(journal::FeedLine::Header { pid, by, .. }) = journal::parse_feed_line(lines.next()?)
    else {
        return None;
    };
    let closed = lines.any(|l| journal::parse_feed_line(l) == Some(journal::FeedLine::Closed));
    (!closed && process_alive(pid)).then_some((pid, by))
}

fn process_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The file's text from `offset` on, and its length.
fn read_from(path: &Path, offset: u64) -> (String, u64) {
    use std::io::{Read as _, Seek as _};
    let Ok(mut file) = std::fs::File::open(path) else {
        return (String::new(), 0);
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    if len < offset || file.seek(std::io::SeekFrom::Start(offset)).is_err() {
        return (String::new(), len);
    }
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    // Only whole UTF-8: a line being written is read again next time.
    let valid = match std::str::from_utf8(&bytes) {
        Ok(text) => text.len(),
        Err(e) => e.valid_up_to(),
    };
    bytes.truncate(valid);
    (String::from_utf8(bytes).unwrap_or_default(), len)
}

/// One event as a line for people.
fn event_line(run: RunId, record: &journal::Record) -> String {
    use journal::Event;
    let time = journal::human_time(record.at_ms);
    let time = time.get(11..19).unwrap_or(&time);
    let what = match &record.event {
        Event::RunStarted { kind, plan, by, .. } => format!(
            "run {run} ({}) started by {by}: {} steps",
            format!("{kind:?}").to_lowercase(),
            plan.len()
        ),
        Event::RunResumed { plan, by } => {
            format!("run {run} resumed by {by}: {} steps", plan.len())
        }
        Event::StepStarted { step, attempt, .. } => format!("{step}: attempt {attempt} started"),
        Event::StepIntent {
            step,
            effect,
            detail,
            ..
        } => format!("{step}: about to {effect} {}", outputs_text(detail)),
        Event::StepSucceeded {
            step,
            outputs,
            duration_ms,
            ..
        } => format!(
            "{step}: succeeded after {} {}",
            duration(*duration_ms),
            one_line(&outputs_text(outputs), 100)
        ),
        Event::StepFailed {
            step,
            error,
            retryable,
            ..
        } if *retryable && is_interruption(error) => format!("{step}: interrupted"),
        Event::StepFailed {
            step,
            error,
            retryable,
            ..
        } => format!(
            "{step}: failed ({}): {}",
            if *retryable { "retryable" } else { "permanent" },
            one_line(error, 160)
        ),
        Event::StepSkipped { step, because } => {
            format!("{step}: skipped because {because} failed")
        }
        Event::DriftDetected { steps, found } => format!(
            "drift: {}; done again: {}",
            one_line(&found.join("; "), 160),
            one_line(
                &steps
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                160
            )
        ),
        Event::AssetsResealed { .. } => {
            crate::team::resealed_text(&record.event).unwrap_or_default()
        }
        Event::RunEnded { outcome } => format!("run {run} ended: {}", outcome_word(outcome)),
    };
    format!("{time} {what}")
}

fn outcome_word(outcome: &RunOutcome) -> String {
    match outcome {
        RunOutcome::Succeeded => "succeeded".into(),
        RunOutcome::Interrupted => "interrupted (resumable)".into(),
        RunOutcome::Failed { failed, skipped } => format!(
            "failed: {} failed, {} skipped (resumable)",
            failed.len(),
            skipped.len()
        ),
    }
}
