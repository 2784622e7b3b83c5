//! A Ballast node: the raft driver over the store, the etcd v3 gRPC services and HTTP
//! endpoints on the client port, and the configuration that ties them together.
//!
//! The data path of a write: `rpc::kv` validates and proposes through the member's
//! [`node::Node`] to `raft::Raft`; the driver commits it through raft, the store applies
//! it, and the waiting handler answers. Reads go through a ReadIndex barrier, then
//! straight to the store. `docs/architecture.md` walks the whole path file by file.

pub(crate) mod auth;
pub(crate) mod cluster;
pub(crate) mod coalesced;
pub mod config;
pub(crate) mod corrupt;
pub mod error;
pub(crate) mod gateway;
pub(crate) mod http;
pub(crate) mod idgen;
pub(crate) mod lessor;
pub(crate) mod limits;
pub mod listeners;
pub(crate) mod log_limit;
pub(crate) mod metrics;
pub(crate) mod node;
pub(crate) mod peer;
pub(crate) mod quota;
pub(crate) mod raft;
pub mod restore;
pub(crate) mod rpc;
pub mod runtime;
mod server;
pub(crate) mod tls;
pub(crate) mod tokens;
pub(crate) mod url_authority;

pub use config::Config;
pub use error::{Error, Result};
pub use listeners::Listeners;
pub use server::run;

/// The etcd version Ballast reports (Status, /version). Clients enable features by it:
/// kube-apiserver asks for watch progress only from etcd 3.5.13 on, which we support.
pub const ETCD_VERSION: &str = "3.5.21";
/// The cluster (protocol) version reported beside it.
pub const CLUSTER_VERSION: &str = "3.5.0";
