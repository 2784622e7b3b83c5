//! Ballast's state machine: an etcd-style MVCC key-value store, its leases and history,
//! and the raft log, all in one RocksDB.
//!
//! Synchronous Rust: no async runtime. The server's raft driver is the only writer
//! ([`Store::apply_batch`]); the gRPC services read through [`Store::read_view`] and friends;
//! watchers receive events through the [`watch::WatchHub`].

pub mod auth;
pub mod backend;
pub mod bbolt;
pub mod crash;
pub mod error;
pub mod etcd_db;
pub mod keys;
pub mod lease;
pub mod mvcc;
pub mod proposal;
pub mod raft_log;
pub mod range;
pub mod range_set;
pub mod record;
pub mod snapshot;
mod store;
pub mod watch;

pub use error::{Error, Result};
pub use lease::Lease;
pub use mvcc::read::{KvRead, ReadView};
pub use proposal::{Proposal, Response};
pub use raft_log::LogStore;
pub use range::KeyRange;
pub use store::{
    Applied, ApplyBatch, Effect, Revisions, Store, APPLY_BATCH_BYTES_MAX, INITIAL_REVISION,
};
