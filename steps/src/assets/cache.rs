//! The asset directory as a cache of the journal's store: what a store that keeps the assets
//! (etcd, shared by a team) is told of each file, so that the file travels with the journal
//! record of the step that wrote it.

use std::path::Path;

/// Told of every file written or removed through an [`super::AssetDir`] that has one. A write
/// is reported before it reaches the disk, so that the record of the step that wrote it (which
/// the step appends after) never goes to the store without it; the sink decides, by the
/// file's digest, whether the store already has it.
pub trait AssetSink: Send + Sync {
    /// `rel` (relative to the asset directory) now holds `contents`. An error fails the write.
    fn written(&self, rel: &Path, contents: &[u8]) -> Result<(), String>;

    /// `rel` is being removed.
    fn removed(&self, rel: &Path) -> Result<(), String>;
}
