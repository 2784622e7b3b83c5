//! `ballast-client`: an async Rust client for Ballast, and for any server that speaks
//! the etcd v3 API.
//!
//! ```no_run
//! use ballast_client::{Client, ConnectOptions, GetOptions, PutOptions};
//!
//! # async fn demo() -> ballast_client::Result<()> {
//! let client = Client::connect(["127.0.0.1:2379"], ConnectOptions::default()).await?;
//! client.put("greeting", "hello", PutOptions::new()).await?;
//! let found = client.get("greeting", GetOptions::new()).await?;
//! assert_eq!(found.kvs[0].value_str().unwrap(), "hello");
//! # Ok(())
//! # }
//! ```
//!
//! - Every call of the etcd v3 API is a method of [`Client`]: KV, [`Txn`], watches
//!   ([`Client::watch`]), leases with a background [`KeepAlive`], maintenance, cluster
//!   membership and auth.
//! - [`Mutex`] and [`Election`] are etcd's concurrency recipes, with the same key layout
//!   as the Go client, so they interoperate with `etcdctl lock` and `etcdctl elect`.
//! - Errors keep the server's gRPC code and etcd's message text ([`Error::Status`]);
//!   watches report compaction as [`Error::Compacted`] so a caller knows to re-list.
//! - Several endpoints: a call that finds one unavailable moves to the next when that is
//!   safe (reads always, writes only if they never reached a server); a broken watch
//!   stream resumes after the last revision each watcher delivered.

#![warn(missing_docs)]

mod auth;
mod client;
mod concurrency;
mod error;
mod kv;
mod lease;
mod maintenance;
mod transport;
mod txn;
mod types;
mod watch;

pub use auth::{Permission, PermissionKind, RoleInfo};
pub use client::{Client, ConnectOptions, RESPONSE_BYTES_MAX};
pub use concurrency::{Election, LeaderKey, Mutex, Observer, Session, SESSION_TTL_DEFAULT};
pub use error::{Error, Result};
pub use kv::{
    DeleteOptions, DeleteResponse, GetOptions, GetResponse, PutOptions, PutResponse, SortOrder,
    SortTarget,
};
pub use lease::{KeepAlive, LeaseGrantResponse, LeaseState, LeaseTimeToLiveResponse};
pub use maintenance::{Alarm, AlarmKind, HashKvResponse, Member, StatusResponse};
pub use tonic::Code;
pub use transport::{TlsOptions, CALL_ATTEMPTS_MAX, RETRY_BACKOFF_MAX, RETRY_BACKOFF_MIN};
pub use txn::{Compare, CompareOp, Txn, TxnOp, TxnOpResponse, TxnResponse};
pub use types::{prefix_end, Event, EventKind, Header, KeyValue};
pub use watch::{WatchOptions, WatchResponse, WatchStream, Watcher, WATCH_EVENTS_QUEUE_CAPACITY};
