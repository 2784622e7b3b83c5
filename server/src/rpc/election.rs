//! Election (v3electionpb): etcd's election recipe, run inside the member for clients
//! that call the service. Candidates own `<name>/<lease in hex>`; the one created first
//! leads, and its value is the election's. The key layout is the recipe's, so `etcdctl
//! elect` and ballast-client's `Election` take part in the same elections.

use std::sync::Arc;

use ballast_proto::etcdserverpb::request_op::Request as Op;
use ballast_proto::etcdserverpb::{DeleteRangeRequest, RequestOp, ResponseHeader, TxnRequest};
use ballast_proto::v3electionpb::election_server::Election;
use ballast_proto::v3electionpb::{
    CampaignRequest, CampaignResponse, LeaderKey, LeaderRequest, LeaderResponse, ProclaimRequest,
    ProclaimResponse, ResignRequest, ResignResponse,
};
use ballast_store::KeyRange;
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status};

use super::recipes::{
    created_at, first_created, get_op, own_key, prefix, put_op, range_kvs, wait_for, Abandoned,
    Recipe,
};
use crate::auth::Authorized;
use crate::node::Node;

/// etcd's errors (plain errors there, so gRPC code Unknown).
const NOT_LEADER: &str = "election: not leader";
const NO_LEADER: &str = "election: no leader";
const MISSING_LEADER_KEY: &str = "\"leader\" field must be provided";
/// Leader changes queued for one observer.
const OBSERVE_QUEUE_CAPACITY: usize = 16;

#[derive(Debug, Clone)]
pub struct ElectionService {
    node: Arc<Node>,
}

impl ElectionService {
    pub fn new(node: Arc<Node>) -> Self {
        ElectionService { node }
    }

    fn recipe<'a>(&'a self, who: &'a Authorized) -> Recipe<'a> {
        Recipe {
            node: &self.node,
            who,
        }
    }
}

/// Puts `value` on the leader's key if it still leads (created at `leader.rev`).
async fn proclaim(
    recipe: &Recipe<'_>,
    leader: &LeaderKey,
    value: Bytes,
) -> Result<ResponseHeader, Status> {
    let resp = recipe
        .txn(TxnRequest {
            compare: vec![created_at(leader.key.clone(), leader.rev)],
            success: vec![put_op(leader.key.clone(), value, leader.lease)],
            failure: Vec::new(),
        })
        .await?;
    if !resp.succeeded {
        return Err(Status::unknown(NOT_LEADER));
    }
    Ok(resp.header.unwrap_or_default())
}

/// Deletes the leader's key if it still leads.
async fn resign(recipe: &Recipe<'_>, leader: &LeaderKey) -> Result<ResponseHeader, Status> {
    let delete = RequestOp {
        request: Some(Op::RequestDeleteRange(DeleteRangeRequest {
            key: leader.key.clone(),
            ..Default::default()
        })),
    };
    let resp = recipe
        .txn(TxnRequest {
            compare: vec![created_at(leader.key.clone(), leader.rev)],
            success: vec![delete],
            failure: Vec::new(),
        })
        .await?;
    Ok(resp.header.unwrap_or_default())
}

#[tonic::async_trait]
impl Election for ElectionService {
    async fn campaign(
        &self,
        request: Request<CampaignRequest>,
    ) -> Result<Response<CampaignResponse>, Status> {
        let who = self.node.authorize(&request).await?;
        let req = request.into_inner();
        let recipe = self.recipe(&who);
        let key = own_key(&req.name, req.lease);
        let entered = recipe
            .txn(TxnRequest {
                compare: vec![created_at(key.clone(), 0)],
                success: vec![put_op(key.clone(), req.value.clone(), req.lease)],
                failure: vec![get_op(key.clone())],
            })
            .await?;
        let header = entered.header.unwrap_or_default();
        let mut leader = LeaderKey {
            name: req.name.clone(),
            key: key.clone(),
            rev: header.revision,
            lease: req.lease,
        };
        if !entered.succeeded {
            let existing = range_kvs(&entered, 0).first().cloned().unwrap_or_default();
            leader.rev = existing.create_revision;
            if existing.value != req.value {
                if let Err(err) = proclaim(&recipe, &leader, req.value.clone()).await {
                    let _ = resign(&recipe, &leader).await;
                    return Err(err);
                }
            }
        }
        let abandoned = Abandoned::delete_if_created(self.node.clone(), key, leader.rev);
        recipe
            .wait_deletes(prefix(&req.name), leader.rev - 1)
            .await?;
        abandoned.disarm();
        Ok(Response::new(CampaignResponse {
            header: Some(header),
            leader: Some(leader),
        }))
    }

    async fn proclaim(
        &self,
        request: Request<ProclaimRequest>,
    ) -> Result<Response<ProclaimResponse>, Status> {
        let who = self.node.authorize(&request).await?;
        let req = request.into_inner();
        let leader = req
            .leader
            .ok_or_else(|| Status::unknown(MISSING_LEADER_KEY))?;
        let header = proclaim(&self.recipe(&who), &leader, req.value).await?;
        Ok(Response::new(ProclaimResponse {
            header: Some(header),
        }))
    }

    async fn leader(
        &self,
        request: Request<LeaderRequest>,
    ) -> Result<Response<LeaderResponse>, Status> {
        let who = self.node.authorize(&request).await?;
        let name = request.into_inner().name;
        let resp = self
            .recipe(&who)
            .range(first_created(prefix(&name)))
            .await?;
        let Some(kv) = resp.kvs.into_iter().next() else {
            return Err(Status::unknown(NO_LEADER));
        };
        Ok(Response::new(LeaderResponse {
            header: resp.header,
            kv: Some(kv),
        }))
    }

    /// The leader now, if any, then each new leader or value, until the client goes.
    async fn observe(
        &self,
        request: Request<LeaderRequest>,
    ) -> Result<Response<BoxStream<LeaderResponse>>, Status> {
        let who = self.node.authorize(&request).await?;
        let name = request.into_inner().name;
        let range = KeyRange::new(prefix(&name), super::recipes::prefix_end(&prefix(&name)));
        who.watch(&range.start, &super::recipes::prefix_end(&prefix(&name)))?;
        let (out, responses) = mpsc::channel(OBSERVE_QUEUE_CAPACITY);
        let node = self.node.clone();
        self.node.tasks.spawn(async move {
            let recipe = Recipe {
                node: &node,
                who: &who,
            };
            let mut last = None;
            loop {
                let observed = async {
                    let resp = recipe.range(first_created(prefix(&name))).await?;
                    let header = resp.header.unwrap_or_default();
                    Ok::<_, Status>((header, resp.kvs.into_iter().next()))
                };
                let (header, kv) = tokio::select! {
                    _ = out.closed() => return,
                    observed = observed => match observed {
                        Ok(found) => found,
                        Err(status) => {
                            let _ = out.send(Err(status)).await;
                            return;
                        }
                    },
                };
                if let Some(kv) = kv {
                    let seen = Some((kv.key.clone(), kv.mod_revision));
                    if seen != last {
                        last = seen;
                        let response = LeaderResponse {
                            header: Some(header),
                            kv: Some(kv),
                        };
                        if out.send(Ok(response)).await.is_err() {
                            return;
                        }
                    }
                }
                // Anything under the name may change the leader: look again after it.
                let changed = wait_for(&node, range.clone(), header.revision + 1, |_| true);
                tokio::select! {
                    _ = out.closed() => return,
                    changed = changed => if let Err(status) = changed {
                        let _ = out.send(Err(status)).await;
                        return;
                    },
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(responses))))
    }

    async fn resign(
        &self,
        request: Request<ResignRequest>,
    ) -> Result<Response<ResignResponse>, Status> {
        let who = self.node.authorize(&request).await?;
        let leader = request
            .into_inner()
            .leader
            .ok_or_else(|| Status::unknown(MISSING_LEADER_KEY))?;
        let header = resign(&self.recipe(&who), &leader).await?;
        Ok(Response::new(ResignResponse {
            header: Some(header),
        }))
    }
}
