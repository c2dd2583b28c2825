//! Keeping secrets out of the journal.
//!
//! The journal is an audit log that users paste into bug reports, so nothing in it may be a
//! secret. Two layers make sure of it:
//!
//! 1. [`Outputs`], the only way a step publishes values, refuses any value that looks like a
//!    secret at the moment the step builds it, so the mistake surfaces in the step's own tests.
//! 2. Every event passes through [`redact`] on its way into the store, which replaces what
//!    escaped the first layer (an API error that echoes a token, a PEM block in a command's
//!    output) with a marker.
//!
//! "Looks like a secret" is: a PEM block, an OpenSSH private key, or a value registered with
//! [`register_secret`] (the binary registers the API tokens and AWS keys it reads from the
//! environment). This is deliberately a deny-list of known shapes plus known values: a
//! heuristic on entropy would redact device ids and digests, which the audit needs.

use std::collections::BTreeMap;
use std::sync::RwLock;

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::Value;

/// What replaces a secret in journaled text.
pub const REDACTED: &str = "[redacted]";

/// Secrets shorter than this are not registered: replacing every "a" in the journal would
/// destroy the audit without protecting anything.
const MIN_REGISTERED_LEN: usize = 8;

static REGISTERED: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Registers a secret value (an API token, an AWS secret key) so that [`redact`] removes it
/// wherever it appears and [`Outputs`] refuses it.
pub fn register_secret(value: &str) {
    let value = value.trim();
    if value.len() < MIN_REGISTERED_LEN {
        return;
    }
    let mut registered = REGISTERED.write().unwrap_or_else(|e| e.into_inner());
    if !registered.iter().any(|s| s == value) {
        registered.push(value.to_owned());
    }
}

/// Markers of private key material. `b3BlbnNzaC1rZXktdjE` is base64 of `openssh-key-v1`, the
/// body of an OpenSSH private key, which may appear without its PEM armor.
const KEY_MARKERS: [&str; 3] = ["-----BEGIN", "PRIVATE KEY", "b3BlbnNzaC1rZXktdjE"];

/// Says why `text` looks like a secret, or `None`.
pub fn secret_kind(text: &str) -> Option<&'static str> {
    if KEY_MARKERS.iter().any(|m| text.contains(m)) {
        return Some("private key or PEM block");
    }
    let registered = REGISTERED.read().unwrap_or_else(|e| e.into_inner());
    if registered.iter().any(|s| text.contains(s.as_str())) {
        return Some("registered secret (API token or key)");
    }
    None
}

/// Returns `text` with every PEM block, OpenSSH key body and registered secret replaced by
/// [`REDACTED`]. The one redaction function of loko: logs, errors and the journal use it.
pub fn redact(text: &str) -> String {
    if secret_kind(text).is_none() {
        return text.to_owned();
    }
    let mut out = redact_pem_blocks(text);
    let registered = REGISTERED.read().unwrap_or_else(|e| e.into_inner());
    for secret in registered.iter() {
        out = out.replace(secret.as_str(), REDACTED);
    }
    // What is left is a marker without a block around it (a truncated key, a bare body):
    // drop the whole text rather than guess where the secret ends.
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

/// Replaces secrets in every string of a JSON value (keys included).
pub fn redact_json(value: &mut Value) {
    match value {
        Value::String(s) => {
            if secret_kind(s).is_some() {
                *s = redact(s);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_json),
        Value::Object(map) => {
            if map.keys().any(|k| secret_kind(k).is_some()) {
                let entries = std::mem::take(map);
                for (k, mut v) in entries {
                    redact_json(&mut v);
                    map.insert(redact(&k), v);
                }
            } else {
                map.values_mut().for_each(redact_json);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

fn find_secret_in_json(value: &Value) -> Option<&'static str> {
    match value {
        Value::String(s) => secret_kind(s),
        Value::Array(items) => items.iter().find_map(find_secret_in_json),
        Value::Object(map) => map
            .iter()
            .find_map(|(k, v)| secret_kind(k).or_else(|| find_secret_in_json(v))),
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

    /// Publishes `value` under `key`, refusing anything that looks like a secret.
    pub fn insert(&mut self, key: &str, value: impl Serialize) -> Result<(), OutputError> {
        let value = serde_json::to_value(value).map_err(|source| OutputError::Json {
            key: key.to_owned(),
            source,
        })?;
        if let Some(kind) = secret_kind(key).or_else(|| find_secret_in_json(&value)) {
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
    fn outputs_refuse_pem_and_openssh_keys_and_registered_tokens() {
        let mut out = Outputs::new();
        assert!(matches!(
            out.insert("key", PEM),
            Err(OutputError::Secret { .. })
        ));
        assert!(out.insert("nested", vec![vec![PEM]]).is_err());
        assert!(out.insert("k", "b3BlbnNzaC1rZXktdjEAAAAABG5vbmU=").is_err());
        register_secret("tok-0123456789-outputs-test");
        let err = out
            .insert("token", "Bearer tok-0123456789-outputs-test")
            .unwrap_err()
            .to_string();
        assert!(
            !err.contains("tok-0123456789"),
            "error echoes the secret: {err}"
        );
        assert!(out.is_empty());
        out.insert("device_id", "6f1c3b0e-0000-4000-8000-000000000001")
            .unwrap();
        assert_eq!(
            out.get::<String>("device_id").unwrap(),
            "6f1c3b0e-0000-4000-8000-000000000001"
        );
    }

    #[test]
    fn redact_removes_pem_blocks_and_registered_values_and_keeps_the_rest() {
        register_secret("s3cr3t-token-for-redact-test");
        let text = format!("before {PEM} middle s3cr3t-token-for-redact-test after");
        let red = redact(&text);
        assert_eq!(red, "before [redacted]\n middle [redacted] after");
        assert!(secret_kind(&red).is_none());
        // An unterminated block is cut to the end.
        assert_eq!(
            redact("x -----BEGIN RSA PRIVATE KEY-----\nAAAA"),
            "x [redacted]"
        );
        // A bare marker without a block drops the whole text.
        assert!(redact("the PRIVATE KEY is abc").starts_with(REDACTED));
        assert_eq!(redact("nothing here"), "nothing here");
    }

    #[test]
    fn redact_json_walks_keys_and_values() {
        register_secret("another-secret-value-xyz");
        let mut v = serde_json::json!({
            "a": ["ok", PEM],
            "another-secret-value-xyz": {"b": "x another-secret-value-xyz"}
        });
        redact_json(&mut v);
        let text = v.to_string();
        assert!(secret_kind(&text).is_none(), "{text}");
        assert!(text.contains("ok"));
    }

    #[test]
    fn short_values_are_not_registered() {
        register_secret("abc");
        assert_eq!(redact("abc"), "abc");
    }
}
