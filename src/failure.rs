//! How the binary reports an error: one line saying what failed and for which object, a hint of
//! what to do, no stack trace and no secret; `-v` adds the chain of causes.

use std::process::ExitCode;

use crate::output::errln;
use journal::JournalError;

/// Exit code of a failed run (resumable) and of errors without a more specific code.
pub const EXIT_FAILED: u8 = 1;
/// Exit code of a bad spec or bad usage.
pub const EXIT_USAGE: u8 = 2;
/// Exit code when another loko holds the journal.
pub const EXIT_LOCKED: u8 = 3;
/// Exit code of `loko status` when the cluster differs from the spec.
pub const EXIT_DIFFERS: u8 = 4;

/// An error that already says what it means for the user: the message, the exit code and a hint.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct UserError {
    pub message: String,
    pub code: u8,
    pub hint: Option<String>,
}

impl UserError {
    pub fn usage(message: impl Into<String>, hint: impl Into<String>) -> UserError {
        UserError {
            message: message.into(),
            code: EXIT_USAGE,
            hint: Some(hint.into()),
        }
    }
}

/// Prints `err` (through `redactor`) and returns the exit code it maps to.
pub fn report(err: &anyhow::Error, verbose: bool, redactor: &journal::Redactor) -> ExitCode {
    let (code, hint) = classify(err);
    errln!(
        "{}: {}",
        console::style("error").red().for_stderr(),
        redactor.redact(&err.to_string())
    );
    if verbose {
        for cause in err.chain().skip(1) {
            errln!("  caused by: {}", redactor.redact(&cause.to_string()));
        }
    }
    if let Some(hint) = hint {
        errln!("{}: {hint}", console::style("hint").yellow().for_stderr());
    }
    ExitCode::from(code)
}

/// What to do about a journal store that cannot be connected to.
pub(crate) const UNREACHABLE_HINT: &str = "start etcd, or point --journal (or LOKO_JOURNAL) at etcd's client URL: etcd://HOST:PORT[,HOST:PORT...]/PREFIX, with --journal-ca, --journal-cert and --journal-key for one that serves TLS";

fn classify(err: &anyhow::Error) -> (u8, Option<String>) {
    if let Some(user) = err.downcast_ref::<UserError>() {
        return (user.code, user.hint.clone());
    }
    match err.downcast_ref::<JournalError>() {
        Some(JournalError::Locked { .. }) => (
            EXIT_LOCKED,
            Some("another loko is running on this cluster; wait for it, or stop it (the lock is released when it exits); `loko journal SPEC --follow` shows its progress".into()),
        ),
        Some(JournalError::Fenced { .. }) => (
            EXIT_LOCKED,
            Some("this loko lost its lease on the journal (paused or cut off from etcd for longer than the lease lasts, or unlocked with --force) and stopped starting steps; nothing more was written by it. `loko journal unlock SPEC` shows who holds it now; run again to resume once it is free".into()),
        ),
        Some(JournalError::Conflict { .. }) => (
            EXIT_FAILED,
            Some("something wrote to the journal without holding its lock; keep a copy (`loko journal SPEC --json`) before running again".into()),
        ),
        Some(JournalError::Corrupt { .. }) => (
            EXIT_FAILED,
            Some("the journal is damaged; keep a copy of the state directory for a bug report before changing anything".into()),
        ),
        Some(JournalError::BadCrashPoint(_)) => (EXIT_USAGE, None),
        Some(JournalError::Unreachable { .. }) => (EXIT_USAGE, Some(UNREACHABLE_HINT.into())),
        _ => (EXIT_FAILED, None),
    }
}
