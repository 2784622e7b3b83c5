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
//! Errors keep the server's gRPC code and etcd's message text ([`Error::Status`]);
//! watches report compaction as [`Error::Compacted`] so a caller knows to re-list.

mod client;
mod error;
mod kv;
mod lease;
mod maintenance;
mod txn;
mod types;
mod watch;

pub use client::{Client, ConnectOptions, RESPONSE_BYTES_MAX};
pub use error::{Error, Result};
pub use kv::{
    DeleteOptions, DeleteResponse, GetOptions, GetResponse, PutOptions, PutResponse, SortOrder,
    SortTarget,
};
pub use lease::{KeepAlive, LeaseGrantResponse, LeaseState, LeaseTimeToLiveResponse};
pub use maintenance::{HashKvResponse, Member, StatusResponse};
pub use tonic::Code;
pub use txn::{Compare, CompareOp, Txn, TxnOp, TxnOpResponse, TxnResponse};
pub use types::{prefix_end, Event, EventKind, Header, KeyValue};
pub use watch::{WatchOptions, WatchResponse, WatchStream, Watcher, WATCH_EVENTS_QUEUE_CAPACITY};
