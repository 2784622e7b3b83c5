//! Lease: Grant, Revoke, KeepAlive (a stream), TimeToLive, Leases.
//!
//! Deadlines live on the leader only: `crate::lease` forwards a follower's keep-alives and
//! time-to-live queries to the leader.

use std::sync::Arc;

use ballast_proto::etcdserverpb::lease_server::Lease;
use ballast_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse,
    LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse, LeaseStatus,
    LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status, Streaming};

use crate::error::Error;
use crate::lessor::LEASE_TTL_MAX_SECONDS;
use crate::node::Node;
use crate::node::{renew, time_to_live};
use crate::quota::LEASE_GRANT_BYTES;

/// Keep-alive responses queued towards one client.
pub const LEASE_KEEPALIVE_OUTPUT_CAPACITY: usize = 16;

/// The Lease service.
#[derive(Debug, Clone)]
pub struct LeaseService {
    node: Arc<Node>,
}

impl LeaseService {
    pub fn new(node: Arc<Node>) -> Self {
        LeaseService { node }
    }
}

#[tonic::async_trait]
impl Lease for LeaseService {
    async fn lease_grant(
        &self,
        request: Request<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        let who = self.node.authorize(&request).await?;
        who.user()?;
        let mut req = request.into_inner();
        if req.ttl > LEASE_TTL_MAX_SECONDS {
            return Err(Error::LeaseTtlTooLarge.into());
        }
        // The TTL is settled before proposing so every member applies the same one.
        req.ttl = req.ttl.max(self.node.config.min_lease_ttl());
        if req.id == 0 {
            req.id = self.node.raft.ids().next_positive();
        }
        self.node.check_quota(LEASE_GRANT_BYTES).await?;
        let mut resp = self.node.raft.propose_checked(req, who.stamp).await?;
        self.node.complete(&mut resp.header);
        Ok(Response::new(resp))
    }

    async fn lease_revoke(
        &self,
        request: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        let who = self.node.authorize(&request).await?;
        let req = request.into_inner();
        who.lease_keys(req.id, &self.node.store)?;
        let mut resp = self.node.raft.propose_checked(req, who.stamp).await?;
        self.node.complete(&mut resp.header);
        Ok(Response::new(resp))
    }

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<BoxStream<LeaseKeepAliveResponse>>, Status> {
        self.node.authorize(&request).await?.user()?;
        let mut inbound = request.into_inner();
        let (out, out_rx) = mpsc::channel(LEASE_KEEPALIVE_OUTPUT_CAPACITY);
        let node = self.node.clone();
        self.node.tasks.spawn(async move {
            loop {
                let request = tokio::select! {
                    _ = node.shutdown.cancelled() => break,
                    request = inbound.message() => request,
                };
                let req = match request {
                    Ok(Some(req)) => req,
                    Ok(None) => break,
                    Err(status) => {
                        let _ = out.send(Err(status)).await;
                        break;
                    }
                };
                let response = renew(&node, req.id).await;
                let failed = response.is_err();
                if out.send(response).await.is_err() || failed {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(out_rx))))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        let who = self.node.authorize(&request).await?;
        who.user()?;
        let req = request.into_inner();
        let resp = time_to_live(&self.node, req).await?;
        // Listing a lease's keys reveals them: each needs read permission (etcd 3.5).
        for key in &resp.keys {
            who.watch(key, &[])?;
        }
        Ok(Response::new(resp))
    }

    async fn lease_leases(
        &self,
        request: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        self.node.authorize(&request).await?.user()?;
        let leases = self
            .node
            .store
            .leases()
            .map_err(Error::Store)?
            .into_iter()
            .map(|l| LeaseStatus { id: l.id })
            .collect();
        Ok(Response::new(LeaseLeasesResponse {
            header: Some(self.node.header(self.node.revision())),
            leases,
        }))
    }
}
