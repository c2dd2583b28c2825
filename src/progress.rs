//! What a run prints while it goes: on a terminal, a progress line of phases and counts
//! (`devices 37/100 active`, elapsed, retries) with the noteworthy transitions above it;
//! otherwise one plain line per step transition, or with `--json` one JSON object per event.
//! Everything printed goes through the run's redactor.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{IsTerminal as _, Write as _};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use engine::{Notice, NoticeKind, Observer};
use journal::{Redactor, RunId};
use serde_json::json;
use steps::step_name::StepName;

use crate::notices::{Tally, phase, read};

/// Prints notices to stdout.
pub struct Printer {
    json: bool,
    start: Instant,
    /// Serializes lines from the engine's tasks.
    out: Mutex<()>,
    /// The steps in flight (started, not yet ended), for the progress line and the message of
    /// an interrupt.
    in_flight: Mutex<BTreeSet<String>>,
    /// On a terminal (and not `--json`): the progress line and its counts.
    live: Option<Live>,
    /// Every line passes through it (the run journal's).
    redactor: Redactor,
}

/// The progress line of the terminal, while a run draws one: log lines are printed above it
/// (see [`suspended`]) rather than through it.
static BAR: OnceLock<Mutex<Option<ProgressBar>>> = OnceLock::new();

/// Runs `f` with the progress line cleared, and draws it again after; for anything else
/// written to the terminal (a warning), so that no stale copy of the line is left behind.
pub fn suspended<R>(f: impl FnOnce() -> R) -> R {
    let bar = BAR
        .get()
        .and_then(|b| b.lock().ok().and_then(|b| b.clone()));
    match bar {
        Some(bar) => bar.suspend(f),
        None => f(),
    }
}

/// The terminal's progress line.
struct Live {
    bar: ProgressBar,
    counts: Mutex<Counts>,
}

/// Steps per phase (the family of the step, [`StepName::family`]): planned and finished, and retries.
#[derive(Default)]
struct Counts {
    planned: BTreeMap<String, usize>,
    done: BTreeMap<String, usize>,
    retries: usize,
}

impl Counts {
    /// All steps done of planned, then every phase under way with its counts (`done/planned`,
    /// and how many are running; the devices always), then the steps in flight by name, as many
    /// as the terminal's width allows.
    fn summary(&self, in_flight: &BTreeSet<String>) -> String {
        let total: usize = self.planned.values().sum();
        let done: usize = self.done.values().sum();
        let mut parts = vec![format!("steps {done}/{total}")];
        parts.extend(self.planned.iter().filter_map(|(phase, total)| {
            let done = self.done.get(phase).copied().unwrap_or(0);
            let running = in_flight
                .iter()
                .filter(|s| self::phase(s) == *phase)
                .count();
            let under_way = running > 0 || (done > 0 && done < *total);
            if !under_way && phase != "device" {
                return None;
            }
            let label = match phase.as_str() {
                "device" => "devices".to_owned(),
                other => other.to_owned(),
            };
            Some(match running {
                0 => format!("{label} {done}/{total}"),
                n => format!("{label} {done}/{total} ({n} running)"),
            })
        }));
        if self.retries > 0 {
            parts.push(format!("retries {}", self.retries));
        }
        let mut line = parts.join(" · ");
        // The spinner and the elapsed time take 14 columns; a line that wraps would be drawn
        // over several, so the counts come first and the names get what is left.
        let room = terminal_width().saturating_sub(14);
        if !in_flight.is_empty() {
            let width = room.saturating_sub(line.chars().count() + " · running: ".len());
            if width >= 20 {
                line.push_str(" · running: ");
                line.push_str(&names_within(in_flight, width));
            }
        }
        line
    }
}

/// The width in columns of the terminal the progress line is drawn on: `COLUMNS` when set (the
/// usual override), else the terminal's own (stderr's).
fn terminal_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| usize::from(console::Term::stderr().size().1))
        .max(40)
}

/// The names, comma-separated, as many as fit in `width` characters, then how many more.
fn names_within(names: &BTreeSet<String>, width: usize) -> String {
    let mut text = String::new();
    for (shown, name) in names.iter().enumerate() {
        let more = format!(" +{} more", names.len() - shown);
        if !text.is_empty() && text.len() + name.len() + 2 + more.len() > width {
            return text + &more;
        }
        if !text.is_empty() {
            text.push_str(", ");
        }
        text.push_str(name);
    }
    text
}

impl Printer {
    /// A printer for a run of `steps`, redacting with `redactor`; the progress line only on a
    /// terminal.
    pub fn new(json: bool, steps: &[journal::StepId], redactor: Redactor) -> Printer {
        let live = (!json && std::io::stdout().is_terminal()).then(|| {
            let mut counts = Counts::default();
            for step in steps {
                *counts.planned.entry(phase(step.as_str())).or_default() += 1;
            }
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar.set_message(counts.summary(&BTreeSet::new()));
            if let Ok(mut current) = BAR.get_or_init(|| Mutex::new(None)).lock() {
                *current = Some(bar.clone());
            }
            Live {
                bar,
                counts: Mutex::new(counts),
            }
        });
        Printer {
            json,
            start: Instant::now(),
            out: Mutex::new(()),
            in_flight: Mutex::new(BTreeSet::new()),
            live,
            redactor,
        }
    }

    /// The steps in flight now.
    pub fn in_flight(&self) -> Vec<String> {
        self.in_flight
            .lock()
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Keeps the set of steps in flight.
    fn track(&self, notice: &Notice) {
        let Ok(mut in_flight) = self.in_flight.lock() else {
            return;
        };
        let step = notice.step.as_str().to_owned();
        match read(notice).1 {
            Tally::Started { .. } => {
                in_flight.insert(step);
            }
            Tally::Done { reused: false } | Tally::Ended => {
                in_flight.remove(&step);
            }
            Tally::Done { reused: true }
            | Tally::Retrying
            | Tally::Milestone(_)
            | Tally::Waiting => {}
        }
    }

    /// With `--json`, the last event of a run: how it ended (also when there was nothing to
    /// do), so a reader knows the stream is complete.
    pub fn ended(&self, run: Option<RunId>, outcome: &engine::Outcome) {
        if !self.json {
            return;
        }
        let mut event = json!({"event": "run_ended", "run": run.map(|r| r.0),
                               "elapsed_ms": self.start.elapsed().as_millis() as u64});
        match outcome {
            engine::Outcome::UpToDate => event["outcome"] = json!("up_to_date"),
            engine::Outcome::Succeeded => event["outcome"] = json!("succeeded"),
            engine::Outcome::Interrupted => event["outcome"] = json!("interrupted"),
            engine::Outcome::Failed { failed, skipped } => {
                event["outcome"] = json!("failed");
                event["failed"] = json!(
                    failed
                        .iter()
                        .map(|(step, error)| json!({"step": step.as_str(), "error": error}))
                        .collect::<Vec<_>>()
                );
                event["skipped"] = json!(skipped.len());
            }
        }
        self.line(&event.to_string());
    }

    fn line(&self, text: &str) {
        let text = self.redactor.redact(text);
        if let Some(live) = &self.live {
            live.bar.println(text);
            return;
        }
        let _guard = self.out.lock();
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{text}");
        let _ = stdout.flush();
    }

    /// Updates the progress line; true when the notice is routine and needs no line of its
    /// own on a terminal (a thousand devices starting and finishing would scroll away what
    /// matters: retries, failures, the cluster-wide steps).
    fn count(&self, notice: &Notice) -> bool {
        let Some(live) = &self.live else {
            return false;
        };
        let (phase, tally) = read(notice);
        let name = StepName::from(&notice.step);
        // A drain is about one node too, but it moves workloads: its lines are not routine.
        let per_node = name.host().is_some() && !matches!(name, StepName::Drain(_));
        let Ok(mut counts) = live.counts.lock() else {
            return false;
        };
        let routine = match tally {
            Tally::Done { .. } => {
                *counts.done.entry(phase.to_owned()).or_default() += 1;
                per_node
            }
            Tally::Retrying => {
                counts.retries += 1;
                false
            }
            Tally::Started { attempt: 1 } | Tally::Waiting | Tally::Milestone(_) => per_node,
            Tally::Started { .. } | Tally::Ended => false,
        };
        let in_flight = self.in_flight.lock().map(|s| s.clone()).unwrap_or_default();
        live.bar.set_message(counts.summary(&in_flight));
        routine
    }

    /// Ends the progress line (before the run's summary is printed).
    pub fn finish(&self) {
        if let Some(live) = &self.live {
            live.bar.finish_and_clear();
            if let Some(Ok(mut current)) = BAR.get().map(|b| b.lock()) {
                *current = None;
            }
        }
    }

    fn elapsed(&self) -> String {
        let secs = self.start.elapsed().as_secs_f64();
        format!("[{secs:7.1}s]")
    }
}

impl Observer for Printer {
    fn run_started(&self, run: RunId, resumed: bool, steps: usize) {
        if self.json {
            self.line(
                &json!({"event": "run_started", "run": run.0, "resumed": resumed, "steps": steps})
                    .to_string(),
            );
        } else if resumed {
            self.line(&format!(
                "resuming run {run} where it stopped ({steps} steps; finished ones are not run again)"
            ));
        } else {
            self.line(&format!("run {run}: {steps} steps"));
        }
    }

    fn notice(&self, notice: &Notice) {
        self.track(notice);
        let step = notice.step.as_str();
        if self.json {
            let mut event = match &notice.kind {
                NoticeKind::Reused => json!({"event": "reused"}),
                NoticeKind::Started { attempt } => json!({"event": "started", "attempt": attempt}),
                NoticeKind::Progress { message } => {
                    json!({"event": "progress", "message": message})
                }
                // A progress line for a person, with the milestone named for a program.
                NoticeKind::Milestone { milestone, message } => {
                    json!({"event": "progress", "message": message,
                           "milestone": milestone.to_string()})
                }
                NoticeKind::Retrying {
                    attempt,
                    error,
                    delay,
                } => json!({"event": "retrying", "attempt": attempt, "error": error,
                            "delay_ms": delay.as_millis() as u64}),
                NoticeKind::Succeeded { attempt, duration } => {
                    json!({"event": "succeeded", "attempt": attempt,
                           "duration_ms": duration.as_millis() as u64})
                }
                NoticeKind::Failed { attempt, error } => {
                    json!({"event": "failed", "attempt": attempt, "error": error})
                }
                NoticeKind::Skipped { because } => {
                    json!({"event": "skipped", "because": because.as_str()})
                }
            };
            event["step"] = json!(step);
            event["elapsed_ms"] = json!(self.start.elapsed().as_millis() as u64);
            self.line(&event.to_string());
            return;
        }
        if self.count(notice) {
            return;
        }
        let at = self.elapsed();
        let text = match &notice.kind {
            // Reused steps are the normal case of a resume; one summary line says how many.
            NoticeKind::Reused => return,
            NoticeKind::Started { attempt: 1 } => format!("{at} {step}: started"),
            NoticeKind::Started { attempt } => format!("{at} {step}: attempt {attempt}"),
            NoticeKind::Progress { message } | NoticeKind::Milestone { message, .. } => {
                format!("{at} {step}: {message}")
            }
            NoticeKind::Retrying {
                attempt,
                error,
                delay,
            } => format!(
                "{at} {step}: attempt {attempt} {}, retrying in {:.1}s: {error}",
                console::style("failed").yellow(),
                delay.as_secs_f64()
            ),
            // Colour only where it tells the outcome apart; `console` leaves it out when stdout
            // is no terminal or NO_COLOR is set.
            NoticeKind::Succeeded { duration, .. } => format!(
                "{at} {step}: {} in {:.1}s",
                console::style("done").green(),
                duration.as_secs_f64()
            ),
            NoticeKind::Failed { error, .. } => {
                format!("{at} {step}: {}: {error}", console::style("FAILED").red())
            }
            NoticeKind::Skipped { because } => {
                format!("{at} {step}: skipped, because {because} failed")
            }
        };
        self.line(&text);
    }
}
