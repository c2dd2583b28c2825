//! The events of the journal and their versioned on-disk encoding.
//!
//! A record on disk is `crc32 (4 bytes, little endian) ++ JSON`, the JSON being
//! `{"v": 1, "at_ms": <unix ms>, "event": {"step_started": {...}}}` (externally tagged: serde
//! decodes that form without buffering, which keeps folding 100,000 events fast). JSON keeps the audit
//! readable with ordinary tools; the checksum catches a record that was damaged on disk but still
//! parses; the version lets a newer loko refuse (never misread) an older or newer layout.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::ids::{Digest, RunId, Seq, StepId};
use crate::secrets::{Outputs, Redactor};

/// The record layout this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// What a run does. Both kinds are journaled the same way; the kind is for the audit and for
/// callers that treat destroy specially (a destroy's success forgets earlier results).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    /// `loko run`: bring the cluster to the spec.
    Apply,
    /// `loko destroy`: remove everything the cluster owns.
    Destroy,
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum RunOutcome {
    /// Every step of the plan succeeded.
    Succeeded,
    /// Some steps failed permanently (or ran out of retries); their dependents were skipped.
    /// The run can be resumed.
    Failed {
        failed: Vec<StepId>,
        skipped: Vec<StepId>,
    },
    /// Stopped by the user (Ctrl-C) before every step ran. The run can be resumed.
    Interrupted,
}

/// One entry of the journal. Step events carry the attempt they belong to, counted from 1 over
/// the life of the cluster (a resumed run continues the count).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// A new run began.
    RunStarted {
        kind: RunKind,
        /// Digest of the desired state the run works towards.
        spec_digest: Digest,
        /// The desired state itself, for the audit and for diffing the next run's spec against
        /// it. Redacted on the way in like everything else.
        spec: RecordedSpec,
        /// The ids of every step of the plan, in a topological order.
        plan: Vec<StepId>,
        /// Who runs it: `pid@host`.
        by: String,
    },
    /// An unfinished run (crashed, failed or interrupted) was taken up again.
    RunResumed { plan: Vec<StepId>, by: String },
    /// An attempt of a step began; its side effects may follow.
    StepStarted {
        step: StepId,
        attempt: u32,
        inputs_digest: Digest,
    },
    /// Written and flushed before a side effect that is not idempotent by itself (a POST that
    /// creates a device), so a resumed attempt knows to look for its result before doing it again.
    StepIntent {
        step: StepId,
        attempt: u32,
        effect: String,
        detail: Outputs,
    },
    /// The attempt succeeded with these outputs. Outputs are not optional: a step cannot be
    /// recorded as done without saying what it produced.
    StepSucceeded {
        step: StepId,
        attempt: u32,
        inputs_digest: Digest,
        outputs: Outputs,
        duration_ms: u64,
        /// Steps whose earlier results this success makes stale (deleting a device invalidates
        /// the step that created it), so that a later run does them again.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        invalidates: Vec<StepId>,
    },
    /// The attempt failed. `retryable` failures may be followed by another attempt.
    StepFailed {
        step: StepId,
        attempt: u32,
        error: String,
        retryable: bool,
        duration_ms: u64,
    },
    /// The step was not run in this run because a step it depends on failed.
    StepSkipped { step: StepId, because: StepId },
    /// Before the run's steps, the cloud contradicted these steps' recorded results (a device
    /// the journal says exists is gone, a record is missing): their results are forgotten, so
    /// the run does them again. `found` says what was seen, one sentence each.
    DriftDetected {
        steps: Vec<StepId>,
        found: Vec<String>,
    },
    /// Before the run's steps, the cluster's stored assets were sealed again because the spec's
    /// recipients changed; they are stored with this run's first records. Public facts only:
    /// recipients are named by their public keys (`age1...`, or an SSH key's type and SHA256
    /// fingerprint), never a file, an identity or a private key.
    AssetsResealed {
        /// The digests of the recipient sets the files were sealed to before (hex SHA-256 of
        /// their sorted public keys, as the vault computes it; one per set found, usually one).
        from: Vec<String>,
        /// The digest of the recipients they are sealed to now.
        to: String,
        /// How many stored files were sealed again.
        files: u64,
        /// Recipients of the spec that the last run's spec did not name.
        added: Vec<String>,
        /// Recipients of the last run's spec that the spec no longer names: what is written
        /// from now on is not sealed to them.
        removed: Vec<String>,
    },
    /// The run ended.
    RunEnded { outcome: RunOutcome },
}

impl Event {
    /// The step an event is about, if any.
    pub fn step(&self) -> Option<&StepId> {
        match self {
            Event::StepStarted { step, .. }
            | Event::StepIntent { step, .. }
            | Event::StepSucceeded { step, .. }
            | Event::StepFailed { step, .. }
            | Event::StepSkipped { step, .. } => Some(step),
            Event::RunStarted { .. }
            | Event::RunResumed { .. }
            | Event::DriftDetected { .. }
            | Event::AssetsResealed { .. }
            | Event::RunEnded { .. } => None,
        }
    }
}

/// The desired state a run recorded, kept as its JSON text.
///
/// A journal holds one per run, and a cluster's is large (5,000 nodes, over a megabyte); parsed
/// into a tree on every open, a year of weekly runs cost hundreds of milliseconds of
/// allocation. A record is read with its spec as raw text (no tree is built), runs that repeat
/// a spec share the text, and readers parse the one they need ([`RecordedSpec::parse`]); an old
/// run's spec that this version of loko can no longer read costs only the reader that asks
/// for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedSpec(Arc<str>);

impl RecordedSpec {
    /// Whether two runs share one copy of the text (they do when the second repeated the
    /// first's spec).
    pub fn is_shared_with(&self, other: &RecordedSpec) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The spec of an event.
    pub fn of(value: &Value) -> RecordedSpec {
        RecordedSpec(Arc::from(value.to_string()))
    }

    pub(crate) fn from_text(text: &str) -> RecordedSpec {
        RecordedSpec(Arc::from(text))
    }

    /// The JSON text.
    pub fn text(&self) -> &str {
        &self.0
    }

    /// The spec as a JSON value.
    pub fn value(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_str(&self.0)
    }

    /// The spec as a typed value.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.0)
    }
}

impl Serialize for RecordedSpec {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Checked, not parsed: a raw value is written as the text it holds.
        let raw: &RawValue = serde_json::from_str(&self.0).map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for RecordedSpec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        Ok(RecordedSpec(Arc::from(raw.get())))
    }
}

/// An event with its time, as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The record layout version.
    pub v: u32,
    /// Wall-clock time of the append, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The event.
    pub event: Event,
}

/// Why a stored record could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("record is {0} bytes, shorter than its checksum")]
    Truncated(usize),
    #[error("checksum mismatch (stored {stored:08x}, computed {computed:08x})")]
    Checksum { stored: u32, computed: u32 },
    #[error("record is not a journal record: {0}")]
    NotJson(serde_json::Error),
    #[error("record has format version {0}; this loko reads version {FORMAT_VERSION}")]
    UnknownVersion(u64),
    #[error("record of version {FORMAT_VERSION} does not hold a known event: {0}")]
    BadEvent(serde_json::Error),
}

/// Encodes a record, redacting every string of the event on the way.
pub(crate) fn encode(
    at_ms: u64,
    event: &Event,
    redactor: &Redactor,
) -> Result<Vec<u8>, serde_json::Error> {
    let mut value = serde_json::to_value(Record {
        v: FORMAT_VERSION,
        at_ms,
        event: event.clone(),
    })?;
    redactor.redact_json(&mut value);
    Ok(framed(&serde_json::to_vec(&value)?))
}

/// The bytes before a framed value's body: its checksum.
pub(crate) const FRAME: usize = 4;

/// `crc32 (4 bytes, little endian) ++ body`: how records and snapshots are stored.
pub(crate) fn framed(body: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(FRAME + body.len());
    bytes.extend_from_slice(&[0; FRAME]);
    bytes.extend_from_slice(body);
    frame_in_place(bytes)
}

/// [`framed`] for a body written into `bytes` after [`FRAME`] bytes left for the checksum,
/// without copying it.
pub(crate) fn frame_in_place(mut bytes: Vec<u8>) -> Vec<u8> {
    if let Some((crc, body)) = bytes.split_first_chunk_mut::<FRAME>() {
        *crc = crc32fast::hash(body).to_le_bytes();
    }
    bytes
}

/// The body of a [`framed`] value whose checksum holds.
pub(crate) fn unframed(bytes: &[u8]) -> Result<&[u8], DecodeError> {
    let Some((crc, body)) = bytes.split_first_chunk::<FRAME>() else {
        return Err(DecodeError::Truncated(bytes.len()));
    };
    let stored = u32::from_le_bytes(*crc);
    let computed = crc32fast::hash(body);
    if stored != computed {
        return Err(DecodeError::Checksum { stored, computed });
    }
    Ok(body)
}

/// Decodes a record, checking its checksum and version before its shape.
pub(crate) fn decode(bytes: &[u8]) -> Result<Record, DecodeError> {
    let json = unframed(bytes)?;
    // Parse once as the current layout; only when that fails (or the version differs) look at
    // the version, so the error says "newer format" rather than "unknown field".
    #[derive(Deserialize)]
    struct Version {
        v: u64,
    }
    match serde_json::from_slice::<Record>(json) {
        Ok(record) if record.v == FORMAT_VERSION => Ok(record),
        Ok(record) => Err(DecodeError::UnknownVersion(u64::from(record.v))),
        Err(e) => match serde_json::from_slice::<Version>(json) {
            Ok(version) if version.v != u64::from(FORMAT_VERSION) => {
                Err(DecodeError::UnknownVersion(version.v))
            }
            Ok(_) => Err(DecodeError::BadEvent(e)),
            Err(not_json) => Err(DecodeError::NotJson(not_json)),
        },
    }
}

/// The store key of an event: run then sequence, both big endian, so that sled's byte order is
/// the journal's order.
pub(crate) fn key(run: RunId, seq: Seq) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&run.0.to_be_bytes());
    k[8..].copy_from_slice(&seq.0.to_be_bytes());
    k
}

/// The inverse of [`key`]; `None` for a key of the wrong length.
pub(crate) fn parse_key(k: &[u8]) -> Option<(RunId, Seq)> {
    let run: [u8; 8] = k.get(..8)?.try_into().ok()?;
    let seq: [u8; 8] = k.get(8..16)?.try_into().ok()?;
    (k.len() == 16).then(|| (RunId(u64::from_be_bytes(run)), Seq(u64::from_be_bytes(seq))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Event {
        Event::StepFailed {
            step: StepId::new("s").unwrap(),
            attempt: 2,
            error: "boom".into(),
            retryable: true,
            duration_ms: 5,
        }
    }

    /// Golden: the bytes of a record of every event. Journals outlive loko versions, so the
    /// record format changes only with [`FORMAT_VERSION`] (and a reader of the old one); then
    /// `UPDATE_GOLDEN=1 cargo nextest run -p journal record_format` rewrites
    /// `tests/golden/records-v1.txt` (and the journal fixture in `tests/fixtures` is kept).
    #[test]
    fn the_record_format_is_pinned() {
        let id = |s: &str| StepId::new(s).unwrap();
        let outputs = Outputs::new().with("device_id", "d-1").unwrap();
        let events = [
            Event::RunStarted {
                kind: RunKind::Apply,
                spec_digest: Digest::of(b"spec"),
                spec: RecordedSpec::of(&serde_json::json!({"format": 1, "settings": {}})),
                plan: vec![id("device/a")],
                by: "pid 1 on host".into(),
            },
            Event::RunResumed {
                plan: vec![id("device/a")],
                by: "pid 2 on host".into(),
            },
            Event::StepStarted {
                step: id("device/a"),
                attempt: 1,
                inputs_digest: Digest::of(b"in"),
            },
            Event::StepIntent {
                step: id("device/a"),
                attempt: 1,
                effect: "create device".into(),
                detail: outputs.clone(),
            },
            Event::StepSucceeded {
                step: id("device/a"),
                attempt: 1,
                inputs_digest: Digest::of(b"in"),
                outputs,
                duration_ms: 5,
                invalidates: vec![id("delete-device/a")],
            },
            sample(),
            Event::StepSkipped {
                step: id("dns"),
                because: id("device/a"),
            },
            Event::RunEnded {
                outcome: RunOutcome::Failed {
                    failed: vec![id("s")],
                    skipped: vec![id("dns")],
                },
            },
            Event::RunEnded {
                outcome: RunOutcome::Interrupted,
            },
            Event::DriftDetected {
                steps: vec![id("device/a")],
                found: vec!["a has no device".into()],
            },
            resealed(),
        ];
        // Each record as `<crc32, hex> <JSON>`, readable in a diff.
        let now: String = events
            .iter()
            .map(|e| {
                let bytes = encode(1_700_000_000_000, e, &Redactor::new()).unwrap();
                let json = std::str::from_utf8(&bytes[4..]).unwrap();
                format!("{} {json}\n", hex::encode(&bytes[..4]))
            })
            .collect();
        let golden =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/records-v1.txt");
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&golden, &now).unwrap();
        }
        let pinned = std::fs::read_to_string(&golden).unwrap();
        assert_eq!(now, pinned, "the journal's record format changed");
        for line in pinned.lines() {
            let (crc, json) = line.split_once(' ').unwrap();
            let mut bytes = hex::decode(crc).unwrap();
            bytes.extend_from_slice(json.as_bytes());
            decode(&bytes).unwrap();
        }
    }

    fn resealed() -> Event {
        Event::AssetsResealed {
            from: vec!["a".repeat(64)],
            to: "b".repeat(64),
            files: 12,
            added: vec!["ssh-ed25519 SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU".into()],
            removed: vec!["age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq".into()],
        }
    }

    #[test]
    fn round_trip() {
        for event in [sample(), resealed()] {
            let bytes = encode(7, &event, &Redactor::new()).unwrap();
            let rec = decode(&bytes).unwrap();
            assert_eq!(rec.event, event);
        }
        let bytes = encode(7, &sample(), &Redactor::new()).unwrap();
        assert_eq!(decode(&bytes).unwrap().at_ms, 7);
    }

    #[test]
    fn damaged_and_foreign_records_are_refused() {
        let mut bytes = encode(7, &sample(), &Redactor::new()).unwrap();
        let last = bytes.len() - 3;
        bytes[last] ^= 0x01;
        assert!(matches!(decode(&bytes), Err(DecodeError::Checksum { .. })));
        assert!(matches!(decode(b"ab"), Err(DecodeError::Truncated(2))));

        let json = br#"{"v":2,"at_ms":1,"event":{"run_ended":{}}}"#;
        let mut v2 = crc32fast::hash(json).to_le_bytes().to_vec();
        v2.extend_from_slice(json);
        assert!(matches!(decode(&v2), Err(DecodeError::UnknownVersion(2))));

        let json = br#"{"v":1,"at_ms":1,"event":{"launched_rockets":{}}}"#;
        let mut bad = crc32fast::hash(json).to_le_bytes().to_vec();
        bad.extend_from_slice(json);
        assert!(matches!(decode(&bad), Err(DecodeError::BadEvent(_))));
    }

    #[test]
    fn encoding_redacts_errors() {
        let ev = Event::StepFailed {
            step: StepId::new("s").unwrap(),
            attempt: 1,
            error: "ssh said -----BEGIN OPENSSH PRIVATE KEY-----\nxx\n-----END OPENSSH PRIVATE KEY-----"
                .into(),
            retryable: false,
            duration_ms: 0,
        };
        let rec = decode(&encode(1, &ev, &Redactor::new()).unwrap()).unwrap();
        let Event::StepFailed { error, .. } = rec.event else {
            panic!("wrong event")
        };
        assert_eq!(error, "ssh said [redacted]");
    }

    #[test]
    fn keys_order_by_run_then_seq() {
        assert!(key(RunId(1), Seq(300)) < key(RunId(2), Seq(1)));
        assert_eq!(parse_key(&key(RunId(9), Seq(4))), Some((RunId(9), Seq(4))));
        assert_eq!(parse_key(b"short"), None);
    }
}
