//! The storage behind the journal: the seam between the journal's logic and where its records
//! live.
//!
//! A [`Store`] is what the journal needs from any storage, and nothing more:
//! - it is **held**: acquiring one takes the journal's single-writer lease, and the store
//!   carries the [`Lease`] it got (who holds it, and a *fence*, a number that grows with every
//!   new holder), released when the store is dropped;
//! - **appends at an expected position**: a batch of records goes after the record the caller
//!   believes is last, or is refused ([`StoreError::Conflict`]), and a store whose lease was
//!   taken over refuses every append ([`StoreError::Fenced`]);
//! - a **durable flush** that makes every append before it durable;
//! - **ordered scans** (keys are `(run, seq)` big-endian, so byte order is journal order);
//! - one **snapshot slot**, durable with the flush after the records it covers.
//!
//! Two stores implement it: [`SledStore`] (embedded, a sled database and an OS file lock in a
//! directory: the default, for one machine) and [`EtcdStore`] (etcd v3, for a team sharing a
//! cluster's journal). sled and the HTTP client are imported only below this module.

mod etcd;
pub(crate) mod seam;
mod sled_store;

pub use etcd::{EtcdConfig, EtcdStore, EtcdTls, LockInfo};
pub use seam::{Bytes, Key, Lease, Records, Store, StoreError};
pub use sled_store::SledStore;
