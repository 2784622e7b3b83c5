//! Cluster: membership with etcd's semantics. Adding, removing and promoting a member
//! are raft configuration changes; MemberUpdate and a member's published name and client
//! URLs are ordinary replicated entries.

use std::sync::Arc;

use ballast_proto::etcdserverpb::cluster_server::Cluster;
use ballast_proto::etcdserverpb::{
    Member, MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse,
    MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse,
    MemberUpdateRequest, MemberUpdateResponse,
};
use raft::eraftpb::ConfChangeType;
use tonic::{Request, Response, Status};

use crate::cluster::new_member_id;
use crate::error::Error;
use crate::node::Node;

/// Learners a cluster may have at once (etcd's maxLearners).
pub const LEARNERS_MAX: usize = 1;
/// A learner is promotable once its log matches at least this share of the leader's.
const LEARNER_READY_SHARE: f64 = 0.9;

/// The Cluster service.
#[derive(Debug, Clone)]
pub struct ClusterService {
    node: Arc<Node>,
}

impl ClusterService {
    pub fn new(node: Arc<Node>) -> Self {
        ClusterService { node }
    }

    fn header(&self) -> Option<ballast_proto::etcdserverpb::ResponseHeader> {
        Some(self.node.header(self.node.revision()))
    }

    fn member(&self, id: u64) -> Result<Member, Status> {
        self.node
            .cluster
            .member(id)
            .ok_or_else(|| Error::MemberNotFound.into())
    }

    /// Refuses URLs that do not parse, or that another member already uses.
    fn check_peer_urls(&self, urls: &[String], except: Option<u64>) -> Result<(), Status> {
        let valid = !urls.is_empty()
            && urls.iter().all(|u| {
                let rest = u
                    .strip_prefix("http://")
                    .or_else(|| u.strip_prefix("https://"));
                rest.is_some_and(|r| {
                    r.rsplit_once(':')
                        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
                })
            });
        if !valid {
            return Err(Error::InvalidPeerUrls.into());
        }
        let taken = self
            .node
            .cluster
            .members()
            .iter()
            .filter(|m| Some(m.id) != except)
            .any(|m| m.peer_urls.iter().any(|u| urls.contains(u)));
        if taken {
            return Err(Error::PeerUrlExists.into());
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        request: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        self.node.authorize(&request).await?.admin()?;
        let req = request.into_inner();
        self.check_peer_urls(&req.peer_urls, None)?;
        let members = self.node.cluster.members();
        if req.is_learner && members.iter().filter(|m| m.is_learner).count() >= LEARNERS_MAX {
            return Err(Error::TooManyLearners.into());
        }
        let member = Member {
            id: new_member_id(&req.peer_urls, self.node.cluster.cluster_id),
            name: String::new(),
            peer_urls: req.peer_urls,
            client_urls: Vec::new(),
            is_learner: req.is_learner,
        };
        let kind = if req.is_learner {
            ConfChangeType::AddLearnerNode
        } else {
            ConfChangeType::AddNode
        };
        let members = self
            .node
            .raft
            .propose_conf_change(kind, member.clone())
            .await?;
        Ok(Response::new(MemberAddResponse {
            header: self.header(),
            member: Some(member),
            members,
        }))
    }

    async fn member_remove(
        &self,
        request: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        self.node.authorize(&request).await?.admin()?;
        let member = self.member(request.into_inner().id)?;
        let members = self
            .node
            .raft
            .propose_conf_change(ConfChangeType::RemoveNode, member)
            .await?;
        Ok(Response::new(MemberRemoveResponse {
            header: self.header(),
            members,
        }))
    }

    async fn member_update(
        &self,
        request: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        self.node.authorize(&request).await?.admin()?;
        let req = request.into_inner();
        self.member(req.id)?;
        self.check_peer_urls(&req.peer_urls, Some(req.id))?;
        let members = self.node.raft.propose(req).await?;
        Ok(Response::new(MemberUpdateResponse {
            header: self.header(),
            members,
        }))
    }

    async fn member_list(
        &self,
        request: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        if request.into_inner().linearizable {
            self.node.raft.read_barrier().await?;
        }
        Ok(Response::new(MemberListResponse {
            // etcd's member list header carries no revision.
            header: Some(self.node.header(0)),
            members: self.node.cluster.members(),
        }))
    }

    async fn member_promote(
        &self,
        request: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        self.node.authorize(&request).await?.admin()?;
        let req = request.into_inner();
        let member = self.member(req.id)?;
        if !member.is_learner {
            return Err(Error::NotLearner.into());
        }
        let status = self.node.raft.status();
        if status.is_leader() {
            return Ok(Response::new(local_promote(&self.node, req.id).await?));
        }
        // Only the leader knows how far the learner is: ask it over the peer port, which
        // carries the peer certificates (a client URL may need other credentials).
        let mut client = self
            .node
            .transport
            .client(status.leader)
            .ok_or(Error::NoLeader)?;
        let mut response = client.member_promote(req).await?.into_inner();
        response.header = self.header();
        Ok(Response::new(response))
    }
}

/// Promotes a learner on this member, which must be the leader: only once the learner's
/// log has caught up with most of the leader's.
pub(crate) async fn local_promote(node: &Node, id: u64) -> Result<MemberPromoteResponse, Status> {
    let member = node.cluster.member(id).ok_or(Error::MemberNotFound)?;
    if !member.is_learner {
        return Err(Error::NotLearner.into());
    }
    let status = node.raft.status();
    if !status.is_leader() {
        return Err(Error::NotLeader.into());
    }
    let progress = node.raft.progress().await?;
    let leader_match = progress.get(&status.id).copied().unwrap_or(0);
    let learner_match = progress.get(&id).copied().unwrap_or(0);
    if (learner_match as f64) < (leader_match as f64) * LEARNER_READY_SHARE {
        return Err(Error::LearnerNotReady.into());
    }
    let members = node
        .raft
        .propose_conf_change(ConfChangeType::AddNode, member)
        .await?;
    Ok(MemberPromoteResponse {
        header: Some(node.header(node.revision())),
        members,
    })
}
