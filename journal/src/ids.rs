//! Identifiers and digests that appear in journal keys and events.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// A run of `loko run` or `loko destroy`, numbered from 1 in the order runs started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(pub u64);

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The position of an event within its run, from 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Seq(pub u64);

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The stable name of a step, such as `device/supernova-helium-worker-1`.
///
/// Stable means: the same spec yields the same ids in every run, because resume matches the
/// journal's records to the plan's steps by id.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StepId(String);

/// A step id that is empty or holds whitespace or control characters.
#[derive(Debug, thiserror::Error)]
#[error("invalid step id {0:?}: it must be non-empty and hold no whitespace or control characters")]
pub struct InvalidStepId(String);

impl StepId {
    /// Makes a step id, refusing ids that would be ambiguous in the audit output.
    pub fn new(id: impl Into<String>) -> Result<StepId, InvalidStepId> {
        let id = id.into();
        if id.is_empty() || id.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(InvalidStepId(id));
        }
        Ok(StepId(id))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for StepId {
    type Error = InvalidStepId;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        StepId::new(value)
    }
}

impl From<StepId> for String {
    fn from(value: StepId) -> Self {
        value.0
    }
}

impl fmt::Display for StepId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A SHA-256 digest; used for spec digests and step inputs digests. Written as lowercase hex.
///
/// Held as its 32 bytes rather than as hex text: a journal holds one per attempt and one per
/// step result, and a `String` each would be an allocation each when a long journal is opened.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest([u8; 32]);

impl Digest {
    /// The digest of a sequence of byte strings. Each part is length-prefixed so that
    /// `["ab", "c"]` and `["a", "bc"]` differ.
    pub fn of_parts<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> Digest {
        let mut hasher = Sha256::new();
        for part in parts {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part);
        }
        Digest(hasher.finalize().into())
    }

    /// The digest of one byte string.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest::of_parts([bytes])
    }

    /// The digest of a value's JSON encoding. serde_json writes struct fields in declaration
    /// order and maps in their iteration order, so callers should use ordered maps
    /// (`BTreeMap`) for the digest to be stable.
    pub fn of_json<T: Serialize + ?Sized>(value: &T) -> Result<Digest, serde_json::Error> {
        Ok(Digest::of(&serde_json::to_vec(value)?))
    }

    /// The 32 bytes.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A digest from its 32 bytes (as [`Digest::bytes`] gives them).
    pub fn from_bytes(bytes: [u8; 32]) -> Digest {
        Digest(bytes)
    }

    /// The 64 hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first 12 hex digits, for humans.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..6])
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 64];
        // Cannot fail: the buffer is exactly twice the digest's length.
        hex::encode_to_slice(self.0, &mut buf).map_err(|_| fmt::Error)?;
        f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Hex;
        impl serde::de::Visitor<'_> for Hex {
            type Value = Digest;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a SHA-256 digest as 64 hex digits")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Digest, E> {
                let mut bytes = [0u8; 32];
                hex::decode_to_slice(text, &mut bytes)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Str(text), &self))?;
                Ok(Digest(bytes))
            }
        }
        deserializer.deserialize_str(Hex)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_ids_refuse_whitespace_and_empty() {
        assert!(StepId::new("device/supernova-controller-0").is_ok());
        assert!(StepId::new("").is_err());
        assert!(StepId::new("a b").is_err());
        assert!(StepId::new("a\nb").is_err());
        assert!(serde_json::from_str::<StepId>("\"a b\"").is_err());
    }

    #[test]
    fn digest_parts_are_length_prefixed() {
        assert_ne!(
            Digest::of_parts([b"ab".as_slice(), b"c".as_slice()]),
            Digest::of_parts([b"a".as_slice(), b"bc".as_slice()])
        );
        assert_eq!(Digest::of(b"x"), Digest::of(b"x"));
        assert_eq!(Digest::of(b"x").to_hex().len(), 64);
        let json = serde_json::to_string(&Digest::of(b"x")).unwrap();
        assert_eq!(json, format!("\"{}\"", Digest::of(b"x").to_hex()));
        assert_eq!(
            serde_json::from_str::<Digest>(&json).unwrap(),
            Digest::of(b"x")
        );
        assert!(serde_json::from_str::<Digest>("\"abc\"").is_err());
        assert_eq!(Digest::of(b"x").short(), &Digest::of(b"x").to_hex()[..12]);
    }
}
