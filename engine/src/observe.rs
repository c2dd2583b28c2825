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
    /// The step changed an outside resource (created a device, sent its delete): a progress
    /// message for people, with what happened typed for observers that count or time such
    /// changes (the benchmark's timeline), so that none reads the message.
    Milestone {
        milestone: Milestone,
        message: String,
    },
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

/// A change a step made to an outside resource, as [`NoticeKind::Milestone`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Milestone {
    /// The kind of resource, as the step that changed it names it (`device`).
    pub resource: &'static str,
    /// What happened to it.
    pub change: Change,
}

/// What happened to a resource in a [`Milestone`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// The provider accepted its create call.
    Created,
    /// The provider accepted its delete call (the resource may still be going away).
    DeleteSent,
}

impl Milestone {
    /// A `resource` was created.
    pub const fn created(resource: &'static str) -> Milestone {
        Milestone {
            resource,
            change: Change::Created,
        }
    }

    /// A `resource`'s delete was sent.
    pub const fn delete_sent(resource: &'static str) -> Milestone {
        Milestone {
            resource,
            change: Change::DeleteSent,
        }
    }
}

/// `device created`, `device delete sent`: the milestone's name in reports and JSON events.
impl std::fmt::Display for Milestone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let change = match self.change {
            Change::Created => "created",
            Change::DeleteSent => "delete sent",
        };
        write!(f, "{} {change}", self.resource)
    }
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
