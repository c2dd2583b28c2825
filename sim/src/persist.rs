//! The state file: written atomically (temporary file, fsync, rename) after every mutation, so
//! that whatever a client was told happened survives a crash of the simulator or of the client.
//! It holds the API token and devices' userdata, so it is created owner-only (0600).

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::SimError;
use crate::world::{SAVED_STATE_FORMAT, SavedState};

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
        snapshot: &SavedState,
    ) -> Result<(), SimError> {
        let mut written = self.written.lock().await;
        if written.is_some_and(|w| w >= generation) {
            return Ok(());
        }
        let bytes = serde_json::to_vec_pretty(snapshot).map_err(|e| SimError::StateWrite {
            path: self.path.clone(),
            source: std::io::Error::other(e),
        })?;
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || write_atomically(&path, &bytes))
            .await
            .map_err(|e| SimError::StateWrite {
                path: self.path.clone(),
                source: std::io::Error::other(e),
            })?
            .map_err(|source| SimError::StateWrite {
                path: self.path.clone(),
                source,
            })?;
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

/// Reads a state file; `None` when there is none yet.
pub(crate) fn load(path: &Path) -> Result<Option<SavedState>, SimError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(SimError::StateRead {
                path: path.to_owned(),
                source,
            });
        }
    };
    let snapshot: SavedState =
        serde_json::from_slice(&bytes).map_err(|e| SimError::StateParse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
    if snapshot.format != SAVED_STATE_FORMAT {
        return Err(SimError::StateParse {
            path: path.to_owned(),
            message: format!(
                "format {} is not the supported format {SAVED_STATE_FORMAT}",
                snapshot.format
            ),
        });
    }
    Ok(Some(snapshot))
}
