//! Snapshots of the fold, so that opening a long journal does not re-read every record.
//!
//! Why: sled 0.34 pays about 2 µs per record on a scan, and decoding and folding a record
//! allocates, so a journal of 100,000 events took about 600 ms to open. Every
//! [`SNAPSHOT_EVERY`] events the journal stores the folded state under one key; opening decodes
//! it and folds only the records after it.
//!
//! A snapshot is derived data, never the truth: when it is missing, damaged, of another format
//! or names a record the store does not hold, opening ignores it and folds every record, as a
//! journal without snapshots does. It is written under the journal's state lock after the
//! records it covers, so a flush that makes it durable makes them durable too. Because events
//! may only be appended to the newest run (see [`crate::FoldError::NotLastRun`]), every record
//! a snapshot does not cover sorts after its last key, so folding "snapshot, then the records
//! after it" equals folding every record.
//!
//! On disk: `crc32 (4 bytes, little endian) ++ postcard(Header)`, where the header carries the
//! run summaries and a list of chunks, each chunk itself postcard-encoded, of at most
//! [`CHUNK`] entries of step histories, ledger results or attempt counters. Chunks decode on
//! all cores at once. postcard cannot hold serde_json values or internally tagged enums, so the
//! snapshot has its own plain types; they borrow from the state when encoding and from the
//! stored bytes when decoding, so only the final state allocates. They are the snapshot's
//! format and change only with [`SNAPSHOT_VERSION`].

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::event::{RecordedSpec, RunKind, RunOutcome};
use crate::fold::{Attempt, AttemptEnd, ClusterState, Intent, RunState, StepHistory, StepResult};
use crate::ids::{Digest, InvalidStepId, RunId, Seq, StepId};
use crate::secrets::Outputs;

/// Events folded between two snapshots. Journals smaller than this never get one, so they are
/// folded record by record, each record verified at every open (a 100-worker run appends about
/// 550 events, a 1000-worker run about 5,000). Halving it halves the most records folded after
/// a snapshot (about 6 µs each) and doubles the snapshots written.
#[cfg(not(test))]
pub const SNAPSHOT_EVERY: u64 = 4096;
/// Small in unit tests, so that they cross several snapshots quickly.
#[cfg(test)]
pub const SNAPSHOT_EVERY: u64 = 16;

/// The snapshot layout this build writes and reads; a snapshot of any other is ignored.
const SNAPSHOT_VERSION: u32 = 3;

/// Entries per chunk: small enough to spread over the cores, large enough that per-chunk
/// overhead does not matter.
const CHUNK: usize = 4096;

/// The fold as of the record with key `last`, and the next sequence number of every run.
pub(crate) struct Snapshot {
    pub(crate) last: (RunId, Seq),
    pub(crate) next_seq: BTreeMap<RunId, u64>,
    pub(crate) cluster: ClusterState,
}

/// Why a stored snapshot was not used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SnapshotError {
    #[error("snapshot is damaged (length or checksum)")]
    Checksum,
    #[error("snapshot cannot be decoded: {0}")]
    Decode(#[from] postcard::Error),
    #[error("snapshot has format {0}; this loko reads {SNAPSHOT_VERSION}")]
    Version(u32),
    #[error("snapshot holds an invalid step id: {0}")]
    StepId(#[from] InvalidStepId),
    #[error("snapshot has step histories of run {0}, which it does not list")]
    UnknownRun(u64),
    #[error("snapshot gives run {0} the plan or spec of the run before it, and it is the first")]
    NoPreviousRun(u64),
}

/// Encodes a snapshot of `cluster`, which holds every record up to and including `last`.
///
/// Written once into a buffer of its exact size, after room for the frame's checksum, each
/// chunk encoded straight into it: at 5,000 workers a snapshot is megabytes, and encoding the
/// chunks apart, then the header around them, held two to three times its size at once, at
/// the moment of a run's peak memory.
pub(crate) fn encode(
    last: (RunId, Seq),
    next_seq: &BTreeMap<RunId, u64>,
    cluster: &ClusterState,
) -> Result<Vec<u8>, postcard::Error> {
    let prefix = HeaderV3Prefix {
        version: SNAPSHOT_VERSION,
        last: (last.0.0, last.1.0),
        next_seq: next_seq.iter().map(|(r, n)| (r.0, *n)).collect(),
        runs: runs_v3(&cluster.runs),
    };
    let mut sizes = Vec::new();
    each_chunk(cluster, |chunk| {
        sizes.push(encoded_len(chunk)?);
        Ok(())
    })?;
    let mut size = encoded_len(&prefix)? + encoded_len(&sizes.len())?;
    for chunk in &sizes {
        size += encoded_len(chunk)? + chunk;
    }
    let mut bytes = Vec::with_capacity(crate::event::FRAME + size);
    bytes.resize(crate::event::FRAME, 0);
    bytes = postcard::to_extend(&prefix, bytes)?;
    bytes = postcard::to_extend(&sizes.len(), bytes)?;
    let mut lens = sizes.iter();
    each_chunk(cluster, |chunk| {
        // A byte string in postcard: its length, then its bytes (see `HeaderV3Prefix`).
        let len = lens.next().copied().unwrap_or_default();
        let taken = std::mem::take(&mut bytes);
        bytes = postcard::to_extend(chunk, postcard::to_extend(&len, taken)?)?;
        Ok(())
    })?;
    debug_assert_eq!(bytes.len(), crate::event::FRAME + size);
    Ok(crate::event::frame_in_place(bytes))
}

/// [`encode`] the plain way, a [`HeaderV3`] holding its chunks: what the format is.
#[cfg(test)]
pub(crate) fn encode_as_header(
    last: (RunId, Seq),
    next_seq: &BTreeMap<RunId, u64>,
    cluster: &ClusterState,
) -> Result<Vec<u8>, postcard::Error> {
    let mut chunks = Vec::new();
    each_chunk(cluster, |chunk| {
        chunks.push(postcard::to_allocvec(chunk)?);
        Ok(())
    })?;
    let header = HeaderV3 {
        version: SNAPSHOT_VERSION,
        last: (last.0.0, last.1.0),
        next_seq: next_seq.iter().map(|(r, n)| (r.0, *n)).collect(),
        runs: runs_v3(&cluster.runs),
        chunks: chunks.iter().map(Vec::as_slice).collect(),
    };
    Ok(crate::event::framed(&postcard::to_allocvec(&header)?))
}

/// The bytes postcard writes for `value`.
fn encoded_len<T: Serialize + ?Sized>(value: &T) -> Result<usize, postcard::Error> {
    postcard::serialize_with_flavor(value, postcard::ser_flavors::Size::default())
}

/// Calls `f` with every chunk of `cluster`'s step histories, ledger and attempt counters, in
/// turn (decoding needs no order: each chunk says what it holds).
fn each_chunk(
    cluster: &ClusterState,
    mut f: impl FnMut(&ChunkV1<'_>) -> Result<(), postcard::Error>,
) -> Result<(), postcard::Error> {
    for run in cluster.runs.values() {
        for part in chunked(&run.steps) {
            let entries = part
                .iter()
                .map(|(step, h)| (step.as_str(), HistoryV1::from(*h)));
            f(&ChunkV1::Steps {
                run: run.id.0,
                entries: entries.collect(),
            })?;
        }
    }
    for part in chunked(&cluster.ledger) {
        let entries = part
            .iter()
            .map(|(step, r)| (step.as_str(), ResultV1::from(*r)));
        f(&ChunkV1::Ledger(entries.collect()))?;
    }
    for part in chunked(&cluster.attempts) {
        let entries = part.iter().map(|(step, n)| (step.as_str(), **n));
        f(&ChunkV1::Attempts(entries.collect()))?;
    }
    Ok(())
}

/// A map's entries in key order, [`CHUNK`] at a time.
fn chunked<K, V>(map: &BTreeMap<K, V>) -> Vec<Vec<(&K, &V)>> {
    let entries: Vec<_> = map.iter().collect();
    entries.chunks(CHUNK).map(<[_]>::to_vec).collect()
}

/// Decodes a stored snapshot.
pub(crate) fn decode(bytes: &[u8]) -> Result<Snapshot, SnapshotError> {
    let body = crate::event::unframed(bytes).map_err(|_| SnapshotError::Checksum)?;
    // The version is the first field, so a snapshot of another layout is told apart before
    // the rest of it is misread.
    let (version, _) = postcard::take_from_bytes::<u32>(body)?;
    if version != SNAPSHOT_VERSION {
        return Err(SnapshotError::Version(version));
    }
    let header: HeaderV3<'_> = postcard::from_bytes(body)?;
    let mut runs: BTreeMap<RunId, RunState> = BTreeMap::new();
    for run in header.runs {
        let state = run.into_state(runs.values().next_back())?;
        runs.insert(state.id, state);
    }
    let mut ledger = Vec::new();
    let mut attempts = Vec::new();
    let mut steps: BTreeMap<RunId, Vec<(StepId, StepHistory)>> = BTreeMap::new();
    for chunk in crate::par::par_map(&header.chunks, |c| decode_chunk(c)) {
        match chunk? {
            Decoded::Steps(run, entries) => steps.entry(run).or_default().extend(entries),
            Decoded::Ledger(entries) => ledger.extend(entries),
            Decoded::Attempts(entries) => attempts.extend(entries),
        }
    }
    for (run, entries) in steps {
        let state = runs.get_mut(&run).ok_or(SnapshotError::UnknownRun(run.0))?;
        // Chunks hold entries in key order, so collecting builds each map in bulk.
        state.steps = entries.into_iter().collect();
    }
    Ok(Snapshot {
        last: (RunId(header.last.0), Seq(header.last.1)),
        next_seq: header
            .next_seq
            .into_iter()
            .map(|(r, n)| (RunId(r), n))
            .collect(),
        cluster: ClusterState {
            runs,
            ledger: ledger.into_iter().collect(),
            attempts: attempts.into_iter().collect(),
        },
    })
}

/// The store key of the last record a snapshot covers.
pub(crate) fn last_key(snap: &Snapshot) -> [u8; 16] {
    crate::event::key(snap.last.0, snap.last.1)
}

enum Decoded {
    Steps(RunId, Vec<(StepId, StepHistory)>),
    Ledger(Vec<(StepId, StepResult)>),
    Attempts(Vec<(StepId, u32)>),
}

fn decode_chunk(bytes: &[u8]) -> Result<Decoded, SnapshotError> {
    Ok(match postcard::from_bytes::<ChunkV1<'_>>(bytes)? {
        ChunkV1::Steps { run, entries } => Decoded::Steps(
            RunId(run),
            entries
                .into_iter()
                .map(|(step, h)| Ok((step_id(step)?, h.into_history()?)))
                .collect::<Result<_, SnapshotError>>()?,
        ),
        ChunkV1::Ledger(entries) => Decoded::Ledger(
            entries
                .into_iter()
                .map(|(step, r)| Ok((step_id(step)?, r.into_result())))
                .collect::<Result<_, SnapshotError>>()?,
        ),
        ChunkV1::Attempts(entries) => Decoded::Attempts(
            entries
                .into_iter()
                .map(|(step, n)| Ok((step_id(step)?, n)))
                .collect::<Result<_, SnapshotError>>()?,
        ),
    })
}

/// [`HeaderV3`] without its last field, `chunks`. postcard writes a struct as its fields one
/// after another and a byte string as its length then its bytes, so this, the number of
/// chunks, then each chunk's length and bytes is a `HeaderV3`: [`encode`] writes the chunks
/// into place without a copy of each.
#[derive(Serialize)]
struct HeaderV3Prefix<'a> {
    version: u32,
    last: (u64, u64),
    next_seq: Vec<(u64, u64)>,
    runs: Vec<RunV3<'a>>,
}

#[derive(Serialize, Deserialize)]
struct HeaderV3<'a> {
    version: u32,
    last: (u64, u64),
    next_seq: Vec<(u64, u64)>,
    #[serde(borrow)]
    runs: Vec<RunV3<'a>>,
    #[serde(borrow)]
    chunks: Vec<&'a [u8]>,
}

#[derive(Serialize, Deserialize)]
enum ChunkV1<'a> {
    Steps {
        run: u64,
        #[serde(borrow)]
        entries: Vec<(&'a str, HistoryV1<'a>)>,
    },
    Ledger(#[serde(borrow)] Vec<(&'a str, ResultV1<'a>)>),
    Attempts(#[serde(borrow)] Vec<(&'a str, u32)>),
}

/// A run without its step histories (those are in chunks).
#[derive(Serialize, Deserialize)]
struct RunV3<'a> {
    id: u64,
    kind: RunKind,
    spec_digest: [u8; 32],
    /// The desired state's JSON text; `None`: the previous run's. A year of weekly runs of an
    /// unchanged 5,000-node spec wrote it 52 times (65 MB) in format 2.
    spec: Option<&'a str>,
    /// `None`: the previous run's plan.
    #[serde(borrow)]
    plan: Option<Vec<&'a str>>,
    started_at_ms: u64,
    started_by: &'a str,
    #[serde(borrow)]
    resumes: Vec<(u64, &'a str)>,
    #[serde(borrow)]
    ended: Option<(u64, OutcomeV1<'a>)>,
    events: u64,
    last_seq: u64,
}

#[derive(Serialize, Deserialize)]
enum OutcomeV1<'a> {
    Succeeded,
    Failed {
        #[serde(borrow)]
        failed: Vec<&'a str>,
        #[serde(borrow)]
        skipped: Vec<&'a str>,
    },
    Interrupted,
}

#[derive(Serialize, Deserialize)]
struct HistoryV1<'a> {
    #[serde(borrow)]
    attempts: Vec<AttemptV1<'a>>,
    skipped_because: Option<&'a str>,
}

#[derive(Serialize, Deserialize)]
struct AttemptV1<'a> {
    attempt: u32,
    started_at_ms: u64,
    inputs_digest: [u8; 32],
    #[serde(borrow)]
    intents: Vec<IntentV1<'a>>,
    #[serde(borrow)]
    end: EndV1<'a>,
}

#[derive(Serialize, Deserialize)]
struct IntentV1<'a> {
    effect: &'a str,
    #[serde(borrow)]
    detail: Vec<(&'a str, ValueV1<'a>)>,
    at_ms: u64,
}

#[derive(Serialize, Deserialize)]
enum EndV1<'a> {
    Unfinished,
    Succeeded {
        #[serde(borrow)]
        outputs: Vec<(&'a str, ValueV1<'a>)>,
        duration_ms: u64,
        at_ms: u64,
    },
    Failed {
        error: &'a str,
        retryable: bool,
        duration_ms: u64,
        at_ms: u64,
    },
}

#[derive(Serialize, Deserialize)]
struct ResultV1<'a> {
    run: u64,
    attempt: u32,
    inputs_digest: [u8; 32],
    #[serde(borrow)]
    outputs: Vec<(&'a str, ValueV1<'a>)>,
    at_ms: u64,
}

/// A JSON value in a form postcard can hold (serde_json's `Value` needs a self-describing
/// format).
#[derive(Serialize, Deserialize)]
enum ValueV1<'a> {
    Null,
    Bool(bool),
    U64(u64),
    I64(i64),
    F64(f64),
    String(&'a str),
    Array(#[serde(borrow)] Vec<ValueV1<'a>>),
    Object(#[serde(borrow)] Vec<(&'a str, ValueV1<'a>)>),
}

impl<'a> From<&'a Value> for ValueV1<'a> {
    fn from(v: &'a Value) -> Self {
        match v {
            Value::Null => ValueV1::Null,
            Value::Bool(b) => ValueV1::Bool(*b),
            Value::Number(n) => match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => ValueV1::U64(u),
                (None, Some(i)) => ValueV1::I64(i),
                // serde_json numbers are u64, i64 or finite f64.
                (None, None) => ValueV1::F64(n.as_f64().unwrap_or_default()),
            },
            Value::String(s) => ValueV1::String(s),
            Value::Array(a) => ValueV1::Array(a.iter().map(ValueV1::from).collect()),
            Value::Object(o) => {
                ValueV1::Object(o.iter().map(|(k, v)| (k.as_str(), v.into())).collect())
            }
        }
    }
}

impl From<ValueV1<'_>> for Value {
    fn from(v: ValueV1<'_>) -> Self {
        match v {
            ValueV1::Null => Value::Null,
            ValueV1::Bool(b) => Value::Bool(b),
            ValueV1::U64(u) => Value::from(u),
            ValueV1::I64(i) => Value::from(i),
            ValueV1::F64(f) => Value::from(f),
            ValueV1::String(s) => Value::String(s.to_owned()),
            ValueV1::Array(a) => Value::Array(a.into_iter().map(Value::from).collect()),
            ValueV1::Object(o) => Value::Object(
                o.into_iter()
                    .map(|(k, v)| (k.to_owned(), Value::from(v)))
                    .collect(),
            ),
        }
    }
}

fn step_id(s: &str) -> Result<StepId, InvalidStepId> {
    StepId::new(s)
}

fn outputs_v1(outputs: &Outputs) -> Vec<(&str, ValueV1<'_>)> {
    outputs.iter().map(|(k, v)| (k, ValueV1::from(v))).collect()
}

fn outputs_from(pairs: Vec<(&str, ValueV1<'_>)>) -> Outputs {
    // These outputs passed the secret checks when their event was appended, and were stored
    // in key order.
    Outputs::from_checked(
        pairs
            .into_iter()
            .map(|(k, v)| (k.to_owned(), Value::from(v)))
            .collect(),
    )
}

fn step_ids(ids: &[StepId]) -> Vec<&str> {
    ids.iter().map(StepId::as_str).collect()
}

fn step_ids_from(ids: Vec<&str>) -> Result<Vec<StepId>, InvalidStepId> {
    ids.into_iter().map(step_id).collect()
}

/// The runs in order, each plan and spec written once for a row of runs that share it.
fn runs_v3(runs: &BTreeMap<RunId, RunState>) -> Vec<RunV3<'_>> {
    let mut previous: Option<&RunState> = None;
    runs.values()
        .map(|run| {
            let written = RunV3::of(run, previous);
            previous = Some(run);
            written
        })
        .collect()
}

impl<'a> RunV3<'a> {
    fn of(r: &'a RunState, previous: Option<&RunState>) -> Self {
        let same_plan = previous.is_some_and(|p| p.plan == r.plan);
        let same_spec = previous.is_some_and(|p| p.spec == r.spec);
        RunV3 {
            id: r.id.0,
            kind: r.kind,
            spec_digest: *r.spec_digest.bytes(),
            spec: (!same_spec).then(|| r.spec.text()),
            plan: (!same_plan).then(|| step_ids(&r.plan)),
            started_at_ms: r.started_at_ms,
            started_by: &r.started_by,
            resumes: r
                .resumes
                .iter()
                .map(|(at, by)| (*at, by.as_str()))
                .collect(),
            ended: r.ended.as_ref().map(|(at, outcome)| {
                let outcome = match outcome {
                    RunOutcome::Succeeded => OutcomeV1::Succeeded,
                    RunOutcome::Failed { failed, skipped } => OutcomeV1::Failed {
                        failed: step_ids(failed),
                        skipped: step_ids(skipped),
                    },
                    RunOutcome::Interrupted => OutcomeV1::Interrupted,
                };
                (*at, outcome)
            }),
            events: r.events,
            last_seq: r.last_seq.0,
        }
    }
}

impl RunV3<'_> {
    /// The run, with no step histories yet; `previous` is the run before it.
    fn into_state(self, previous: Option<&RunState>) -> Result<RunState, SnapshotError> {
        let plan = match self.plan {
            Some(ids) => Arc::from(step_ids_from(ids)?),
            None => Arc::clone(&previous.ok_or(SnapshotError::NoPreviousRun(self.id))?.plan),
        };
        let spec = match self.spec {
            Some(text) => RecordedSpec::from_text(text),
            None => previous
                .ok_or(SnapshotError::NoPreviousRun(self.id))?
                .spec
                .clone(),
        };
        let ended = match self.ended {
            None => None,
            Some((at, outcome)) => Some((
                at,
                match outcome {
                    OutcomeV1::Succeeded => RunOutcome::Succeeded,
                    OutcomeV1::Failed { failed, skipped } => RunOutcome::Failed {
                        failed: step_ids_from(failed)?,
                        skipped: step_ids_from(skipped)?,
                    },
                    OutcomeV1::Interrupted => RunOutcome::Interrupted,
                },
            )),
        };
        Ok(RunState {
            id: RunId(self.id),
            kind: self.kind,
            spec_digest: Digest::from_bytes(self.spec_digest),
            spec,
            plan,
            started_at_ms: self.started_at_ms,
            started_by: self.started_by.to_owned(),
            resumes: self
                .resumes
                .into_iter()
                .map(|(at, by)| (at, by.to_owned()))
                .collect(),
            ended,
            steps: BTreeMap::new(),
            events: self.events,
            last_seq: Seq(self.last_seq),
        })
    }
}

impl<'a> From<&'a StepHistory> for HistoryV1<'a> {
    fn from(h: &'a StepHistory) -> Self {
        HistoryV1 {
            attempts: h.attempts.iter().map(AttemptV1::from).collect(),
            skipped_because: h.skipped_because.as_ref().map(StepId::as_str),
        }
    }
}

impl<'a> From<&'a Attempt> for AttemptV1<'a> {
    fn from(a: &'a Attempt) -> Self {
        AttemptV1 {
            attempt: a.attempt,
            started_at_ms: a.started_at_ms,
            inputs_digest: *a.inputs_digest.bytes(),
            intents: a
                .intents
                .iter()
                .map(|i| IntentV1 {
                    effect: &i.effect,
                    detail: outputs_v1(&i.detail),
                    at_ms: i.at_ms,
                })
                .collect(),
            end: match &a.end {
                AttemptEnd::Unfinished => EndV1::Unfinished,
                AttemptEnd::Succeeded {
                    outputs,
                    duration_ms,
                    at_ms,
                } => EndV1::Succeeded {
                    outputs: outputs_v1(outputs),
                    duration_ms: *duration_ms,
                    at_ms: *at_ms,
                },
                AttemptEnd::Failed {
                    error,
                    retryable,
                    duration_ms,
                    at_ms,
                } => EndV1::Failed {
                    error,
                    retryable: *retryable,
                    duration_ms: *duration_ms,
                    at_ms: *at_ms,
                },
            },
        }
    }
}

impl HistoryV1<'_> {
    fn into_history(self) -> Result<StepHistory, SnapshotError> {
        Ok(StepHistory {
            attempts: self
                .attempts
                .into_iter()
                .map(AttemptV1::into_attempt)
                .collect(),
            skipped_because: self.skipped_because.map(step_id).transpose()?,
        })
    }
}

impl AttemptV1<'_> {
    fn into_attempt(self) -> Attempt {
        Attempt {
            attempt: self.attempt,
            started_at_ms: self.started_at_ms,
            inputs_digest: Digest::from_bytes(self.inputs_digest),
            intents: self
                .intents
                .into_iter()
                .map(|i| Intent {
                    effect: i.effect.to_owned(),
                    detail: outputs_from(i.detail),
                    at_ms: i.at_ms,
                })
                .collect(),
            end: match self.end {
                EndV1::Unfinished => AttemptEnd::Unfinished,
                EndV1::Succeeded {
                    outputs,
                    duration_ms,
                    at_ms,
                } => AttemptEnd::Succeeded {
                    outputs: outputs_from(outputs),
                    duration_ms,
                    at_ms,
                },
                EndV1::Failed {
                    error,
                    retryable,
                    duration_ms,
                    at_ms,
                } => AttemptEnd::Failed {
                    error: error.to_owned(),
                    retryable,
                    duration_ms,
                    at_ms,
                },
            },
        }
    }
}

impl<'a> From<&'a StepResult> for ResultV1<'a> {
    fn from(r: &'a StepResult) -> Self {
        ResultV1 {
            run: r.run.0,
            attempt: r.attempt,
            inputs_digest: *r.inputs_digest.bytes(),
            outputs: outputs_v1(&r.outputs),
            at_ms: r.at_ms,
        }
    }
}

impl ResultV1<'_> {
    fn into_result(self) -> StepResult {
        StepResult {
            run: RunId(self.run),
            attempt: self.attempt,
            inputs_digest: Digest::from_bytes(self.inputs_digest),
            outputs: outputs_from(self.outputs),
            at_ms: self.at_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: u64, plan: &Arc<[StepId]>, spec: &serde_json::Value) -> RunState {
        RunState {
            id: RunId(id),
            kind: RunKind::Apply,
            spec_digest: Digest::of(spec.to_string().as_bytes()),
            spec: RecordedSpec::of(spec),
            plan: Arc::clone(plan),
            started_at_ms: id,
            started_by: "pid 1 on test".into(),
            resumes: Vec::new(),
            ended: Some((id + 1, RunOutcome::Succeeded)),
            steps: BTreeMap::new(),
            events: 2,
            last_seq: Seq(1),
        }
    }

    /// Runs of one plan or spec store it once and share it again after decoding; a changed plan
    /// or spec, and the spec's JSON text, come back as they were.
    #[test]
    fn runs_share_an_unchanged_plan_and_spec_and_keep_their_spec_text() {
        let ids = |names: &[&str]| -> Arc<[StepId]> {
            names.iter().map(|n| StepId::new(*n).unwrap()).collect()
        };
        let small = ids(&["pki", "device/a"]);
        let big = ids(&["pki", "device/a", "device/b"]);
        let spec = serde_json::json!({"name": "supernova", "workers": [{"count": 2}], "x": 1.5});
        let scaled = serde_json::json!({"name": "supernova", "workers": [{"count": 3}], "x": 1.5});
        let mut cluster = ClusterState::default();
        for (id, plan, spec) in [
            (1, &small, &spec),
            (2, &small, &spec),
            (3, &big, &scaled),
            (4, &big, &scaled),
            (5, &small, &spec),
        ] {
            cluster.runs.insert(RunId(id), run(id, plan, spec));
        }
        let encoded = encode((RunId(5), Seq(1)), &BTreeMap::new(), &cluster).unwrap();
        let header: HeaderV3<'_> =
            postcard::from_bytes(crate::event::unframed(&encoded).unwrap()).unwrap();
        let written: Vec<bool> = header.runs.iter().map(|r| r.plan.is_some()).collect();
        assert_eq!(written, [true, false, true, false, true]);
        let written: Vec<bool> = header.runs.iter().map(|r| r.spec.is_some()).collect();
        assert_eq!(written, [true, false, true, false, true]);

        let decoded = decode(&encoded).unwrap().cluster;
        assert_eq!(decoded, cluster);
        let runs: Vec<&RunState> = decoded.runs.values().collect();
        assert!(Arc::ptr_eq(&runs[0].plan, &runs[1].plan));
        assert!(Arc::ptr_eq(&runs[2].plan, &runs[3].plan));
        assert!(!Arc::ptr_eq(&runs[3].plan, &runs[4].plan));
        assert!(runs[0].spec.is_shared_with(&runs[1].spec));
        assert!(runs[2].spec.is_shared_with(&runs[3].spec));
        assert!(!runs[3].spec.is_shared_with(&runs[4].spec));
        assert_eq!(runs[3].spec.value().unwrap(), scaled);
        assert_eq!(runs[4].spec.value().unwrap(), spec);
    }
}
