//! Maintenance and cluster answers.

use ballast_proto::etcdserverpb as pb;

use crate::types::Header;

/// A member's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusResponse {
    pub header: Header,
    /// The etcd version the server reports.
    pub version: String,
    pub db_size: i64,
    pub db_size_in_use: i64,
    /// Member id of the leader as this member sees it.
    pub leader: u64,
    pub raft_index: u64,
    pub raft_term: u64,
    pub raft_applied_index: u64,
    pub errors: Vec<String>,
    pub is_learner: bool,
}

impl From<pb::StatusResponse> for StatusResponse {
    fn from(r: pb::StatusResponse) -> Self {
        StatusResponse {
            header: r.header.into(),
            version: r.version,
            db_size: r.db_size,
            db_size_in_use: r.db_size_in_use,
            leader: r.leader,
            raft_index: r.raft_index,
            raft_term: r.raft_term,
            raft_applied_index: r.raft_applied_index,
            errors: r.errors,
            is_learner: r.is_learner,
        }
    }
}

/// A hash of the MVCC history, to compare members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashKvResponse {
    pub header: Header,
    pub hash: u32,
    pub compact_revision: i64,
    pub hash_revision: i64,
}

/// A cluster member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: u64,
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
    pub is_learner: bool,
}

impl From<pb::Member> for Member {
    fn from(m: pb::Member) -> Self {
        Member {
            id: m.id,
            name: m.name,
            peer_urls: m.peer_urls,
            client_urls: m.client_urls,
            is_learner: m.is_learner,
        }
    }
}
