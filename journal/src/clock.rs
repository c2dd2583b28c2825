//! The wall clock in milliseconds, which the journal, its lock and its stores stamp.

/// Milliseconds since the Unix epoch, as records and lock texts carry them.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
