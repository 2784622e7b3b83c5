//! The server's errors. How each reaches a client (gRPC code and etcd's message text) is
//! decided in one place: `rpc/status.rs`.

/// Everything a request can fail with in the server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Refused or failed by the state machine.
    #[error(transparent)]
    Store(#[from] ballast_store::Error),
    /// The encoded request exceeds `--max-request-bytes`.
    #[error("request is too large")]
    RequestTooLarge,
    /// The raft mailbox is full.
    #[error("too many requests")]
    TooManyRequests,
    /// No answer within the request timeout.
    #[error("request timed out")]
    Timeout,
    /// The node is shutting down.
    #[error("server stopped")]
    Stopped,
    /// The cluster has no leader.
    #[error("no leader")]
    NoLeader,
    /// The proposal was lost to a leader change.
    #[error("leader changed")]
    LeaderChanged,
    /// LeaseGrant above the largest TTL.
    #[error("too large lease TTL")]
    LeaseTtlTooLarge,
    /// MoveLeader to a member that cannot lead.
    #[error("bad leader transferee")]
    BadLeaderTransferee,
    /// A member id that is not in the cluster.
    #[error("member not found")]
    MemberNotFound,
    /// A membership change that cannot be made now (one is already pending).
    #[error("unhealthy cluster")]
    Unhealthy,
    /// The request must be served by the leader.
    #[error("not leader")]
    NotLeader,
    /// MemberPromote of a learner that has not caught up.
    #[error("can only promote a learner member which is in sync with leader")]
    LearnerNotReady,
    /// MemberPromote of a voting member.
    #[error("can only promote a learner member")]
    NotLearner,
    /// MemberAdd or MemberUpdate with peer URLs another member has.
    #[error("Peer URLs already exists")]
    PeerUrlExists,
    /// MemberAdd of a learner when the cluster has its maximum.
    #[error("too many learner members in cluster")]
    TooManyLearners,
    /// Peer URLs that do not parse.
    #[error("given member URLs are invalid")]
    InvalidPeerUrls,
    /// A token that is unknown, expired or badly signed.
    #[error("invalid auth token")]
    InvalidAuthToken,
    /// Configuration that cannot be served.
    #[error("{0}")]
    Config(String),
    /// The node failed and cannot continue (disk, corruption).
    #[error("fatal: {0}")]
    Fatal(String),
    /// An I/O error at startup.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
