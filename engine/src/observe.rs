//! What the engine tells its observers (progress bars, plain lines, JSON lines) while it runs.
//! Observers see every step transition as it happens; the journal is the durable record.

use std::time::Duration;

use journal::{RunId, StepId};

/// One thing that happened to a step.
#[derive(Clone, Debug, PartialEq)]
pub struct Notice {
    pub step: StepId,
    pub kind: NoticeKind,
}

/// The kinds of [`Notice`].
#[derive(Clone, Debug, PartialEq)]
pub enum NoticeKind {
    /// The run reused the step's recorded result (same inputs): nothing to do.
    Reused,
    /// An attempt started.
    Started { attempt: u32 },
    /// The step made progress in a long wait.
    Progress { message: String },
    /// An attempt failed and another follows after `delay`.
    Retrying {
        attempt: u32,
        error: String,
        delay: Duration,
    },
    /// The step succeeded.
    Succeeded { attempt: u32, duration: Duration },
    /// The step failed for good in this run.
    Failed { attempt: u32, error: String },
    /// The step was not run because a dependency failed.
    Skipped { because: StepId },
}

/// Receives notices. Called from the engine's tasks: keep it quick and non-blocking.
pub trait Observer: Send + Sync + 'static {
    /// A run began (`resumed`: it continues an unfinished run).
    fn run_started(&self, _run: RunId, _resumed: bool, _steps: usize) {}
    /// A step changed.
    fn notice(&self, notice: &Notice);
}

/// An observer that ignores everything.
pub struct Silent;

impl Observer for Silent {
    fn notice(&self, _notice: &Notice) {}
}
