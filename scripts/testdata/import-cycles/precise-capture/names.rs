//! Imported by lib.rs and importing nothing back: no circle.

/// A name.
pub struct Name(pub String);
