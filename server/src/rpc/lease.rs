//! Lease: Grant, Revoke, KeepAlive (a stream), TimeToLive, Leases.
//!
//! Deadlines live on the leader only: a follower forwards keep-alives and time-to-live
//! queries to the leader over the peer transport.

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

use super::Shared;
use crate::error::Error;
use crate::lessor::{RenewError, LEASE_TTL_MAX_SECONDS};

/// Keep-alive responses queued towards one client.
pub const LEASE_KEEPALIVE_OUTPUT_CAPACITY: usize = 16;

/// The Lease service.
#[derive(Debug, Clone)]
pub struct LeaseService {
    shared: Arc<Shared>,
}

impl LeaseService {
    pub fn new(shared: Arc<Shared>) -> Self {
        LeaseService { shared }
    }
}

/// Renews a lease on this member, which must be the leader. A lease granted through
/// another member may be applied there first: one this member does not know yet is
/// looked up again after a read barrier (etcd waits for its applied index likewise).
pub async fn local_renew(shared: &Shared, id: i64) -> Result<LeaseKeepAliveResponse, Status> {
    let ttl = match renew_known(shared, id)? {
        Some(ttl) => ttl,
        None => {
            shared.node.read_barrier().await?;
            // An unknown lease is answered with TTL 0, not an error (as etcd).
            renew_known(shared, id)?.unwrap_or(0)
        }
    };
    Ok(LeaseKeepAliveResponse {
        header: Some(shared.header(shared.revision())),
        id,
        ttl,
    })
}

/// The new TTL of a lease this member knows; None if it knows no such lease.
fn renew_known(shared: &Shared, id: i64) -> Result<Option<i64>, Status> {
    match shared.lessor.renew(id) {
        Ok(ttl) => Ok(Some(ttl)),
        Err(RenewError::NotFound) => Ok(None),
        Err(RenewError::NotPrimary) => Err(Error::NotLeader.into()),
    }
}

/// Renews a lease on the leader, wherever it is.
async fn renew(shared: &Shared, id: i64) -> Result<LeaseKeepAliveResponse, Status> {
    if shared.lessor.is_primary() {
        return local_renew(shared, id).await;
    }
    let leader = shared.node.status().leader;
    let mut client = shared.transport.client(leader).ok_or(Error::NoLeader)?;
    let mut response = client
        .lease_renew(LeaseKeepAliveRequest { id })
        .await?
        .into_inner();
    response.header = Some(shared.header(shared.revision()));
    Ok(response)
}

/// Remaining and granted TTL of a lease as this member (the leader) knows them; a lease
/// not known yet is looked up again after a read barrier, as in [`local_renew`].
pub async fn local_time_to_live(
    shared: &Shared,
    req: LeaseTimeToLiveRequest,
) -> Result<LeaseTimeToLiveResponse, Status> {
    let mut lease = shared.store.lease(req.id).map_err(Error::Store)?;
    if lease.is_none() {
        shared.node.read_barrier().await?;
        lease = shared.store.lease(req.id).map_err(Error::Store)?;
    }
    let header = Some(shared.header(shared.revision()));
    let Some(lease) = lease else {
        return Ok(LeaseTimeToLiveResponse {
            header,
            id: req.id,
            ttl: -1,
            ..Default::default()
        });
    };
    let (remaining, granted) = shared
        .lessor
        .time_to_live(req.id)
        .unwrap_or((lease.ttl, lease.ttl));
    let keys = if req.keys {
        shared.store.lease_keys(req.id).map_err(Error::Store)?
    } else {
        Vec::new()
    };
    Ok(LeaseTimeToLiveResponse {
        header,
        id: req.id,
        ttl: remaining,
        granted_ttl: granted,
        keys,
    })
}

#[tonic::async_trait]
impl Lease for LeaseService {
    async fn lease_grant(
        &self,
        request: Request<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        let mut req = request.into_inner();
        if req.ttl > LEASE_TTL_MAX_SECONDS {
            return Err(Error::LeaseTtlTooLarge.into());
        }
        // The TTL is settled before proposing so every member applies the same one.
        req.ttl = req.ttl.max(self.shared.config.min_lease_ttl());
        if req.id == 0 {
            req.id = self.shared.node.ids().next_positive();
        }
        let mut resp = self.shared.node.propose(req).await?;
        self.shared.complete(&mut resp.header);
        Ok(Response::new(resp))
    }

    async fn lease_revoke(
        &self,
        request: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        let req = request.into_inner();
        let mut resp = self.shared.node.propose(req).await?;
        self.shared.complete(&mut resp.header);
        Ok(Response::new(resp))
    }

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<BoxStream<LeaseKeepAliveResponse>>, Status> {
        let mut inbound = request.into_inner();
        let (out, out_rx) = mpsc::channel(LEASE_KEEPALIVE_OUTPUT_CAPACITY);
        let shared = self.shared.clone();
        tokio::spawn(async move {
            loop {
                let request = tokio::select! {
                    _ = shared.shutdown.cancelled() => break,
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
                let response = renew(&shared, req.id).await;
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
        let req = request.into_inner();
        if self.shared.lessor.is_primary() {
            return Ok(Response::new(local_time_to_live(&self.shared, req).await?));
        }
        let leader = self.shared.node.status().leader;
        let mut client = self
            .shared
            .transport
            .client(leader)
            .ok_or(Error::NoLeader)?;
        let mut response = client.lease_time_to_live(req).await?.into_inner();
        response.header = Some(self.shared.header(self.shared.revision()));
        Ok(Response::new(response))
    }

    async fn lease_leases(
        &self,
        _request: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        let leases = self
            .shared
            .store
            .leases()
            .map_err(Error::Store)?
            .into_iter()
            .map(|l| LeaseStatus { id: l.id })
            .collect();
        Ok(Response::new(LeaseLeasesResponse {
            header: Some(self.shared.header(self.shared.revision())),
            leases,
        }))
    }
}
