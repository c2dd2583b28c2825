//! Event builders for the tests and benchmarks of every crate (feature `testing`): one way to
//! write a journal by hand, so that each test states only what differs (the step, the
//! attempt, the outputs or the error).

use crate::event::Event;
use crate::ids::{Digest, StepId};
use crate::secrets::Outputs;

/// The inputs digest the builders record: the step's name, so that two steps' attempts never
/// share one by accident.
pub fn inputs_of(step: &StepId) -> Digest {
    Digest::of(step.as_str().as_bytes())
}

/// `step`'s `attempt` began.
pub fn started(step: &StepId, attempt: u32) -> Event {
    Event::StepStarted {
        step: step.clone(),
        attempt,
        inputs_digest: inputs_of(step),
    }
}

/// `step`'s `attempt` succeeded with `outputs`, after `duration_ms`.
pub fn succeeded(step: &StepId, attempt: u32, outputs: Outputs, duration_ms: u64) -> Event {
    Event::StepSucceeded {
        step: step.clone(),
        attempt,
        inputs_digest: inputs_of(step),
        outputs,
        duration_ms,
        invalidates: vec![],
    }
}

/// `step`'s `attempt` failed with `error`, after `duration_ms`.
pub fn failed(
    step: &StepId,
    attempt: u32,
    error: &str,
    retryable: bool,
    duration_ms: u64,
) -> Event {
    Event::StepFailed {
        step: step.clone(),
        attempt,
        error: error.to_owned(),
        retryable,
        duration_ms,
    }
}
