//! The feed: what the journal's holder publishes for readers that cannot open the journal while
//! it holds the lock (`loko journal SPEC --follow` during a run).
//!
//! sled allows one opener per database, and the journal one writer, so a reader cannot open the
//! journal of a running loko. Instead the holder appends every record, once it is durable, to
//! the file `feed` beside the store: a header line naming the holder, one line per record
//! (`{"run": R, "seq": S, "record": {"v": 1, "at_ms": …, "event": …}}`, the record's stored JSON,
//! so already redacted), and a last line `{"closed": true}` when it closes the journal. The
//! feed is rewritten by each holder and is derived data: the store stays the only truth, a
//! record is published only after the flush that made it durable, and a feed that cannot be
//! written costs the readers their view, never the run its journal.

use std::fs::File;
use std::io::Write as _;
use std::path::Path;
use std::sync::Mutex;

use serde::Deserialize;

use crate::event::Record;
use crate::ids::{RunId, Seq};

/// The feed's file name in the journal directory.
pub const FEED_FILE: &str = "feed";

/// The holder's side.
pub(crate) struct Feed {
    file: Mutex<Option<File>>,
    /// Records inserted into the store and not yet published.
    pending: Mutex<Vec<String>>,
}

impl Feed {
    /// Starts the feed of `dir` for this process (replacing a former holder's).
    pub(crate) fn start(dir: &Path, by: &str) -> Feed {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.join(FEED_FILE))
            .ok()
            .and_then(|mut f| {
                let header = serde_json::json!({"feed": 1, "pid": std::process::id(), "by": by});
                writeln!(f, "{header}").ok().map(|()| f)
            });
        Feed {
            file: Mutex::new(file),
            pending: Mutex::new(Vec::new()),
        }
    }

    /// No feed: for stores that readers can read while the journal is held (etcd).
    pub(crate) fn none() -> Feed {
        Feed {
            file: Mutex::new(None),
            pending: Mutex::new(Vec::new()),
        }
    }

    /// Queues a record just inserted into the store (`bytes` as stored: checksum, then JSON).
    pub(crate) fn queue(&self, run: RunId, seq: Seq, bytes: &[u8]) {
        if self.file.lock().map_or(true, |f| f.is_none()) {
            return;
        }
        let Some(json) = bytes.get(4..).and_then(|b| std::str::from_utf8(b).ok()) else {
            return;
        };
        if let Ok(mut pending) = self.pending.lock() {
            pending.push(format!(
                "{{\"run\":{},\"seq\":{},\"record\":{json}}}",
                run.0, seq.0
            ));
        }
    }

    /// The queued records; call before a flush, publish after it succeeded.
    pub(crate) fn take(&self) -> Vec<String> {
        self.pending
            .lock()
            .map(|mut p| std::mem::take(&mut *p))
            .unwrap_or_default()
    }

    /// Appends durable records to the file.
    pub(crate) fn publish(&self, lines: &[String]) {
        if lines.is_empty() {
            return;
        }
        if let Ok(mut file) = self.file.lock()
            && let Some(f) = file.as_mut()
        {
            let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
            if f.write_all(text.as_bytes()).is_err() {
                *file = None;
            }
        }
    }

    /// Marks the feed closed: its holder released the journal.
    pub(crate) fn close(&self) {
        self.publish(&["{\"closed\":true}".to_owned()]);
    }
}

/// One line of a feed, as a reader sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedLine {
    /// The first line: who holds the journal.
    Header { pid: u32, by: String },
    /// A durable record.
    Record {
        run: RunId,
        seq: Seq,
        record: Record,
    },
    /// The holder closed the journal.
    Closed,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Raw {
    Header { feed: u32, pid: u32, by: String },
    Record { run: u64, seq: u64, record: Record },
    Closed { closed: bool },
}

/// Parses a line of a feed; `None` for a line that is not one (a partial last line).
pub fn parse_feed_line(line: &str) -> Option<FeedLine> {
    match serde_json::from_str::<Raw>(line).ok()? {
        Raw::Header { feed: 1, pid, by } => Some(FeedLine::Header { pid, by }),
        Raw::Header { .. } => None,
        Raw::Record { run, seq, record } => Some(FeedLine::Record {
            run: RunId(run),
            seq: Seq(seq),
            record,
        }),
        Raw::Closed { closed: true } => Some(FeedLine::Closed),
        Raw::Closed { .. } => None,
    }
}

/// Follows an etcd journal as it is written (an etcd watch; see
/// [`crate::store::EtcdStore::follow`]): calls `each` with every record, from the first, until
/// it returns false. A record that cannot be decoded is passed as its error.
pub async fn follow_etcd(
    config: &crate::store::EtcdConfig,
    mut each: impl FnMut(RunId, Seq, Result<Record, crate::DecodeError>) -> bool,
) -> Result<(), crate::store::StoreError> {
    crate::store::EtcdStore::follow(config, |key, bytes| match crate::event::parse_key(&key) {
        Some((run, seq)) => each(run, seq, crate::event::decode(&bytes)),
        None => true,
    })
    .await
}
