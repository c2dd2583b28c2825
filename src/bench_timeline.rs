//! The benchmark's timeline of a run: when each phase began and ended and when the steps'
//! milestones happened, from the engine's notices as [`crate::notices`] reads them.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use crate::notices::{self, Tally};

/// When the phases of a run ended, for the benchmark's report: the last success of each kind
/// of step (`ignition`, `device`, `dns`, ...), in seconds since the run began, and the
/// milestones the steps report (`device created`, `device delete sent`).
pub struct Milestones(Mutex<Marks>);

struct Marks {
    start: Instant,
    at: BTreeMap<String, f64>,
    counts: BTreeMap<String, u64>,
}

impl Marks {
    /// Every this many calls of a kind, when the last of them went out: whether a thousand
    /// calls left in one burst or waited for the rate limit.
    const EVERY: u64 = 500;

    /// Notes one `what` at `at`: its first, its last and every [`Marks::EVERY`]th.
    fn call(&mut self, what: &str, at: f64) {
        self.at.entry(format!("{what} first")).or_insert(at);
        self.at.insert(what.to_owned(), at);
        let n = self.counts.entry(what.to_owned()).or_default();
        *n += 1;
        if n.is_multiple_of(Self::EVERY) {
            self.at.insert(format!("{what} #{n:04}"), at);
        }
    }

    /// Notes the first and the last time of `what`.
    fn span(&mut self, first: String, last: String, at: f64) {
        self.at.entry(first).or_insert(at);
        self.at.insert(last, at);
    }
}

impl Milestones {
    /// A timeline that starts now.
    pub fn new() -> Milestones {
        Milestones(Mutex::new(Marks {
            start: Instant::now(),
            at: BTreeMap::new(),
            counts: BTreeMap::new(),
        }))
    }

    /// Each mark's time, in seconds since the timeline started.
    pub fn phases(&self) -> BTreeMap<String, f64> {
        self.0.lock().map(|m| m.at.clone()).unwrap_or_default()
    }
}

impl engine::Observer for Milestones {
    fn notice(&self, notice: &engine::Notice) {
        let Ok(mut marks) = self.0.lock() else {
            return;
        };
        let at = marks.start.elapsed().as_secs_f64();
        match notices::read(notice) {
            (kind, Tally::Done { reused: false }) => {
                marks.span(format!("{kind} first"), kind.to_owned(), at)
            }
            (_, Tally::Milestone(milestone)) => marks.call(&milestone.to_string(), at),
            (kind, Tally::Started { .. }) => marks.span(
                format!("{kind} started first"),
                format!("{kind} started last"),
                at,
            ),
            (_, Tally::Done { reused: true } | Tally::Ended | Tally::Retrying | Tally::Waiting) => {
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::{Milestone, Notice, NoticeKind, Observer as _};
    use journal::StepId;

    fn notice(step: &str, kind: NoticeKind) -> Notice {
        Notice {
            step: StepId::new(step).unwrap(),
            kind,
        }
    }

    /// The timeline counts what a step reports as a milestone, whatever its message says, and
    /// no message alone, however it reads.
    #[test]
    fn the_timeline_counts_milestones_not_messages() {
        let milestones = Milestones::new();
        let step = "device/bench-pool0-worker-0";
        milestones.notice(&notice(
            step,
            NoticeKind::Milestone {
                milestone: Milestone::created("device"),
                message: "a device is on its way".to_owned(),
            },
        ));
        milestones.notice(&notice(
            step,
            NoticeKind::Progress {
                message: "deleting device d-1 (a look-alike)".to_owned(),
            },
        ));
        milestones.notice(&notice(
            "delete-device/bench-pool0",
            NoticeKind::Milestone {
                milestone: Milestone::delete_sent("device"),
                message: "gone soon".to_owned(),
            },
        ));
        milestones.notice(&notice(
            step,
            NoticeKind::Succeeded {
                attempt: 1,
                duration: std::time::Duration::from_secs(1),
            },
        ));
        let keys: Vec<String> = milestones.phases().into_keys().collect();
        assert_eq!(
            keys,
            [
                "device",
                "device created",
                "device created first",
                "device delete sent",
                "device delete sent first",
                "device first",
            ],
        );
    }
}
