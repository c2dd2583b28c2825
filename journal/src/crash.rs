//! The crash testing aid `LOKO_CRASH_AT_APPEND` (see the crate docs), compiled only with the
//! `testing` feature: a release build neither reads the variable nor can be made to kill
//! itself by it. The crash suites enable the feature through their dev-dependencies.

#[cfg(feature = "testing")]
use std::sync::OnceLock;
#[cfg(feature = "testing")]
use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable of the crash testing aid (see the crate docs).
pub const CRASH_AT_APPEND_ENV: &str = "LOKO_CRASH_AT_APPEND";

#[cfg(feature = "testing")]
static CRASH_AT: OnceLock<Option<u64>> = OnceLock::new();
#[cfg(feature = "testing")]
static DURABLE_APPENDS: AtomicU64 = AtomicU64::new(0);

/// Reads `LOKO_CRASH_AT_APPEND` once per process; an unreadable value is returned as it is,
/// for the caller's [`crate::JournalError::BadCrashPoint`] (which names this file's variable, so
/// this file does not name the error).
#[cfg(feature = "testing")]
pub(crate) fn crash_point() -> Result<Option<u64>, String> {
    let raw = std::env::var(CRASH_AT_APPEND_ENV).ok();
    let parsed = match raw.as_deref() {
        None | Some("") => None,
        Some(text) => match text.trim().parse::<u64>() {
            Ok(k) if k > 0 => Some(k),
            _ => return Err(text.to_owned()),
        },
    };
    Ok(*CRASH_AT.get_or_init(|| parsed))
}

/// Without the `testing` feature, nothing is read.
#[cfg(not(feature = "testing"))]
pub(crate) fn crash_point() -> Result<Option<u64>, String> {
    Ok(None)
}

/// Kills the process after the append the crash point names.
#[cfg(feature = "testing")]
pub(crate) fn crash_if_asked() {
    let n = DURABLE_APPENDS.fetch_add(1, Ordering::SeqCst) + 1;
    if CRASH_AT.get().copied().flatten() == Some(n) {
        // SIGKILL rather than abort(): no core dump, no handler, no destructor, like `kill -9`.
        // SAFETY: kill(2) on our own pid has no memory-safety preconditions.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

/// Without the `testing` feature, never.
#[cfg(not(feature = "testing"))]
pub(crate) fn crash_if_asked() {}
