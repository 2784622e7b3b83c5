//! The etcd v3 gRPC services. Each module validates a request, sends writes through raft
//! and serves reads from the store; errors become statuses in `status`.

pub mod cluster;
pub mod kv;
pub mod lease;
pub mod maintenance;
pub mod status;
pub mod watch;

use std::sync::Arc;

use ballast_proto::etcdserverpb::ResponseHeader;
use ballast_store::Store;
use tokio_util::sync::CancellationToken;

use crate::cluster::Cluster;
use crate::config::Config;
use crate::lessor::Lessor;
use crate::peer::PeerTransport;
use crate::raft::Node;

/// What every service shares.
#[derive(Debug)]
pub struct Shared {
    pub config: Config,
    pub store: Arc<Store>,
    pub node: Arc<Node>,
    pub lessor: Arc<Lessor>,
    pub cluster: Arc<Cluster>,
    pub transport: Arc<PeerTransport>,
    /// Cancelled when the server shuts down; every stream ends on it.
    pub shutdown: CancellationToken,
}

impl Shared {
    /// A response header for this member at `revision`.
    pub fn header(&self, revision: i64) -> ResponseHeader {
        ResponseHeader {
            cluster_id: self.cluster.cluster_id,
            member_id: self.cluster.local_id,
            revision,
            raft_term: self.node.status().term,
        }
    }

    /// Completes a header the store filled with a revision.
    pub fn complete(&self, header: &mut Option<ResponseHeader>) {
        let revision = header.as_ref().map_or(0, |h| h.revision);
        *header = Some(self.header(revision));
    }

    /// The current store revision.
    pub fn revision(&self) -> i64 {
        self.store.revisions().current
    }
}
