//! The state file: written after every mutation (atomically, owner-only: `state_file.rs`), so
//! that whatever a client was told happened survives a crash of the simulator or of the client.
//! It holds the API token and devices' userdata, hence owner-only.

use std::path::Path;

use crate::config::SimError;
use crate::state_file::{StateFileError, check_format, read_json};
use crate::world::{SAVED_STATE_FORMAT, SavedState};

impl From<StateFileError> for SimError {
    fn from(e: StateFileError) -> SimError {
        match e {
            StateFileError::Read { path, source } => SimError::StateRead { path, source },
            StateFileError::Parse { path, message } => SimError::StateParse { path, message },
            StateFileError::Write { path, source } => SimError::StateWrite { path, source },
        }
    }
}

/// Reads a state file; `None` when there is none yet.
pub(crate) fn load(path: &Path) -> Result<Option<SavedState>, SimError> {
    let Some(snapshot) = read_json::<SavedState>(path)? else {
        return Ok(None);
    };
    check_format(path, snapshot.format, SAVED_STATE_FORMAT, "state")?;
    Ok(Some(snapshot))
}
