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
