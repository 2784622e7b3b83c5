//! A Ballast node: the raft driver over the store, the etcd v3 gRPC services and HTTP
//! endpoints on the client port, and the configuration that ties them together.
//!
//! The data path of a write: `rpc::kv` validates and proposes through `raft::Node`; the
//! driver commits it through raft, applies it to the store, and the waiting handler
//! answers. Reads go through a ReadIndex barrier, then straight to the store.

mod authority;
pub mod cluster;
pub mod config;
pub mod error;
pub mod http;
pub mod idgen;
pub mod lessor;
pub mod peer;
pub mod raft;
pub mod rpc;
mod server;

pub use config::Config;
pub use error::{Error, Result};
pub use server::run;

/// The etcd version Ballast reports (Status, /version). Clients enable features by it:
/// kube-apiserver asks for watch progress only from etcd 3.5.13 on, which we support.
pub const ETCD_VERSION: &str = "3.5.21";
/// The cluster (protocol) version reported beside it.
pub const CLUSTER_VERSION: &str = "3.5.0";
