//! Lease expiry: the leader's lessor says which leases ran out; their revokes go through
//! raft like any client's, so every member deletes the same keys at the same revision.

use std::sync::Arc;
use std::time::Duration;

use ballast_proto::etcdserverpb::LeaseRevokeRequest;

use super::Node;
use crate::error::Error;

/// How often the leader looks for expired leases.
const LEASE_EXPIRY_CHECK_INTERVAL: Duration = Duration::from_millis(500);
/// Expired leases revoked per check at most (etcd revokes at most 1000 per second).
const LEASE_REVOKES_PER_CHECK_MAX: usize = 500;

/// The leader revokes expired leases through raft; followers do nothing.
pub(crate) async fn expire_leases(
    node: Arc<Node>,
) -> std::result::Result<(), tonic::transport::Error> {
    let mut every = tokio::time::interval(LEASE_EXPIRY_CHECK_INTERVAL);
    loop {
        tokio::select! {
            _ = node.shutdown.cancelled() => return Ok(()),
            _ = every.tick() => {}
        }
        for id in node.lessor.take_expired(LEASE_REVOKES_PER_CHECK_MAX) {
            let node = node.clone();
            node.tasks.clone().spawn(async move {
                tracing::debug!(lease = id, "lease expired; revoking");
                let result = node.raft.propose(LeaseRevokeRequest { id }).await;
                match result {
                    Ok(_) | Err(Error::Store(ballast_store::Error::LeaseNotFound)) => {}
                    Err(err) => {
                        tracing::warn!(lease = id, %err, "revoking an expired lease failed; will retry");
                        node.lessor.revoke_failed(id);
                    }
                }
            });
        }
    }
}
