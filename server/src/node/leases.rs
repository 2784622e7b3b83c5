//! Keep-alives and time-to-live queries: answered by the leader's lessor, which holds
//! the deadlines; a follower forwards them to the leader over the peer transport.

use ballast_proto::etcdserverpb::{
    LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use tonic::Status;

use super::Node;
use crate::error::Error;
use crate::lessor::RenewError;

/// Renews a lease on this member, which must be the leader. A lease granted through
/// another member may be applied there first: one this member does not know yet is
/// looked up again after a read barrier (etcd waits for its applied index likewise).
pub(crate) async fn local_renew(node: &Node, id: i64) -> Result<LeaseKeepAliveResponse, Status> {
    let ttl = match renew_known(node, id)? {
        Some(ttl) => ttl,
        None => {
            node.raft.read_barrier().await?;
            // An unknown lease is answered with TTL 0, not an error (as etcd).
            renew_known(node, id)?.unwrap_or(0)
        }
    };
    Ok(LeaseKeepAliveResponse {
        header: Some(node.header(node.revision())),
        id,
        ttl,
    })
}

/// The new TTL of a lease this member knows; None if it knows no such lease.
fn renew_known(node: &Node, id: i64) -> Result<Option<i64>, Status> {
    match node.lessor.renew(id) {
        Ok(ttl) => Ok(Some(ttl)),
        Err(RenewError::NotFound) => Ok(None),
        Err(RenewError::NotPrimary) => Err(Error::NotLeader.into()),
    }
}

/// Renews a lease on the leader, wherever it is.
pub(crate) async fn renew(node: &Node, id: i64) -> Result<LeaseKeepAliveResponse, Status> {
    if node.lessor.is_primary() {
        return local_renew(node, id).await;
    }
    let leader = node.raft.status().leader;
    let mut client = node.transport.client(leader).ok_or(Error::NoLeader)?;
    let mut response = client
        .lease_renew(LeaseKeepAliveRequest { id })
        .await?
        .into_inner();
    response.header = Some(node.header(node.revision()));
    Ok(response)
}

/// Remaining and granted TTL of a lease as this member (the leader) knows them; a lease
/// not known yet is looked up again after a read barrier, as in [`local_renew`].
pub(crate) async fn local_time_to_live(
    node: &Node,
    req: LeaseTimeToLiveRequest,
) -> Result<LeaseTimeToLiveResponse, Status> {
    let mut lease = node.store.lease(req.id).map_err(Error::Store)?;
    if lease.is_none() {
        node.raft.read_barrier().await?;
        lease = node.store.lease(req.id).map_err(Error::Store)?;
    }
    let header = Some(node.header(node.revision()));
    let Some(lease) = lease else {
        return Ok(LeaseTimeToLiveResponse {
            header,
            id: req.id,
            ttl: -1,
            ..Default::default()
        });
    };
    let (remaining, granted) = node
        .lessor
        .time_to_live(req.id)
        .unwrap_or((lease.ttl, lease.ttl));
    let keys = if req.keys {
        node.store.lease_keys(req.id).map_err(Error::Store)?
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

/// Remaining and granted TTL of a lease, asked of the leader, wherever it is.
pub(crate) async fn time_to_live(
    node: &Node,
    req: LeaseTimeToLiveRequest,
) -> Result<LeaseTimeToLiveResponse, Status> {
    if node.lessor.is_primary() {
        return local_time_to_live(node, req).await;
    }
    let leader = node.raft.status().leader;
    let mut client = node.transport.client(leader).ok_or(Error::NoLeader)?;
    let mut response = client.lease_time_to_live(req).await?.into_inner();
    response.header = Some(node.header(node.revision()));
    Ok(response)
}
