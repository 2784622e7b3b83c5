//! KV: Range, Put, DeleteRange, Txn, Compact.

use std::sync::Arc;
use std::time::Duration;

use ballast_proto::etcdserverpb::kv_server::Kv;
use ballast_proto::etcdserverpb::request_op::Request as TxnOp;
use ballast_proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, TxnRequest, TxnResponse,
};
use ballast_store::mvcc::txn::{
    check_delete, check_put, check_range, check_txn, is_read_only, txn_ops_total,
};
use tonic::{Request, Response, Status};

use crate::error::Error;
use crate::node::Node;
use crate::quota::{put_cost, txn_cost};

/// How long a physical compaction may take before Compact answers anyway.
const PHYSICAL_COMPACTION_WAIT: Duration = Duration::from_secs(60);
/// Txns with more ops than this (nested ones included) are checked on a blocking thread.
const TXN_OPS_CHECKED_INLINE_MAX: usize = 256;

/// The KV service.
#[derive(Debug, Clone)]
pub struct KvService {
    node: Arc<Node>,
}

impl KvService {
    pub fn new(node: Arc<Node>) -> Self {
        KvService { node }
    }
}

/// True if every range in the txn (at any depth) asked for a serializable read.
fn is_serializable(req: &TxnRequest) -> bool {
    req.success
        .iter()
        .chain(&req.failure)
        .all(|op| match &op.request {
            Some(TxnOp::RequestRange(r)) => r.serializable,
            Some(TxnOp::RequestTxn(t)) => is_serializable(t),
            _ => true,
        })
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(
        &self,
        request: Request<RangeRequest>,
    ) -> Result<Response<RangeResponse>, Status> {
        let who = self.node.authorize(&request).await?;
        let req = request.into_inner();
        check_range(&req).map_err(Error::Store)?;
        who.range(&req)?;
        if !req.serializable {
            self.node.raft.read_barrier().await?;
        }
        let mut resp = self.node.store.range(&req).map_err(Error::Store)?;
        self.node.complete(&mut resp.header);
        Ok(Response::new(resp))
    }

    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let who = self.node.authorize(&request).await?;
        let req = request.into_inner();
        check_put(&req).map_err(Error::Store)?;
        who.put(&req, &self.node.store)?;
        self.node.check_quota(put_cost(&req)).await?;
        let mut resp = self.node.raft.propose_checked(req, who.stamp).await?;
        self.node.complete(&mut resp.header);
        Ok(Response::new(resp))
    }

    async fn delete_range(
        &self,
        request: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        let who = self.node.authorize(&request).await?;
        let req = request.into_inner();
        check_delete(&req).map_err(Error::Store)?;
        who.delete(&req)?;
        let mut resp = self.node.raft.propose_checked(req, who.stamp).await?;
        self.node.complete(&mut resp.header);
        Ok(Response::new(resp))
    }

    async fn txn(&self, request: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let who = self.node.authorize(&request).await?;
        let req = request.into_inner();
        let ops = txn_ops_total(&req);
        let check = {
            let node = self.node.clone();
            move || -> Result<_, Status> {
                check_txn(&req, node.config.max_txn_ops).map_err(Error::Store)?;
                who.txn(&req, &node.store)?;
                Ok((who, req))
            }
        };
        // A large txn's checks are CPU work: off the async workers, so the other
        // requests they serve do not wait behind it.
        let (who, req) = if ops > TXN_OPS_CHECKED_INLINE_MAX {
            tokio::task::spawn_blocking(check)
                .await
                .map_err(|e| Status::internal(e.to_string()))??
        } else {
            check()?
        };
        let mut resp = if is_read_only(&req) {
            if !is_serializable(&req) {
                self.node.raft.read_barrier().await?;
            }
            self.node.store.txn_read_only(&req).map_err(Error::Store)?
        } else {
            self.node.check_quota(txn_cost(&req)).await?;
            self.node.raft.propose_checked(req, who.stamp).await?
        };
        self.node.complete(&mut resp.header);
        Ok(Response::new(resp))
    }

    async fn compact(
        &self,
        request: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        let who = self.node.authorize(&request).await?;
        who.user()?;
        let req = request.into_inner();
        let (revision, physical) = (req.revision, req.physical);
        let mut resp = self.node.raft.propose_checked(req, who.stamp).await?;
        if physical {
            let store = self.node.store.clone();
            let done = tokio::task::spawn_blocking(move || {
                store.wait_compacted(revision, PHYSICAL_COMPACTION_WAIT)
            })
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
            if !done {
                return Err(Error::Timeout.into());
            }
        }
        self.node.complete(&mut resp.header);
        Ok(Response::new(resp))
    }
}
