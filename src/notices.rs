//! One reading of the engine's notices for the observers that tally a run by phase: the
//! terminal's progress line ([`crate::progress`]) and the benchmark's timeline
//! ([`crate::bench_cmd`]). What a notice means for a count is decided here once, from its
//! kind; no observer reads the text of a message.

use engine::{Milestone, Notice, NoticeKind};
use steps::step_name::StepName;

/// The phase of a step: its family (`device` of `device/supernova-controller-0`, `assets` of
/// `assets/pki`), as [`StepName`] reads its id.
pub fn phase(step: &str) -> String {
    StepName::from(step).family().to_owned()
}

/// What a notice counts as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tally {
    /// An attempt started.
    Started { attempt: u32 },
    /// The step is done in this run: it succeeded (`reused`: its recorded result was reused,
    /// and nothing ran).
    Done { reused: bool },
    /// The step ended without success: it failed for good, or was skipped.
    Ended,
    /// An attempt failed and another follows.
    Retrying,
    /// The step changed an outside resource.
    Milestone(Milestone),
    /// The step is waiting and said how it goes.
    Waiting,
}

/// A notice's phase and what it counts as.
pub fn read(notice: &Notice) -> (String, Tally) {
    let tally = match &notice.kind {
        NoticeKind::Reused => Tally::Done { reused: true },
        NoticeKind::Started { attempt } => Tally::Started { attempt: *attempt },
        NoticeKind::Progress { .. } => Tally::Waiting,
        NoticeKind::Milestone { milestone, .. } => Tally::Milestone(*milestone),
        NoticeKind::Retrying { .. } => Tally::Retrying,
        NoticeKind::Succeeded { .. } => Tally::Done { reused: false },
        NoticeKind::Failed { .. } | NoticeKind::Skipped { .. } => Tally::Ended,
    };
    (phase(notice.step.as_str()), tally)
}
