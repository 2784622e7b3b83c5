//! The peer gRPC service: what other members send to this one (raft messages,
//! snapshots, membership for a joining member, forwarded lease keep-alives, hashes for
//! the corruption check).

#[cfg(test)]
mod fuzz;
mod snapshot;

use std::sync::Arc;

use ballast_proto::ballast::transport::raft_transport_server::RaftTransport;
use ballast_proto::ballast::transport::{
    MembershipRequest, MembershipResponse, RaftBatch, SendDone, SnapshotChunk, SnapshotDone,
};
use ballast_proto::etcdserverpb::{
    HashKvRequest, HashKvResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse,
    LeaseTimeToLiveRequest, LeaseTimeToLiveResponse, MemberPromoteRequest, MemberPromoteResponse,
};
use protobuf::Message as _;
use raft::eraftpb::Message as RaftMessage;
use tonic::{Request, Response, Status, Streaming};

use crate::log_limit::{LogLimit, LOG_INTERVAL};
use crate::metrics::metrics;
use crate::node::{local_renew, local_time_to_live, Node};
use crate::peer::admit::{self, log_refused};
use crate::peer::MEMBER_REMOVED;
use crate::rpc::cluster::local_promote;
use crate::rpc::maintenance::local_hash_kv;

/// Why raft messages from a sender that is not a member are refused.
const UNKNOWN_MEMBER: &str = "raft messages from an unknown member";

/// Refused peers and messages: logged at most once per interval (anyone who reaches the
/// peer port can cause them).
static REFUSED_PEER_LOG: LogLimit = LogLimit::new(LOG_INTERVAL);

/// The service other members call.
#[derive(Debug, Clone)]
pub struct PeerService {
    node: Arc<Node>,
}

impl PeerService {
    pub fn new(node: Arc<Node>) -> Self {
        PeerService { node }
    }

    fn check_cluster(&self, cluster_id: u64) -> Result<(), Status> {
        if cluster_id != self.node.cluster.cluster_id {
            if let Some(held_back) = REFUSED_PEER_LOG.admit() {
                tracing::warn!(
                    theirs = format!("{cluster_id:x}"),
                    ours = format!("{:x}", self.node.cluster.cluster_id),
                    held_back,
                    "refused a peer of another cluster (cluster ID mismatch)"
                );
            }
            return Err(Status::failed_precondition(format!(
                "cluster ID mismatch: this member is in cluster {:x}, the sender in {cluster_id:x}",
                self.node.cluster.cluster_id
            )));
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl RaftTransport for PeerService {
    async fn send(
        &self,
        request: Request<Streaming<RaftBatch>>,
    ) -> Result<Response<SendDone>, Status> {
        let mut batches = request.into_inner();
        loop {
            let batch = tokio::select! {
                _ = self.node.shutdown.cancelled() => break,
                batch = batches.message() => batch?,
            };
            let Some(batch) = batch else { break };
            self.check_cluster(batch.cluster_id)?;
            if self.node.cluster.is_removed(batch.from) {
                return Err(Status::failed_precondition(MEMBER_REMOVED));
            }
            if self.node.cluster.member(batch.from).is_none() {
                if let Some(held_back) = REFUSED_PEER_LOG.admit() {
                    tracing::warn!(
                        from = format!("{:x}", batch.from),
                        held_back,
                        "refused raft messages from an unknown member"
                    );
                }
                return Err(Status::permission_denied(UNKNOWN_MEMBER));
            }
            if self.node.transport.is_blocked(batch.from) {
                continue;
            }
            let received: usize = batch.messages.iter().map(|m| m.len()).sum();
            metrics()
                .peer_received
                .with_label_values(&[format!("{:x}", batch.from).as_str()])
                .inc_by(received as u64);
            let mut messages = Vec::with_capacity(batch.messages.len());
            for bytes in batch.messages {
                let message = RaftMessage::parse_from_bytes(&bytes)
                    .map_err(|e| Status::invalid_argument(format!("bad raft message: {e}")))?;
                // One bad message refuses the stream: a member's own never fail these.
                if let Err(why) = admit::check(&message, batch.from, self.node.cluster.local_id) {
                    log_refused(&message, why);
                    return Err(Status::invalid_argument(why));
                }
                messages.push(message);
            }
            self.node.raft.step_all(messages);
        }
        Ok(Response::new(SendDone {}))
    }

    async fn snapshot(
        &self,
        request: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<SnapshotDone>, Status> {
        snapshot::receive(&self.node, request.into_inner()).await?;
        Ok(Response::new(SnapshotDone {}))
    }

    async fn membership(
        &self,
        _request: Request<MembershipRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        Ok(Response::new(MembershipResponse {
            cluster_id: self.node.cluster.cluster_id,
            members: self.node.cluster.members(),
        }))
    }

    async fn lease_renew(
        &self,
        request: Request<LeaseKeepAliveRequest>,
    ) -> Result<Response<LeaseKeepAliveResponse>, Status> {
        let id = request.into_inner().id;
        Ok(Response::new(local_renew(&self.node, id).await?))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        Ok(Response::new(
            local_time_to_live(&self.node, request.into_inner()).await?,
        ))
    }

    async fn member_promote(
        &self,
        request: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        let id = request.into_inner().id;
        Ok(Response::new(local_promote(&self.node, id).await?))
    }

    async fn hash_kv(
        &self,
        request: Request<HashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        let revision = request.into_inner().revision;
        Ok(Response::new(local_hash_kv(&self.node, revision).await?))
    }
}
