//! Typed kinds of steps: the contract between a DAG's steps and their actions, checked by the
//! compiler rather than by doc comments.
//!
//! A [`StepKind`] names a kind of step and the types of its params and outputs, as a saga type
//! of Oxide's steno names its actions' types. The DAG builds its steps with
//! [`StepDef::of`](crate::StepDef::of), which takes the kind's params; the run binds the kind
//! with [`Actions::bind`](crate::Actions::bind), whose action receives those params decoded and
//! returns the kind's outputs; a dependent reads them back with
//! [`StepContext::outputs_of`](crate::StepContext::outputs_of) through the kind that wrote them.
//! The journal keeps JSON: params and outputs are encoded with serde, so a kind's types decide
//! the keys its steps publish, and no other code spells them.

use std::borrow::Cow;
use std::fmt;

use journal::{OutputError, Outputs};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The name of a kind of step (`device`, `dns`), which the run's [`crate::Actions`] binds to
/// an action. Many steps share a kind; their params tell them apart.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ActionKind(Cow<'static, str>);

impl ActionKind {
    /// A kind named `name`.
    pub const fn new(name: &'static str) -> ActionKind {
        ActionKind(Cow::Borrowed(name))
    }

    /// The kind's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&'static str> for ActionKind {
    fn from(name: &'static str) -> Self {
        ActionKind::new(name)
    }
}

impl From<String> for ActionKind {
    fn from(name: String) -> Self {
        ActionKind(Cow::Owned(name))
    }
}

impl fmt::Display for ActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A kind of step: its name, what its steps are given and what they publish.
pub trait StepKind: Send + Sync + 'static {
    /// The kind's name, which the DAG's steps carry and the journal's readers see.
    const KIND: ActionKind;
    /// What the DAG gives each step of the kind (a hostname, a device's spec).
    type Params: Serialize + DeserializeOwned + Send + Sync + 'static;
    /// What a step of the kind publishes: a struct whose fields are the journal's output keys.
    type Outputs: Serialize + DeserializeOwned + Send + 'static;
}

/// Outputs of a kind that cannot be encoded for, or decoded from, the journal.
#[derive(Debug, thiserror::Error)]
pub enum KindOutputsError {
    /// The kind's outputs do not encode as a JSON object, whose fields are the journal's keys.
    #[error("the outputs of kind {kind} are not a JSON object")]
    NotAnObject { kind: ActionKind },
    /// A field was refused (it looks like a secret) or does not encode.
    #[error("the outputs of kind {kind}: {source}")]
    Field {
        kind: ActionKind,
        #[source]
        source: OutputError,
    },
    /// Recorded outputs that are not what the kind publishes.
    #[error("the outputs do not read as kind {kind}'s: {source}")]
    Decode {
        kind: ActionKind,
        #[source]
        source: serde_json::Error,
    },
}

/// `outputs` as the journal keeps them: one key per field, each checked for secrets by
/// [`Outputs::insert`].
pub fn encode_outputs<K: StepKind>(outputs: &K::Outputs) -> Result<Outputs, KindOutputsError> {
    let value = serde_json::to_value(outputs).map_err(|source| KindOutputsError::Decode {
        kind: K::KIND,
        source,
    })?;
    let Value::Object(fields) = value else {
        return Err(KindOutputsError::NotAnObject { kind: K::KIND });
    };
    let mut encoded = Outputs::new();
    for (key, value) in fields {
        encoded
            .insert(&key, value)
            .map_err(|source| KindOutputsError::Field {
                kind: K::KIND,
                source,
            })?;
    }
    Ok(encoded)
}

/// Journaled `outputs` of a step of kind `K`, read as the kind's type.
pub fn decode_outputs<K: StepKind>(outputs: &Outputs) -> Result<K::Outputs, KindOutputsError> {
    let decode = |source| KindOutputsError::Decode {
        kind: K::KIND,
        source,
    };
    serde_json::to_value(outputs)
        .and_then(serde_json::from_value)
        .map_err(decode)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Toy;

    #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
    struct ToyOutputs {
        address: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        replaced: Vec<String>,
    }

    impl StepKind for Toy {
        const KIND: ActionKind = ActionKind::new("toy");
        type Params = ();
        type Outputs = ToyOutputs;
    }

    #[test]
    fn outputs_encode_one_key_per_field_and_read_back() {
        let out = ToyOutputs {
            address: Some("10.0.0.1".into()),
            replaced: Vec::new(),
        };
        let encoded = encode_outputs::<Toy>(&out).unwrap();
        assert_eq!(
            encoded.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            ["address"]
        );
        assert_eq!(decode_outputs::<Toy>(&encoded).unwrap(), out);
    }

    #[test]
    fn a_secret_field_is_refused_and_foreign_outputs_do_not_decode() {
        let secret = ToyOutputs {
            address: Some("-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n".into()),
            replaced: Vec::new(),
        };
        assert!(matches!(
            encode_outputs::<Toy>(&secret),
            Err(KindOutputsError::Field { .. })
        ));
        let foreign = Outputs::new().with("address", 42).unwrap();
        let err = decode_outputs::<Toy>(&foreign).unwrap_err();
        assert!(err.to_string().contains("kind toy"), "{err}");
    }
}
