//! Cluster: MemberList. Membership changes arrive with replication.

use std::sync::Arc;

use ballast_proto::etcdserverpb::cluster_server::Cluster;
use ballast_proto::etcdserverpb::{MemberListRequest, MemberListResponse};
use tonic::{Request, Response, Status};

use super::Shared;

/// The Cluster service.
#[derive(Debug, Clone)]
pub struct ClusterService {
    shared: Arc<Shared>,
}

impl ClusterService {
    pub fn new(shared: Arc<Shared>) -> Self {
        ClusterService { shared }
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_list(
        &self,
        request: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        if request.into_inner().linearizable {
            self.shared.node.read_barrier().await?;
        }
        Ok(Response::new(MemberListResponse {
            header: Some(self.shared.header(self.shared.revision())),
            members: self.shared.membership.members.clone(),
        }))
    }
}
