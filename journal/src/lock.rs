//! One writer per cluster: an exclusive OS file lock that names its holder.
//!
//! The lock is `flock`-style (`File::try_lock`), so the kernel releases it when the holding
//! process dies, however it dies: a `kill -9` never leaves a stale lock to clean up by hand
//! (unlike Terraform's state lock after a forced abort). The file's text says who holds it, so
//! a second `loko` can name the holder in its error.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Holds the lock until dropped.
#[derive(Debug)]
pub(crate) struct RunLock {
    _file: File,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum LockError {
    #[error("journal {path} is locked by another loko ({holder})")]
    Held { path: PathBuf, holder: String },
    #[error("cannot lock journal {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Who this process is, as written into lock files and run events: `pid 123 on host`.
pub(crate) fn whoami() -> String {
    format!("pid {} on {}", std::process::id(), hostname())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown host".to_owned())
}

impl RunLock {
    /// Takes the lock at `path` (the journal directory's `LOCK` file) or reports its holder.
    pub(crate) fn acquire(path: &Path, journal: &Path) -> Result<RunLock, LockError> {
        let io = |source| LockError::Io {
            path: journal.to_owned(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                // The holder writes its name right after locking; an empty file means it is
                // between those two calls.
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(LockError::Held {
                    path: journal.to_owned(),
                    holder: if holder.is_empty() {
                        "holder unknown".to_owned()
                    } else {
                        holder.to_owned()
                    },
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        let since = crate::clock::now_ms();
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        write!(file, "{}, since {}", whoami(), human_time(since)).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(RunLock { _file: file })
    }
}

/// A time for people: `2026-12-02 03:14:05 UTC`, from milliseconds since the Unix epoch.
pub fn human_time(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let (days, of_day) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's days-to-civil, for the proleptic Gregorian calendar.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::human_time;

    #[test]
    fn human_time_is_utc_calendar_time() {
        assert_eq!(human_time(0), "1970-01-01 00:00:00 UTC");
        // 2026-12-02T03:14:05Z, and a leap day.
        assert_eq!(human_time(1_796_181_245_000), "2026-12-02 03:14:05 UTC");
        assert_eq!(human_time(951_782_400_000), "2000-02-29 00:00:00 UTC");
    }
}
