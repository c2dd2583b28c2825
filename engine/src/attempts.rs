//! The attempts of one step in one run: each journaled before and after, retried with
//! backoff under the step's retry policy, in the step's resource class, in its own task.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use journal::{Digest, Event, Intent, Journal, JournalError, Outputs, RunId, StepId};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::limit::ClassLimit;
use crate::observe::{Notice, NoticeKind, Observer};
use crate::step::{Action, ClassSlot, StepContext, StepDef, StepError};

/// How one step's attempts ended in this run.
pub(crate) enum StepEnd {
    Succeeded(Outputs),
    Failed(String),
    Interrupted,
    /// Cancelled before its first attempt started; nothing was journaled for it.
    NotStarted,
    Journal(JournalError),
}

/// The attempts of one step in one run, with retries; runs in its own task.
pub(crate) struct Attempts {
    /// The step's recorded outputs from an earlier success with other inputs (an update
    /// reconciles against what it made), if any.
    pub(crate) recorded: Option<Arc<Outputs>>,
    pub(crate) journal: Arc<Journal>,
    pub(crate) observer: Arc<dyn Observer>,
    pub(crate) run: RunId,
    pub(crate) cancel: CancellationToken,
    /// The step as the DAG declares it (data: id, params, retry policy, invalidations).
    pub(crate) step: StepDef,
    /// The action bound to the step's kind for this run.
    pub(crate) action: Arc<dyn Action>,
    /// The step's params, shared by its attempts' contexts.
    pub(crate) params: Arc<Value>,
    /// The effective inputs digest (own inputs plus dependencies' outputs), journaled with
    /// every attempt and its success.
    pub(crate) digest: Digest,
    /// The outputs of the step's dependencies, by step id.
    pub(crate) deps: Arc<BTreeMap<StepId, Outputs>>,
    /// Intents of earlier attempts that recorded no outcome: what a crash may have left done.
    pub(crate) previous_intents: Arc<Vec<Intent>>,
    /// The attempt number of the first attempt in this run (numbers count over the cluster's
    /// life).
    pub(crate) first_attempt: u32,
    /// The step's resource class limit; an attempt holds a place in it while it works.
    pub(crate) class_limit: Arc<ClassLimit>,
    /// The step's declaration order, which orders it among the class's waiters.
    pub(crate) priority: usize,
    /// Cancelled once nothing in the run needs this step any more.
    pub(crate) moot: CancellationToken,
}

impl Attempts {
    pub(crate) async fn run(self) -> StepEnd {
        match self.attempts().await {
            Ok(end) => end,
            Err(e) => StepEnd::Journal(e),
        }
    }

    async fn attempts(&self) -> Result<StepEnd, JournalError> {
        let policy = &self.step.retry;
        let mut backoff = policy.backoff();
        let began = Instant::now();
        let mut attempt = self.first_attempt;
        let mut counted = 0;
        // Answers that asked to wait (Retry-After): said when the step gives up, as a server that
        // paced it until `max_elapsed` is not a step that failed.
        let mut paced = 0;
        loop {
            let permit = tokio::select! {
                permit = self.class_limit.acquire(self.priority) => permit,
                () = self.cancel.cancelled() => {
                    return Ok(if attempt == self.first_attempt {
                        StepEnd::NotStarted
                    } else {
                        StepEnd::Interrupted
                    });
                }
            };
            self.record(Event::StepStarted {
                step: self.step.id.clone(),
                attempt,
                inputs_digest: self.digest,
            })
            .await?;
            self.notice(NoticeKind::Started { attempt });
            let t0 = Instant::now();
            let slot = Arc::new(ClassSlot::holding(
                Arc::clone(&self.class_limit),
                self.priority,
                permit,
            ));
            let result = self.attempt(attempt, Arc::clone(&slot)).await;
            slot.release();
            // Outputs refused their secrets' shapes when the step built them; the values the
            // run knows (its tokens and keys) only the journal's redactor can refuse.
            let result = result.and_then(|outputs| {
                self.journal
                    .redactor()
                    .check_outputs(&outputs)
                    .map_err(StepError::from)?;
                Ok(outputs)
            });
            let duration = t0.elapsed();
            let duration_ms = duration.as_millis() as u64;
            let error = match result {
                Ok(outputs) => {
                    self.record(Event::StepSucceeded {
                        step: self.step.id.clone(),
                        attempt,
                        inputs_digest: self.digest,
                        outputs: outputs.clone(),
                        duration_ms,
                        invalidates: self.step.invalidates.clone(),
                    })
                    .await?;
                    self.notice(NoticeKind::Succeeded { attempt, duration });
                    return Ok(StepEnd::Succeeded(outputs));
                }
                Err(error) => error,
            };
            let retryable = !matches!(error, StepError::Permanent { .. });
            let message = self.journal.redactor().redact(&error.to_string());
            self.record(Event::StepFailed {
                step: self.step.id.clone(),
                attempt,
                error: message.clone(),
                retryable,
                duration_ms,
            })
            .await?;
            let after = match error {
                StepError::Interrupted => return Ok(StepEnd::Interrupted),
                StepError::Permanent { .. } => {
                    self.notice(NoticeKind::Failed {
                        attempt,
                        error: message.clone(),
                    });
                    return Ok(StepEnd::Failed(message));
                }
                StepError::Retryable { after, .. } => after,
            };
            // A Retry-After is the server pacing us, not the step failing: it does not use up
            // max_attempts (a burst of 429s would), only max_elapsed.
            match after {
                None => counted += 1,
                Some(_) => paced += 1,
            }
            let tries = counted;
            let out_of_time = policy.max_elapsed.is_some_and(|max| began.elapsed() >= max);
            if tries >= policy.max_attempts || out_of_time {
                let why = if out_of_time {
                    let waits = match paced {
                        0 => String::new(),
                        n => format!(", {n} more answered \"retry later\""),
                    };
                    format!(
                        "gave up after {:.0?} ({tries} attempts failed{waits})",
                        began.elapsed()
                    )
                } else {
                    format!("gave up after {tries} attempts")
                };
                let message = format!("{message} ({why})");
                self.notice(NoticeKind::Failed {
                    attempt,
                    error: message.clone(),
                });
                return Ok(StepEnd::Failed(message));
            }
            let delay = backoff.next_delay(after);
            self.notice(NoticeKind::Retrying {
                attempt,
                error: message.clone(),
                delay,
            });
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.cancel.cancelled() => return Ok(StepEnd::Interrupted),
                () = self.moot.cancelled() => {
                    let message = format!(
                        "{message} (not retried: every step that needs it was skipped)"
                    );
                    self.notice(NoticeKind::Failed {
                        attempt,
                        error: message.clone(),
                    });
                    return Ok(StepEnd::Failed(message));
                }
            }
            attempt += 1;
        }
    }

    /// Appends `event` to the run.
    async fn record(&self, event: Event) -> Result<(), JournalError> {
        self.journal.append(self.run, event).await.map(drop)
    }

    /// One attempt, in its own task so that a panicking step fails itself, not the engine.
    async fn attempt(&self, attempt: u32, slot: Arc<ClassSlot>) -> Result<Outputs, StepError> {
        let ctx = StepContext {
            slot,
            id: self.step.id.clone(),
            params: Arc::clone(&self.params),
            run: self.run,
            attempt,
            journal: Arc::clone(&self.journal),
            deps: Arc::clone(&self.deps),
            previous_intents: Arc::clone(&self.previous_intents),
            recorded: self.recorded.clone(),
            cancel: self.cancel.clone(),
            observer: Arc::clone(&self.observer),
        };
        let future = self.action.run(ctx);
        match tokio::spawn(future).await {
            Ok(result) => result,
            Err(e) if e.is_panic() => Err(StepError::permanent(format!(
                "step {} panicked: {}",
                self.step.id,
                panic_message(e.into_panic())
            ))),
            Err(_) => Err(StepError::Interrupted),
        }
    }

    fn notice(&self, kind: NoticeKind) {
        self.observer.notice(&Notice {
            step: self.step.id.clone(),
            kind,
        });
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_owned())
}
