//! A state file, written atomically (temporary file, fsync, rename) and owner-only (0600): the
//! simulator's clouds (`persist.rs`) and the rack's machines (`rack/`) each keep one, and what
//! they hold (a token, devices' userdata, installed Ignition) is credentials.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why a state file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateFileError {
    /// The file cannot be read.
    #[error("cannot read simulator state {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not what it should hold.
    #[error("cannot parse simulator state {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The file cannot be written.
    #[error("cannot write simulator state {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Writes snapshots of one state file, each newer than the last.
pub(crate) struct Persister {
    path: PathBuf,
    /// The generation last written; also serializes writers so the file only moves forward.
    written: tokio::sync::Mutex<Option<u64>>,
}

impl Persister {
    pub(crate) fn new(path: PathBuf) -> Self {
        Persister {
            path,
            written: tokio::sync::Mutex::new(None),
        }
    }

    /// Writes `snapshot` unless a snapshot of the same or a later generation is already on disk.
    pub(crate) async fn write(
        &self,
        generation: u64,
        snapshot: &impl Serialize,
    ) -> Result<(), StateFileError> {
        let mut written = self.written.lock().await;
        if written.is_some_and(|w| w >= generation) {
            return Ok(());
        }
        let failed = |source| StateFileError::Write {
            path: self.path.clone(),
            source,
        };
        let bytes =
            serde_json::to_vec_pretty(snapshot).map_err(|e| failed(std::io::Error::other(e)))?;
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || write_atomically(&path, &bytes))
            .await
            .map_err(|e| failed(std::io::Error::other(e)))?
            .map_err(failed)?;
        *written = Some(generation);
        Ok(())
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    // The token and devices' userdata (Ignition) are credentials: owner-only, like any secret.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Reads a state file written by a [`Persister`]; `None` when there is none yet.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, StateFileError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateFileError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| StateFileError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
}

/// A file of another format than this simulator's: refused, not misread.
pub(crate) fn check_format(
    path: &Path,
    found: u32,
    supported: u32,
    what: &str,
) -> Result<(), StateFileError> {
    match found == supported {
        true => Ok(()),
        false => Err(StateFileError::Parse {
            path: path.to_owned(),
            message: format!("format {found} is not the supported {what} format {supported}"),
        }),
    }
}
