//! Test harness: start real `ballast` processes on loopback, talk to them with
//! `ballast-client` and `etcdctl`, kill and restart them. One module per concern;
//! everything is re-exported here.
//!
//! A node's sockets are bound here and inherited by the process, so no other process can
//! take its ports before it listens. Waits are on conditions (`/health` answering, a
//! revision reached), never fixed sleeps.

mod binaries;
mod cluster;
mod etcd;
mod etcdctl;
mod flags;
mod http;
mod kube;
pub mod linearizability;
mod node;
mod ports;
mod process;
mod python;
mod wait;
mod writer;

pub use binaries::{ballast_binary, ballastutl_binary, client_examples_dir};
pub use cluster::TestCluster;
pub use etcd::{etcd_binary, Etcd, EtcdCluster};
pub use etcdctl::{etcd_35_dir, etcdctl, etcdctl_stdin, snapshot_status_json, Etcdctl};
pub use http::http_get;
pub use kube::{apiserver_binary, ApiServer, KUBECTL};
pub use node::Node;
pub use ports::{bind_port, free_port, port_of};
pub use process::{disk_usage, peak_rss_of, rss_of};
pub use python::{python_clients_dir, run_python};
pub use wait::{eventually, WAIT};
pub use writer::{stalls, BackgroundWriter, Stalls};
