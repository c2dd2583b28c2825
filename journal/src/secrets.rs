//! Keeping secrets out of the journal.
//!
//! The journal is an audit log that users paste into bug reports, so nothing in it may be a
//! secret. Two layers make sure of it:
//!
//! 1. [`Outputs`], the only way a step publishes values, refuses any value of a secret's shape
//!    at the moment the step builds it, so the mistake surfaces in the step's own tests; the
//!    engine refuses outputs holding a value its [`Redactor`] knows before it journals them.
//! 2. Every event passes through the journal's [`Redactor`] on its way into the store, which
//!    replaces what escaped the first layer (an API error that echoes a token, a PEM block in
//!    a command's output) with a marker.
//!
//! "Looks like a secret" is: a PEM block, an OpenSSH private key (the shape rules, which need
//! no knowledge), or a value the [`Redactor`] was told of (the binary adds the API token and
//! AWS keys it reads; the asset directory the bootstrap token it issues or reads). This is
//! deliberately a deny-list of known shapes plus known values: a heuristic on entropy would
//! redact device ids and digests, which the audit needs.
//!
//! The known values live in a [`Redactor`] that the binary builds and hands to whatever writes
//! or prints (the journal, the log, the progress lines, the error report), never in a global:
//! two journals in one process (the tests, `loko bench`) each redact what their run knows.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::Value;

/// What replaces a secret in journaled text.
pub const REDACTED: &str = "[redacted]";

/// Secrets shorter than this are not added: replacing every "a" in the journal would destroy
/// the audit without protecting anything.
const MIN_KNOWN_LEN: usize = 8;

/// The secret values a run knows and the shape rules of secrets it does not: the one
/// redaction of loko, for the journal, logs, errors and progress lines.
///
/// A handle: clones share their values, so a secret learned late (the bootstrap token a step
/// issues, the AWS keys resolved after the journal opened) is removed by every holder from then
/// on. A fresh `Redactor` knows no value and applies the shape rules alone.
#[derive(Clone, Default)]
pub struct Redactor {
    known: Arc<RwLock<Vec<String>>>,
}

/// Says how many values it knows, never which.
impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} known values)", self.read().len())
    }
}

impl Redactor {
    /// A redactor that knows no value yet.
    pub fn new() -> Redactor {
        Redactor::default()
    }

    /// Adds a secret value (an API token, an AWS secret key) so that [`Redactor::redact`]
    /// removes it wherever it appears. Values shorter than 8 characters are ignored.
    pub fn add(&self, value: &str) {
        let value = value.trim();
        if value.len() < MIN_KNOWN_LEN {
            return;
        }
        let mut known = self.known.write().unwrap_or_else(|e| e.into_inner());
        if !known.iter().any(|s| s == value) {
            known.push(value.to_owned());
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<String>> {
        // A writer that panicked left the list whole (a push is all it does).
        self.known.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Says why `text` looks like a secret (its shape, or a known value), or `None`.
    pub fn secret_kind(&self, text: &str) -> Option<&'static str> {
        secret_shape(text).or_else(|| {
            self.read()
                .iter()
                .any(|s| text.contains(s.as_str()))
                .then_some("known secret (API token or key)")
        })
    }

    /// Returns `text` with every PEM block, OpenSSH key body and known value replaced by
    /// [`REDACTED`].
    pub fn redact(&self, text: &str) -> String {
        if self.secret_kind(text).is_none() {
            return text.to_owned();
        }
        let mut out = redact_pem_blocks(text);
        for secret in self.read().iter() {
            out = out.replace(secret.as_str(), REDACTED);
        }
        drop_bare_markers(out)
    }

    /// Replaces secrets in every string of a JSON value (keys included).
    pub fn redact_json(&self, value: &mut Value) {
        match value {
            Value::String(s) => {
                if self.secret_kind(s).is_some() {
                    *s = self.redact(s);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.redact_json(v)),
            Value::Object(map) => {
                if map.keys().any(|k| self.secret_kind(k).is_some()) {
                    let entries = std::mem::take(map);
                    for (k, mut v) in entries {
                        self.redact_json(&mut v);
                        map.insert(self.redact(&k), v);
                    }
                } else {
                    map.values_mut().for_each(|v| self.redact_json(v));
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    /// Refuses `outputs` that hold a known value: what [`Outputs::insert`] cannot know, checked
    /// before the outputs are journaled or handed to dependents. The error names the key only.
    pub fn check_outputs(&self, outputs: &Outputs) -> Result<(), OutputError> {
        let kind_of = |text: &str| self.secret_kind(text);
        match outputs.iter().find_map(|(key, value)| {
            Some((key, kind_of(key).or_else(|| find_in_json(value, &kind_of))?))
        }) {
            Some((key, kind)) => Err(OutputError::Secret {
                key: key.to_owned(),
                kind,
            }),
            None => Ok(()),
        }
    }
}

/// Markers of private key material. `b3BlbnNzaC1rZXktdjE` is base64 of `openssh-key-v1`, the
/// body of an OpenSSH private key, which may appear without its PEM armor.
const KEY_MARKERS: [&str; 3] = ["-----BEGIN", "PRIVATE KEY", "b3BlbnNzaC1rZXktdjE"];

/// Says why `text` has a secret's shape (a PEM block, an OpenSSH private key), or `None`:
/// the rules that need no known value.
pub fn secret_shape(text: &str) -> Option<&'static str> {
    KEY_MARKERS
        .iter()
        .any(|m| text.contains(m))
        .then_some("private key or PEM block")
}

/// Returns `text` with every PEM block and OpenSSH key body replaced by [`REDACTED`]: the
/// shape rules of [`Redactor::redact`] alone, for a message built where no redactor is at hand
/// (a client's error); whatever prints or journals it redacts it again with its [`Redactor`].
pub fn redact_shapes(text: &str) -> String {
    if secret_shape(text).is_none() {
        return text.to_owned();
    }
    drop_bare_markers(redact_pem_blocks(text))
}

/// What is left after the blocks are cut is a marker without a block around it (a truncated
/// key, a bare body): drop the whole text rather than guess where the secret ends.
fn drop_bare_markers(out: String) -> String {
    if KEY_MARKERS.iter().any(|m| out.contains(m)) {
        return format!("{REDACTED} (text held key material)");
    }
    out
}

fn redact_pem_blocks(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN") {
        out.push_str(&rest[..start]);
        let block = &rest[start..];
        // The block ends after the `-----END ...-----` line; an unterminated block runs to the end.
        let end = block
            .find("-----END")
            .and_then(|e| block[e + 8..].find("-----").map(|close| e + 8 + close + 5))
            .unwrap_or(block.len());
        out.push_str(REDACTED);
        rest = &block[end..];
    }
    out.push_str(rest);
    out
}

/// The first secret `kind_of` finds in a string of `value` (keys included).
fn find_in_json(
    value: &Value,
    kind_of: &dyn Fn(&str) -> Option<&'static str>,
) -> Option<&'static str> {
    match value {
        Value::String(s) => kind_of(s),
        Value::Array(items) => items.iter().find_map(|v| find_in_json(v, kind_of)),
        Value::Object(map) => map
            .iter()
            .find_map(|(k, v)| kind_of(k).or_else(|| find_in_json(v, kind_of))),
        Value::Null | Value::Bool(_) | Value::Number(_) => None,
    }
}

/// A value was refused because it looks like a secret.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The value looks like a secret; the message names the key, never the value.
    #[error("output {key:?} looks like a secret ({kind}); secrets stay in asset_dir files")]
    Secret { key: String, kind: &'static str },
    /// The value could not be encoded or decoded as JSON.
    #[error("output {key:?}: {source}")]
    Json {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    /// A dependent asked for an output that the step did not publish.
    #[error("output {key:?} is missing")]
    Missing { key: String },
}

/// The values a step publishes: what its dependents read and what the audit log shows
/// (device ids, IP addresses, certificate fingerprints, DNS change ids).
///
/// Built only through [`Outputs::insert`], which refuses secrets, so a step cannot journal a
/// private key by accident. Keys are ordered, so equal outputs encode to equal bytes (and equal
/// digests). Encoded as a JSON object.
///
/// Held as a vector sorted by key rather than a `BTreeMap`: a step publishes a handful of
/// values, and a journal of 100,000 events holds tens of thousands of these, where a B-tree's
/// node (over 600 bytes for even one entry) would be most of the memory.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(from = "BTreeMap<String, Value>")]
pub struct Outputs(Vec<(String, Value)>);

impl Serialize for Outputs {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

impl From<BTreeMap<String, Value>> for Outputs {
    fn from(map: BTreeMap<String, Value>) -> Self {
        Outputs(map.into_iter().collect())
    }
}

impl Outputs {
    /// No outputs.
    pub fn new() -> Outputs {
        Outputs::default()
    }

    /// Publishes `value` under `key`, refusing anything of a secret's shape (the known values
    /// are the engine's to refuse: [`Redactor::check_outputs`]).
    pub fn insert(&mut self, key: &str, value: impl Serialize) -> Result<(), OutputError> {
        let value = serde_json::to_value(value).map_err(|source| OutputError::Json {
            key: key.to_owned(),
            source,
        })?;
        if let Some(kind) = secret_shape(key).or_else(|| find_in_json(&value, &secret_shape)) {
            return Err(OutputError::Secret {
                key: key.to_owned(),
                kind,
            });
        }
        match self.0.binary_search_by(|(k, _)| k.as_str().cmp(key)) {
            Ok(i) => self.0[i].1 = value,
            Err(i) => self.0.insert(i, (key.to_owned(), value)),
        }
        Ok(())
    }

    /// Outputs that passed [`Outputs::insert`]'s checks before (read back from a snapshot).
    /// `pairs` must be sorted by key, without duplicates, as snapshots store them.
    pub(crate) fn from_checked(pairs: Vec<(String, Value)>) -> Outputs {
        debug_assert!(pairs.windows(2).all(|w| w[0].0 < w[1].0));
        Outputs(pairs)
    }

    /// [`Outputs::insert`] in builder style.
    pub fn with(mut self, key: &str, value: impl Serialize) -> Result<Outputs, OutputError> {
        self.insert(key, value)?;
        Ok(self)
    }

    /// Reads the value under `key` as `T`.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<T, OutputError> {
        let value = self.get_raw(key).ok_or_else(|| OutputError::Missing {
            key: key.to_owned(),
        })?;
        T::deserialize(value).map_err(|source| OutputError::Json {
            key: key.to_owned(),
            source,
        })
    }

    /// The raw JSON value under `key`.
    pub fn get_raw(&self, key: &str) -> Option<&Value> {
        self.0
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .map(|i| &self.0[i].1)
    }

    /// Every key and value, ordered by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// True when nothing was published.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEM: &str = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n";

    #[test]
    fn outputs_refuse_pem_and_openssh_keys_and_known_tokens() {
        let mut out = Outputs::new();
        assert!(matches!(
            out.insert("key", PEM),
            Err(OutputError::Secret { .. })
        ));
        assert!(out.insert("nested", vec![vec![PEM]]).is_err());
        assert!(out.insert("k", "b3BlbnNzaC1rZXktdjEAAAAABG5vbmU=").is_err());
        assert!(out.is_empty());
        let redactor = Redactor::new();
        redactor.add("tok-0123456789-outputs-test");
        out.insert("token", "Bearer tok-0123456789-outputs-test")
            .unwrap();
        let err = redactor.check_outputs(&out).unwrap_err().to_string();
        assert!(err.contains("\"token\""), "{err}");
        assert!(
            !err.contains("tok-0123456789"),
            "error echoes the secret: {err}"
        );
        // Another run's redactor does not know it.
        assert!(Redactor::new().check_outputs(&out).is_ok());
        let mut out = Outputs::new();
        out.insert("device_id", "6f1c3b0e-0000-4000-8000-000000000001")
            .unwrap();
        assert!(redactor.check_outputs(&out).is_ok());
        assert_eq!(
            out.get::<String>("device_id").unwrap(),
            "6f1c3b0e-0000-4000-8000-000000000001"
        );
    }

    #[test]
    fn redact_removes_pem_blocks_and_known_values_and_keeps_the_rest() {
        let redactor = Redactor::new();
        // A clone is the same handle: what one learns, the other removes.
        redactor.clone().add("s3cr3t-token-for-redact-test");
        let text = format!("before {PEM} middle s3cr3t-token-for-redact-test after");
        let red = redactor.redact(&text);
        assert_eq!(red, "before [redacted]\n middle [redacted] after");
        assert!(redactor.secret_kind(&red).is_none());
        // The shape rules alone leave the known value.
        assert_eq!(
            redact_shapes(&text),
            "before [redacted]\n middle s3cr3t-token-for-redact-test after"
        );
        // An unterminated block is cut to the end.
        assert_eq!(
            redactor.redact("x -----BEGIN RSA PRIVATE KEY-----\nAAAA"),
            "x [redacted]"
        );
        // A bare marker without a block drops the whole text.
        assert!(
            redactor
                .redact("the PRIVATE KEY is abc")
                .starts_with(REDACTED)
        );
        assert!(redact_shapes("the PRIVATE KEY is abc").starts_with(REDACTED));
        assert_eq!(redactor.redact("nothing here"), "nothing here");
        assert!(!format!("{redactor:?}").contains("s3cr3t"));
    }

    #[test]
    fn redact_json_walks_keys_and_values() {
        let redactor = Redactor::new();
        redactor.add("another-secret-value-xyz");
        let mut v = serde_json::json!({
            "a": ["ok", PEM],
            "another-secret-value-xyz": {"b": "x another-secret-value-xyz"}
        });
        redactor.redact_json(&mut v);
        let text = v.to_string();
        assert!(redactor.secret_kind(&text).is_none(), "{text}");
        assert!(text.contains("ok"));
    }

    #[test]
    fn short_values_are_not_added() {
        let redactor = Redactor::new();
        redactor.add("abc");
        assert_eq!(redactor.redact("abc"), "abc");
    }
}
