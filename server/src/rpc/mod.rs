//! The etcd v3 gRPC services. Each module validates a request, sends writes through raft
//! and serves reads from the store, all through the member's [`crate::node::Node`];
//! errors become statuses in `status`.

pub(crate) mod auth;
pub(crate) mod cluster;
pub(crate) mod election;
pub(crate) mod grpc_metrics;
pub(crate) mod kv;
pub(crate) mod lease;
pub(crate) mod lock;
pub(crate) mod maintenance;
pub(crate) mod peer;
mod recipes;
mod snapshot;
pub(crate) mod status;
pub(crate) mod watch;
