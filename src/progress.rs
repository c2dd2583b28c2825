//! What a run prints while it goes: one plain line per step transition, or with `--json` one
//! JSON object per event. Everything printed goes through the journal's redactor.

use std::io::Write as _;
use std::sync::Mutex;
use std::time::Instant;

use engine::{Notice, NoticeKind, Observer};
use journal::{RunId, redact};
use serde_json::json;

/// Prints notices to stdout.
pub struct Printer {
    json: bool,
    start: Instant,
    /// Serializes lines from the engine's tasks.
    out: Mutex<()>,
}

impl Printer {
    pub fn new(json: bool) -> Printer {
        Printer {
            json,
            start: Instant::now(),
            out: Mutex::new(()),
        }
    }

    fn line(&self, text: &str) {
        let _guard = self.out.lock();
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{}", redact(text));
        let _ = stdout.flush();
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
