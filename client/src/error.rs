//! The client's errors. A server refusal keeps the gRPC code and etcd's message text, so
//! callers can match on either.

use tonic::Code;

/// Everything a client call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with an error status (etcd's code and message).
    #[error("{message} (code {code:?})")]
    Status {
        /// The gRPC status code.
        code: Code,
        /// The server's message (etcd's text).
        message: String,
    },
    /// No connection could be made.
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// An endpoint string that is not a URL or host:port.
    #[error("invalid endpoint {0:?}")]
    InvalidEndpoint(String),
    /// The watch asked for (or fell behind) history that has been compacted: re-list at
    /// the current revision, then watch again from there.
    #[error("watch history compacted at revision {compact_revision}")]
    Compacted {
        /// The store's compaction point: re-list at or above it.
        compact_revision: i64,
    },
    /// The server canceled the watch, with its reason.
    #[error("watch canceled by the server: {0}")]
    WatchCanceled(String),
    /// The lease is gone: expired or revoked.
    #[error("lease {0} not found or expired")]
    LeaseLost(i64),
    /// This campaigner is not (or no longer) the election's leader.
    #[error("election: not leader")]
    NotLeader,
    /// The session's lease expired before the lock was acquired.
    #[error("session expired")]
    SessionExpired,
    /// The stream to the server ended.
    #[error("stream closed")]
    StreamClosed,
}

impl From<tonic::Status> for Error {
    fn from(status: tonic::Status) -> Self {
        Error::Status {
            code: status.code(),
            message: status.message().to_string(),
        }
    }
}

impl Error {
    /// A unary call that got no answer within the request timeout.
    pub(crate) fn timeout() -> Error {
        Error::Status {
            code: Code::DeadlineExceeded,
            message: "client: request timed out".into(),
        }
    }

    /// The gRPC code of a server refusal.
    pub fn code(&self) -> Option<Code> {
        match self {
            Error::Status { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The server's message of a refusal (etcd's text, e.g. "etcdserver: key is not provided").
    pub fn message(&self) -> Option<&str> {
        match self {
            Error::Status { message, .. } => Some(message),
            _ => None,
        }
    }
}

/// Result of a client call.
pub type Result<T, E = Error> = std::result::Result<T, E>;
