//! Maintenance and cluster answers.

use ballast_proto::etcdserverpb as pb;

use crate::types::Header;

/// A member's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusResponse {
    /// The member's response header.
    pub header: Header,
    /// The etcd version the server reports.
    pub version: String,
    /// Bytes the backend occupies.
    pub db_size: i64,
    /// Bytes of the backend in use.
    pub db_size_in_use: i64,
    /// Member id of the leader as this member sees it (0: none).
    pub leader: u64,
    /// The raft commit index.
    pub raft_index: u64,
    /// The raft term.
    pub raft_term: u64,
    /// The raft applied index.
    pub raft_applied_index: u64,
    /// Alarms and health problems.
    pub errors: Vec<String>,
    /// True if the member is a learner.
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
    /// The member's response header.
    pub header: Header,
    /// The hash.
    pub hash: u32,
    /// The compaction point when the hash was computed.
    pub compact_revision: i64,
    /// The revision the hash covers up to.
    pub hash_revision: i64,
}

/// A cluster member.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Member {
    /// The member id.
    pub id: u64,
    /// Its name; empty until it has started.
    pub name: String,
    /// URLs it talks to its peers on.
    pub peer_urls: Vec<String>,
    /// URLs it serves clients on; empty until it has started.
    pub client_urls: Vec<String>,
    /// True for a non-voting learner.
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

/// Kinds of alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlarmKind {
    /// No alarm (in a request: any).
    None = 0,
    /// The space quota is exhausted.
    NoSpace = 1,
    /// The store is corrupt.
    Corrupt = 2,
}

/// An alarm raised on a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alarm {
    /// The member that raised it (0 in a request: every member).
    pub member_id: u64,
    /// What it is about.
    pub kind: AlarmKind,
}

impl From<pb::AlarmMember> for Alarm {
    fn from(a: pb::AlarmMember) -> Self {
        let kind = match pb::AlarmType::try_from(a.alarm) {
            Ok(pb::AlarmType::Nospace) => AlarmKind::NoSpace,
            Ok(pb::AlarmType::Corrupt) => AlarmKind::Corrupt,
            _ => AlarmKind::None,
        };
        Alarm {
            member_id: a.member_id,
            kind,
        }
    }
}
