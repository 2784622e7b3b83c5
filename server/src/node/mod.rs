//! The member's context: its configuration, store, raft handle, lessor, cluster view and
//! peer transport, and the response header every answer carries. Beside it, what the
//! member does with leases beyond the lessor's deadlines: answering keep-alives and
//! time-to-live queries on the leader (`leases`), revoking expired leases (`expiry`).

mod expiry;
mod leases;
mod probe;

pub(crate) use expiry::expire_leases;
pub(crate) use leases::{local_renew, local_time_to_live, renew, time_to_live};
pub(crate) use probe::probe_peers;

use std::sync::Arc;

use ballast_proto::etcdserverpb::alarm_request::AlarmAction;
use ballast_proto::etcdserverpb::{AlarmRequest, AlarmType, ResponseHeader};
use ballast_store::Error as StoreError;
use ballast_store::Store;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cluster::Cluster;
use crate::config::Config;
use crate::error::Error;
use crate::lessor::Lessor;
use crate::peer::PeerTransport;
use crate::quota::Quota;
use crate::raft::Raft;
use crate::tokens::Tokens;

/// This member: what every gRPC service, the peer service and the HTTP endpoints work
/// with. Built once at start (`server.rs`) and shared behind an `Arc`.
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) config: Config,
    pub(crate) store: Arc<Store>,
    pub(crate) raft: Arc<Raft>,
    pub(crate) lessor: Arc<Lessor>,
    /// The auth tokens this member accepts.
    pub(crate) tokens: Arc<Tokens>,
    pub(crate) cluster: Arc<Cluster>,
    pub(crate) transport: Arc<PeerTransport>,
    /// This member's space quota.
    pub(crate) quota: Quota,
    /// Cancelled when the server shuts down; every stream ends on it.
    pub(crate) shutdown: CancellationToken,
    /// Every task a request or the node spawns (watch and keep-alive streams, lease
    /// revokes): shutdown waits for them before raft and the store stop.
    pub(crate) tasks: TaskTracker,
}

impl Node {
    /// A response header for this member at `revision`.
    pub(crate) fn header(&self, revision: i64) -> ResponseHeader {
        ResponseHeader {
            cluster_id: self.cluster.cluster_id,
            member_id: self.cluster.local_id,
            revision,
            raft_term: self.raft.status().term,
        }
    }

    /// Completes a header the store filled with a revision.
    pub(crate) fn complete(&self, header: &mut Option<ResponseHeader>) {
        let revision = header.as_ref().map_or(0, |h| h.revision);
        *header = Some(self.header(revision));
    }

    /// Refuses a write that adds `cost` bytes past the space quota, raising the NOSPACE
    /// alarm for this member first (once: a raised alarm stays until disarmed).
    pub(crate) async fn check_quota(&self, cost: u64) -> Result<(), Error> {
        if cost == 0 || self.quota.fits(&self.store, cost) {
            return Ok(());
        }
        let local = self.cluster.local_id;
        let raised = self
            .store
            .alarms()
            .iter()
            .any(|a| a.member_id == local && a.alarm == AlarmType::Nospace as i32);
        if !raised {
            tracing::warn!(
                quota = self.quota.limit(),
                "a write exceeds the space quota; raising the NOSPACE alarm"
            );
            let raise = AlarmRequest {
                action: AlarmAction::Activate as i32,
                member_id: local,
                alarm: AlarmType::Nospace as i32,
            };
            if let Err(err) = self.raft.propose(raise).await {
                tracing::warn!(%err, "raising the NOSPACE alarm failed");
            }
        }
        Err(Error::Store(StoreError::NoSpace))
    }

    /// The current store revision.
    pub(crate) fn revision(&self) -> i64 {
        self.store.revisions().current
    }
}
