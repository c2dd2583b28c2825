//! Where the journal takes the assets it writes with its records. Apart from `assets.rs`, which
//! extends [`crate::Journal`], so that `journal.rs` imports it without importing that file.

use crate::store::seam::AssetPut;

/// Where the journal takes the assets to write with each record it appends.
pub trait AssetOutbox: Send + Sync {
    /// Everything handed over since the last call, in order.
    fn take(&self) -> Vec<AssetPut>;
}
