//! etcd's limits on a transaction and the store's paging and lease. Apart from `etcd.rs` so
//! that the files below it import them without importing their parent.

use std::time::Duration;

/// The most operations etcd admits in one transaction (`--max-txn-ops`, default 128): one is
/// the head's put.
pub(super) const MAX_RECORDS_PER_TXN: usize = 127;

/// The most record bytes in one transaction: etcd refuses requests over 1.5 MiB
/// (`--max-request-bytes`); the rest is keys and framing.
pub(super) const MAX_TXN_BYTES: usize = 1024 * 1024;

/// Records read per range request.
pub(super) const PAGE: u64 = 1000;

/// The default lease: long enough to ride out a slow etcd election (a few seconds), short
/// enough that a killed holder's journal is free again soon.
pub const DEFAULT_TTL: Duration = Duration::from_secs(20);
