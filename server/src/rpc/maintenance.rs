//! Maintenance: Status, Alarm, Hash, HashKV, Snapshot, Defragment, MoveLeader.

use std::sync::Arc;

use ballast_proto::etcdserverpb::alarm_request::AlarmAction;
use ballast_proto::etcdserverpb::maintenance_server::Maintenance;
use ballast_proto::etcdserverpb::{
    AlarmRequest, AlarmResponse, AlarmType, DefragmentRequest, DefragmentResponse, HashKvRequest,
    HashKvResponse, HashRequest, HashResponse, MoveLeaderRequest, MoveLeaderResponse,
    SnapshotRequest, SnapshotResponse, StatusRequest, StatusResponse,
};
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status};

use crate::error::Error;
use crate::node::Node;
use crate::{CLUSTER_VERSION, ETCD_VERSION};

/// The Maintenance service.
#[derive(Debug, Clone)]
pub struct MaintenanceService {
    node: Arc<Node>,
}

impl MaintenanceService {
    pub fn new(node: Arc<Node>) -> Self {
        MaintenanceService { node }
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(e.to_string()))
}

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    async fn status(
        &self,
        _request: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        let raft = self.node.raft.status();
        let backend = self.node.store.backend();
        // etcd's errors: no leader, then each alarm as its protobuf text form.
        let mut errors = Vec::new();
        if raft.leader == raft::INVALID_ID {
            errors.push("etcdserver: no leader".to_string());
        }
        for alarm in self.node.store.alarms() {
            let kind = AlarmType::try_from(alarm.alarm).unwrap_or(AlarmType::None);
            errors.push(format!(
                "memberID:{} alarm:{} ",
                alarm.member_id,
                kind.as_str_name()
            ));
        }
        Ok(Response::new(StatusResponse {
            header: Some(self.node.header(self.node.revision())),
            version: ETCD_VERSION.to_string(),
            db_size: backend.size_bytes() as i64,
            leader: raft.leader,
            raft_index: raft.commit,
            raft_term: raft.term,
            // The store's own index: the driver publishes its status only after the
            // waiters of a Ready were answered, so a caller could see an older one.
            raft_applied_index: self.node.store.applied_index().max(raft.applied),
            errors,
            db_size_in_use: backend.live_bytes() as i64,
            is_learner: self.node.cluster.is_learner(raft.id),
            storage_version: CLUSTER_VERSION.to_string(),
            db_size_quota: self.node.quota.limit().map_or(0, |q| q as i64),
            downgrade_info: None,
        }))
    }

    async fn alarm(
        &self,
        request: Request<AlarmRequest>,
    ) -> Result<Response<AlarmResponse>, Status> {
        // Every action goes through raft, as in etcd, so a list is linearizable. Listing
        // is open (etcdctl's endpoint health lists alarms); raising or clearing one
        // takes the root role when auth is on, where etcd 3.5 checks nothing.
        let who = self.node.authorize(&request).await?;
        let req = request.into_inner();
        match AlarmAction::try_from(req.action) {
            Ok(AlarmAction::Get) => {}
            Ok(AlarmAction::Activate | AlarmAction::Deactivate) => who.admin()?,
            Err(_) => return Err(Status::invalid_argument("etcdserver: unknown alarm action")),
        }
        let mut resp = self.node.raft.propose(req).await?;
        self.node.complete(&mut resp.header);
        Ok(Response::new(resp))
    }

    /// The whole state as etcd's backend database, then its SHA-256 (`rpc/snapshot.rs`).
    async fn snapshot(
        &self,
        request: Request<SnapshotRequest>,
    ) -> Result<Response<BoxStream<SnapshotResponse>>, Status> {
        self.node.authorize(&request).await?.admin()?;
        Ok(Response::new(super::snapshot::stream(&self.node).await?))
    }

    async fn defragment(
        &self,
        request: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        self.node.authorize(&request).await?.admin()?;
        let store = self.node.store.clone();
        blocking(move || store.backend().compact_all()).await?;
        // etcd answers a defragment with no header.
        Ok(Response::new(DefragmentResponse { header: None }))
    }

    async fn hash(&self, request: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        self.node.authorize(&request).await?.admin()?;
        let store = self.node.store.clone();
        let (hash, _, revision) = blocking(move || store.hash_kv(0))
            .await?
            .map_err(Error::Store)?;
        Ok(Response::new(HashResponse {
            header: Some(self.node.header(revision)),
            hash,
        }))
    }

    async fn hash_kv(
        &self,
        request: Request<HashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        self.node.authorize(&request).await?.admin()?;
        let revision = request.into_inner().revision;
        Ok(Response::new(local_hash_kv(&self.node, revision).await?))
    }

    async fn move_leader(
        &self,
        request: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        self.node.authorize(&request).await?.admin()?;
        let target = request.into_inner().target_id;
        let raft = self.node.raft.status();
        if !raft.is_leader() {
            return Err(Error::NotLeader.into());
        }
        let votes = self
            .node
            .cluster
            .member(target)
            .is_some_and(|m| !m.is_learner);
        if !votes {
            return Err(Error::BadLeaderTransferee.into());
        }
        if target == raft.id {
            // Nothing to move: etcd answers with no header.
            return Ok(Response::new(MoveLeaderResponse { header: None }));
        }
        self.node.raft.transfer_leader(target).await?;
        Ok(Response::new(MoveLeaderResponse {
            header: Some(self.node.header(self.node.revision())),
        }))
    }
}

/// This member's hash of its history at `revision` (0: the current one); the header
/// carries its current revision. Served to clients and, for the corruption check, to
/// peers.
pub(crate) async fn local_hash_kv(node: &Node, revision: i64) -> Result<HashKvResponse, Status> {
    let store = node.store.clone();
    let (hash, compact_revision, hash_revision) = blocking(move || store.hash_kv(revision))
        .await?
        .map_err(Error::Store)?;
    Ok(HashKvResponse {
        header: Some(node.header(node.revision())),
        hash,
        compact_revision,
        hash_revision,
    })
}
