//! Test harness: start real `ballast` processes on loopback, talk to them with
//! `ballast-client` and `etcdctl`, kill and restart them. One module per concern;
//! everything is re-exported here.
//!
//! Nodes listen on ports picked free just before start; a start that loses the race
//! for its port is retried on another. Waits are on conditions (the node's "ready" log
//! line, a revision reached), never fixed sleeps.

mod binaries;
mod cluster;
mod etcd;
mod etcdctl;
mod flags;
mod http;
pub mod linearizability;
mod node;
mod ports;
mod process;
mod wait;

pub use binaries::{ballast_binary, client_examples_dir};
pub use cluster::TestCluster;
pub use etcd::{Etcd, EtcdCluster};
pub use etcdctl::{etcdctl, etcdctl_stdin};
pub use http::http_get;
pub use node::Node;
pub use ports::free_port;
pub use process::{disk_usage, peak_rss_of, rss_of};
pub use wait::{eventually, WAIT};
