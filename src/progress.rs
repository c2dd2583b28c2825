//! What a run prints while it goes: on a terminal, a progress line of phases and counts
//! (`devices 37/100 active`, elapsed, retries) with the noteworthy transitions above it;
//! otherwise one plain line per step transition, or with `--json` one JSON object per event.
//! Everything printed goes through the journal's redactor.

use std::collections::BTreeMap;
use std::io::{IsTerminal as _, Write as _};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use engine::{Notice, NoticeKind, Observer};
use journal::{RunId, redact};
use serde_json::json;

/// Prints notices to stdout.
pub struct Printer {
    json: bool,
    start: Instant,
    /// Serializes lines from the engine's tasks.
    out: Mutex<()>,
    /// On a terminal (and not `--json`): the progress line and its counts.
    live: Option<Live>,
}

/// The terminal's progress line.
struct Live {
    bar: ProgressBar,
    counts: Mutex<Counts>,
}

/// Steps per phase (the part of the step id before `/`): planned and finished, and retries.
#[derive(Default)]
struct Counts {
    planned: BTreeMap<String, usize>,
    done: BTreeMap<String, usize>,
    retries: usize,
}

impl Counts {
    fn summary(&self) -> String {
        // The phases still going, and always the devices: a line that fits a terminal.
        let mut parts: Vec<String> = self
            .planned
            .iter()
            .filter(|(phase, total)| {
                phase.as_str() == "device" || self.done.get(*phase).copied().unwrap_or(0) < **total
            })
            .map(|(phase, total)| {
                let done = self.done.get(phase).copied().unwrap_or(0);
                let label = match phase.as_str() {
                    "device" => "devices".to_owned(),
                    "ignition" => "ignition".to_owned(),
                    other => other.to_owned(),
                };
                let state = if phase == "device" { " active" } else { "" };
                format!("{label} {done}/{total}{state}")
            })
            .collect();
        if self.retries > 0 {
            parts.push(format!("retries {}", self.retries));
        }
        parts.join(" · ")
    }
}

fn phase(step: &str) -> &str {
    step.split('/').next().unwrap_or(step)
}

impl Printer {
    /// A printer for a run of the steps `plan`; the progress line only on a terminal.
    pub fn new(json: bool, plan: &[journal::StepId]) -> Printer {
        let live = (!json && std::io::stdout().is_terminal()).then(|| {
            let mut counts = Counts::default();
            for step in plan {
                *counts
                    .planned
                    .entry(phase(step.as_str()).to_owned())
                    .or_default() += 1;
            }
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar.set_message(counts.summary());
            Live {
                bar,
                counts: Mutex::new(counts),
            }
        });
        Printer {
            json,
            start: Instant::now(),
            out: Mutex::new(()),
            live,
        }
    }

    fn line(&self, text: &str) {
        let text = redact(text);
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
        let phase = phase(notice.step.as_str());
        let per_node = matches!(
            phase,
            "ignition" | "device" | "delete-device" | "etcd-secrets"
        );
        let Ok(mut counts) = live.counts.lock() else {
            return false;
        };
        let routine = match &notice.kind {
            NoticeKind::Reused | NoticeKind::Succeeded { .. } => {
                *counts.done.entry(phase.to_owned()).or_default() += 1;
                per_node
            }
            NoticeKind::Retrying { .. } => {
                counts.retries += 1;
                false
            }
            NoticeKind::Started { attempt: 1 } | NoticeKind::Progress { .. } => per_node,
            _ => false,
        };
        live.bar.set_message(counts.summary());
        routine
    }

    /// Ends the progress line (before the run's summary is printed).
    pub fn finish(&self) {
        if let Some(live) = &self.live {
            live.bar.finish_and_clear();
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
        let step = notice.step.as_str();
        if self.json {
            let mut event = match &notice.kind {
                NoticeKind::Reused => json!({"event": "reused"}),
                NoticeKind::Started { attempt } => json!({"event": "started", "attempt": attempt}),
                NoticeKind::Progress { message } => {
                    json!({"event": "progress", "message": message})
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
            NoticeKind::Progress { message } => format!("{at} {step}: {message}"),
            NoticeKind::Retrying {
                attempt,
                error,
                delay,
            } => format!(
                "{at} {step}: attempt {attempt} failed, retrying in {:.1}s: {error}",
                delay.as_secs_f64()
            ),
            NoticeKind::Succeeded { duration, .. } => {
                format!("{at} {step}: done in {:.1}s", duration.as_secs_f64())
            }
            NoticeKind::Failed { error, .. } => format!("{at} {step}: FAILED: {error}"),
            NoticeKind::Skipped { because } => {
                format!("{at} {step}: skipped, because {because} failed")
            }
        };
        self.line(&text);
    }
}
