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
//!
//! So that a reader can know the whole state, not only what happened since, the holder first
//! writes what it opened with: the stored snapshot its fold started from, as stored (so
//! nothing is encoded at open), to `feed.base` after an 8-byte tag that the header names, and
//! the stored records after that snapshot as the feed's first lines. The base plus the feed's
//! records is the journal's state as of the last published flush; [`crate::read_state`]
//! reads it that way (see there for its guarantees).

use std::fs::File;
use std::io::Write as _;
use std::path::Path;
use std::sync::Mutex;

use serde::Deserialize;

use crate::event::Record;
use crate::ids::{RunId, Seq};
use crate::store::Bytes;

/// The feed's file name in the journal directory.
pub const FEED_FILE: &str = "feed";

/// The file holding the fold the feed's holder opened with.
pub(crate) const BASE_FILE: &str = "feed.base";

/// The holder's side.
pub(crate) struct Feed {
    file: Mutex<Option<File>>,
    /// Records inserted into the store and not yet published.
    pending: Mutex<Vec<String>>,
}

impl Feed {
    /// Starts the feed of `dir` for this process (replacing a former holder's) with what it
    /// opened: `base`, the stored snapshot its fold started from (as stored; empty for none),
    /// and `records`, the stored records after it (as the fold read them). A reader folds them into the state this
    /// holder opened with; if they cannot all be read, the header names no base and readers
    /// open the journal themselves once it is free.
    pub(crate) fn start(
        dir: &Path,
        by: &str,
        base: &[u8],
        records: &[(RunId, Seq, Bytes)],
    ) -> Feed {
        let mut lines = String::new();
        let mut readable = true;
        for (run, seq, value) in records {
            match value.get(4..).map(std::str::from_utf8) {
                Some(Ok(json)) => {
                    lines.push_str(&record_line(*run, *seq, json));
                    lines.push('\n');
                }
                _ => {
                    readable = false;
                    break;
                }
            }
        }
        // The base goes first, whole (renamed into place), so that a header naming it is
        // never read before it.
        let tag = readable.then(|| write_base(dir, base).ok()).flatten();
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.join(FEED_FILE))
            .ok()
            .and_then(|mut f| {
                let mut header =
                    serde_json::json!({"feed": 1, "pid": std::process::id(), "by": by});
                if let Some(tag) = tag {
                    header["base"] = format!("{tag:016x}").into();
                }
                let text = match tag {
                    Some(_) => format!("{header}\n{lines}"),
                    None => format!("{header}\n"),
                };
                f.write_all(text.as_bytes()).ok().map(|()| f)
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
            pending.push(record_line(run, seq, json));
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

/// A record's line: its key and its stored JSON.
fn record_line(run: RunId, seq: Seq, json: &str) -> String {
    format!("{{\"run\":{},\"seq\":{},\"record\":{json}}}", run.0, seq.0)
}

/// Writes `base` under a fresh tag to the base file (through a temporary file and a rename)
/// and returns the tag.
fn write_base(dir: &Path, base: &[u8]) -> std::io::Result<u64> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    let tag = nanos ^ (u64::from(std::process::id()) << 32);
    let tmp = dir.join(format!("{BASE_FILE}.{}", std::process::id()));
    let mut file = File::create(&tmp)?;
    file.write_all(&tag.to_le_bytes())?;
    file.write_all(base)?;
    drop(file);
    std::fs::rename(&tmp, dir.join(BASE_FILE))?;
    Ok(tag)
}

/// The base named `tag`, if the base file holds it.
pub(crate) fn read_base(dir: &Path, tag: &str) -> Option<Vec<u8>> {
    let tag = u64::from_str_radix(tag, 16).ok()?;
    let bytes = std::fs::read(dir.join(BASE_FILE)).ok()?;
    let (stored, base) = bytes.split_at_checked(8)?;
    (u64::from_le_bytes(stored.try_into().ok()?) == tag).then(|| base.to_vec())
}

/// One line of a feed, as a reader sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedLine {
    /// The first line: who holds the journal, and the tag of the base it opened with.
    Header {
        pid: u32,
        by: String,
        base: Option<String>,
    },
    /// A durable record.
    Record {
        run: RunId,
        seq: Seq,
        record: Record,
    },
    /// The holder closed the journal.
    Closed,
}

/// Any line of a feed, its fields by name. Not an untagged enum: serde buffers such an enum's
/// content, and a record's spec is read as raw JSON text, which needs the JSON itself.
#[derive(Deserialize)]
struct Raw<'a> {
    feed: Option<u32>,
    pid: Option<u32>,
    by: Option<String>,
    base: Option<String>,
    run: Option<u64>,
    seq: Option<u64>,
    #[serde(borrow)]
    record: Option<&'a serde_json::value::RawValue>,
    closed: Option<bool>,
}

/// Parses a line of a feed; `None` for a line that is not one (a partial last line).
pub fn parse_feed_line(line: &str) -> Option<FeedLine> {
    let raw = serde_json::from_str::<Raw<'_>>(line).ok()?;
    match raw {
        Raw {
            feed: Some(1),
            pid: Some(pid),
            by: Some(by),
            base,
            ..
        } => Some(FeedLine::Header { pid, by, base }),
        Raw {
            run: Some(run),
            seq: Some(seq),
            record: Some(record),
            ..
        } => Some(FeedLine::Record {
            run: RunId(run),
            seq: Seq(seq),
            record: serde_json::from_str(record.get()).ok()?,
        }),
        Raw {
            closed: Some(true), ..
        } => Some(FeedLine::Closed),
        _ => None,
    }
}

/// Follows an etcd journal as it is written (an etcd watch; see
/// [`crate::store::EtcdStore::follow`]): calls `each` with every record, from the first, until
/// it returns false. A record that cannot be decoded is passed as its error.
pub async fn follow_etcd(
    config: &crate::store::EtcdConfig,
    mut each: impl FnMut(RunId, Seq, Result<Record, crate::event::DecodeError>) -> bool,
) -> Result<(), crate::store::StoreError> {
    crate::store::EtcdStore::follow(config, |key, bytes| match crate::event::parse_key(&key) {
        Some((run, seq)) => each(run, seq, crate::event::decode(&bytes)),
        None => true,
    })
    .await
}
