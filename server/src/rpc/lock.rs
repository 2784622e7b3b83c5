//! Lock (v3lockpb): etcd's mutex, run inside the member for clients that call the
//! service (jetcd, the etcd-client crate) instead of running the recipe themselves as
//! etcdctl does. The key layout is the recipe's, so both kinds of client exclude each
//! other on the same name.

use std::sync::Arc;

use ballast_proto::etcdserverpb::{RangeRequest, RequestOp, TxnRequest};
use ballast_proto::v3lockpb::lock_server::Lock;
use ballast_proto::v3lockpb::{LockRequest, LockResponse, UnlockRequest, UnlockResponse};
use bytes::Bytes;
use tonic::{Request, Response, Status};

use super::recipes::{
    created_at, first_created, get_op, own_key, prefix, put_op, range_kvs, Abandoned, Recipe,
};
use crate::node::Node;

/// etcd's answer when the lock was won by a key that its lease took away meanwhile.
const SESSION_EXPIRED: &str = "mutex: session is expired";

#[derive(Debug, Clone)]
pub struct LockService {
    node: Arc<Node>,
}

impl LockService {
    pub fn new(node: Arc<Node>) -> Self {
        LockService { node }
    }
}

#[tonic::async_trait]
impl Lock for LockService {
    async fn lock(&self, request: Request<LockRequest>) -> Result<Response<LockResponse>, Status> {
        let who = self.node.authorize(&request).await?;
        let req = request.into_inner();
        let recipe = Recipe {
            node: &self.node,
            who: &who,
        };
        let key = own_key(&req.name, req.lease);
        let owner = || RequestOp {
            request: Some(
                ballast_proto::etcdserverpb::request_op::Request::RequestRange(first_created(
                    prefix(&req.name),
                )),
            ),
        };
        let enqueued = recipe
            .txn(TxnRequest {
                compare: vec![created_at(key.clone(), 0)],
                success: vec![put_op(key.clone(), Bytes::new(), req.lease), owner()],
                failure: vec![get_op(key.clone()), owner()],
            })
            .await?;
        let header = enqueued.header.unwrap_or_default();
        let mine = if enqueued.succeeded {
            header.revision
        } else {
            range_kvs(&enqueued, 0)
                .first()
                .map_or(header.revision, |kv| kv.create_revision)
        };
        let holder = range_kvs(&enqueued, 1).first();
        if holder.is_none_or(|kv| kv.create_revision == mine) {
            return Ok(Response::new(LockResponse {
                header: Some(header),
                key,
            }));
        }
        // A caller that goes away while waiting takes its key with it, as etcd unlocks
        // on a cancelled wait.
        let abandoned = Abandoned::delete(self.node.clone(), key.clone());
        let header = recipe.wait_deletes(prefix(&req.name), mine - 1).await?;
        // The lease may have run out while it waited (etcd #11456): the key must remain.
        let still = recipe
            .range(RangeRequest {
                key: key.clone(),
                ..Default::default()
            })
            .await?;
        abandoned.disarm();
        if still.kvs.is_empty() {
            return Err(Status::unknown(SESSION_EXPIRED));
        }
        Ok(Response::new(LockResponse {
            header: Some(header),
            key,
        }))
    }

    async fn unlock(
        &self,
        request: Request<UnlockRequest>,
    ) -> Result<Response<UnlockResponse>, Status> {
        let who = self.node.authorize(&request).await?;
        let recipe = Recipe {
            node: &self.node,
            who: &who,
        };
        let deleted = recipe.delete(request.into_inner().key).await?;
        Ok(Response::new(UnlockResponse {
            header: deleted.header,
        }))
    }
}
