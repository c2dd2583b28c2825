//! Reading a journal's state without holding it: what `loko plan`, `loko graph` and
//! `loko status` do, even while a `loko run` holds the journal.
//!
//! sled admits one opener, so a reader cannot open the store of a running loko, and a reader
//! that took the lock, even briefly, could make a `loko run` starting at that moment fail. So a
//! reader reads what the last holder published (see [`crate::feed`]): the stored snapshot it
//! opened with (`feed.base`), the stored records after it, and every record it made durable
//! since (`feed`). Folded together, with each
//! record checked by [`ClusterState::admits`] as an open checks it, they are the journal's
//! state:
//!
//! - while the holder runs: as of its last flush (a record is published only after the flush
//!   that made it durable), so the view never shows what a crash could undo, and lags the
//!   holder by at most one group commit;
//! - once the holder closed the journal (`{"closed": true}`): exactly the journal's state,
//!   since nothing changes the journal without holding it.
//!
//! Only when the feed cannot stand for the journal (no journal opened by this version since,
//! a holder that died without closing, a damaged base) does the reader open the journal
//! itself, which takes the lock for the time of the fold, and publishes a feed that later
//! readers use. A reader never creates a journal: a directory without one reads as empty.

use std::path::Path;
use std::time::Duration;

use crate::error::JournalError;
use crate::feed::{self, FEED_FILE, FeedLine, parse_feed_line};
use crate::fold::ClusterState;
use crate::journal::Journal;
use crate::snapshot;

/// A journal's state as a reader sees it.
#[derive(Debug, Clone)]
pub struct JournalView {
    pub state: ClusterState,
    /// The loko holding the journal while it was read (`pid N on host`), if one was: the
    /// state is as of its last flush.
    pub live_holder: Option<String>,
}

/// Tries of the feed before giving up on a holder that is between its lock and its feed.
const TRIES: u32 = 20;

/// The state of the journal in `dir`, without holding it while another loko does; see the
/// module docs for what the state is.
pub fn read_state(dir: &Path) -> Result<JournalView, JournalError> {
    if !dir.join("events").exists() {
        return Ok(JournalView {
            state: ClusterState::default(),
            live_holder: None,
        });
    }
    let mut last_error = None;
    for _ in 0..TRIES {
        match from_feed(dir) {
            FeedRead::View(view) => return Ok(view),
            FeedRead::Unusable => {}
        }
        // No usable feed: open the journal, unless its holder is still preparing its feed.
        match Journal::open(dir) {
            Ok(journal) => {
                return Ok(JournalView {
                    state: journal.state(),
                    live_holder: None,
                });
            }
            Err(e @ JournalError::Locked { .. }) => last_error = Some(e),
            Err(e) => return Err(e),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(last_error.unwrap_or_else(|| JournalError::Io {
        path: dir.to_owned(),
        source: std::io::Error::other("the journal's feed could not be read"),
    }))
}

enum FeedRead {
    View(JournalView),
    Unusable,
}

/// The base and records of the feed, if they stand for the journal: a base is named and
/// found, and the holder closed the journal or is running.
fn from_feed(dir: &Path) -> FeedRead {
    let Ok(text) = std::fs::read_to_string(dir.join(FEED_FILE)) else {
        return FeedRead::Unusable;
    };
    let mut lines = text.lines();
    let Some(FeedLine::Header {
        pid,
        by,
        base: Some(tag),
    }) = lines.next().and_then(parse_feed_line)
    else {
        return FeedRead::Unusable;
    };
    let Some(base) = feed::read_base(dir, &tag) else {
        return FeedRead::Unusable;
    };
    // An empty base: the holder's fold started from no snapshot.
    let mut state = if base.is_empty() {
        ClusterState::default()
    } else {
        let Ok(snap) = snapshot::decode(&base) else {
            return FeedRead::Unusable;
        };
        snap.cluster
    };
    let mut closed = false;
    for line in lines {
        match parse_feed_line(line) {
            Some(FeedLine::Record { run, seq, record }) => {
                if state.admits(run, &record.event).is_err() {
                    return FeedRead::Unusable;
                }
                state.apply_admitted(run, seq, record);
            }
            Some(FeedLine::Closed) => closed = true,
            // A partial last line: the holder is writing it.
            Some(FeedLine::Header { .. }) | None => {}
        }
    }
    if closed {
        return FeedRead::View(JournalView {
            state,
            live_holder: None,
        });
    }
    if process_alive(pid) {
        return FeedRead::View(JournalView {
            state,
            live_holder: Some(by),
        });
    }
    // The holder died without closing: its last flush may not be published.
    FeedRead::Unusable
}

/// True if process `pid` exists (on this host, where the feed's holder ran).
pub(crate) fn process_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, RunKind};
    use crate::ids::{Digest, StepId};
    use crate::secrets::Outputs;

    /// With snapshots every 16 events (in unit tests), the holder opens from a stored
    /// snapshot: its base is that snapshot, and the reader still sees the whole state.
    #[tokio::test]
    async fn a_reader_sees_the_state_of_a_holder_that_opened_from_a_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let append_steps = |j: Journal, from: u32| async move {
            let run = j.state().last_run().map(|r| r.id);
            let run = match run {
                Some(run) => run,
                None => j
                    .begin_run(
                        RunKind::Apply,
                        Digest::of(b"s"),
                        serde_json::json!({}),
                        vec![],
                    )
                    .await
                    .unwrap(),
            };
            for n in from..from + 12 {
                let step = StepId::new(format!("s/{n}")).unwrap();
                j.append(
                    run,
                    Event::StepStarted {
                        step: step.clone(),
                        attempt: 1,
                        inputs_digest: Digest::of(b"i"),
                    },
                )
                .await
                .unwrap();
                j.append(
                    run,
                    Event::StepSucceeded {
                        step,
                        attempt: 1,
                        inputs_digest: Digest::of(b"i"),
                        outputs: Outputs::new(),
                        duration_ms: 1,
                        invalidates: vec![],
                    },
                )
                .await
                .unwrap();
            }
            j
        };
        drop(append_steps(Journal::open(dir.path()).unwrap(), 0).await);
        let holder = append_steps(Journal::open(dir.path()).unwrap(), 12).await;
        let base = std::fs::read(dir.path().join(feed::BASE_FILE)).unwrap();
        assert!(base.len() > 8, "the holder opened from a stored snapshot");
        let view = read_state(dir.path()).unwrap();
        assert_eq!(view.state, holder.state());
        assert_eq!(view.state.ledger.len(), 24);
        assert!(view.live_holder.is_some());
    }
}
