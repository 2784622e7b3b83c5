//! The one place where errors become gRPC statuses: etcd's codes and exact message texts
//! (etcd's api/v3rpc/rpctypes), because clients match on the text.

use ballast_store::Error as StoreError;
use tonic::{Code, Status};

use crate::error::Error;

/// etcd's watch cancel reason for a watch id already in use on the stream.
pub const DUPLICATE_WATCH_ID: &str = "mvcc: duplicate watch ID provided on the WatchStream";

/// A gRPC code as grpc-go prints it (in etcd's watch cancel reasons).
pub(crate) fn go_code_name(code: Code) -> String {
    match code {
        Code::Ok => "OK".into(),
        Code::Cancelled => "Canceled".into(),
        other => format!("{other:?}"),
    }
}

fn status(code: Code, message: &str) -> Status {
    Status::new(code, message)
}

/// An error whose text is etcd's message after "etcdserver: ".
fn etcd(code: Code, err: &StoreError) -> Status {
    status(code, &format!("etcdserver: {err}"))
}

impl From<Error> for Status {
    fn from(err: Error) -> Status {
        use Code::*;
        match err {
            Error::Store(err) => match err {
                StoreError::Compacted => status(
                    OutOfRange,
                    "etcdserver: mvcc: required revision has been compacted",
                ),
                StoreError::FutureRevision => status(
                    OutOfRange,
                    "etcdserver: mvcc: required revision is a future revision",
                ),
                StoreError::EmptyKey => status(InvalidArgument, "etcdserver: key is not provided"),
                StoreError::KeyNotFound => status(InvalidArgument, "etcdserver: key not found"),
                StoreError::ValueProvided => {
                    status(InvalidArgument, "etcdserver: value is provided")
                }
                StoreError::LeaseProvided => {
                    status(InvalidArgument, "etcdserver: lease is provided")
                }
                StoreError::TooManyTxnOps => status(
                    InvalidArgument,
                    "etcdserver: too many operations in txn request",
                ),
                StoreError::DuplicateKey => status(
                    InvalidArgument,
                    "etcdserver: duplicate key given in txn request",
                ),
                StoreError::LeaseNotFound => {
                    status(NotFound, "etcdserver: requested lease not found")
                }
                StoreError::MemberNotFound => status(NotFound, "etcdserver: member not found"),
                StoreError::LeaseExists => {
                    status(FailedPrecondition, "etcdserver: lease already exists")
                }
                StoreError::RootUserNotExist
                | StoreError::RootRoleNotExist
                | StoreError::UserExists
                | StoreError::UserNotFound
                | StoreError::RoleExists
                | StoreError::RoleNotFound
                | StoreError::RoleNotGranted
                | StoreError::PermissionNotGranted
                | StoreError::AuthNotEnabled => etcd(FailedPrecondition, &err),
                StoreError::UserEmpty
                | StoreError::RoleEmpty
                | StoreError::AuthFailed
                | StoreError::PermissionNotGiven
                | StoreError::InvalidAuthMgmt
                | StoreError::AuthOldRevision => etcd(InvalidArgument, &err),
                StoreError::PermissionDenied => etcd(PermissionDenied, &err),
                StoreError::NoSpace => etcd(ResourceExhausted, &err),
                StoreError::CorruptCluster => etcd(DataLoss, &err),
                err @ (StoreError::Corrupt(_)
                | StoreError::RocksDb(_)
                | StoreError::Io(_)
                | StoreError::Unwritten) => {
                    tracing::error!(%err, "store failure");
                    status(Internal, &format!("etcdserver: {err}"))
                }
            },
            Error::InvalidAuthToken => status(Unauthenticated, "etcdserver: invalid auth token"),
            Error::RequestTooLarge => status(InvalidArgument, "etcdserver: request is too large"),
            Error::TooManyRequests => status(ResourceExhausted, "etcdserver: too many requests"),
            Error::Timeout => status(Unavailable, "etcdserver: request timed out"),
            Error::Stopped => status(Unavailable, "etcdserver: server stopped"),
            Error::NoLeader => status(Unavailable, "etcdserver: no leader"),
            Error::LeaderChanged => status(Unavailable, "etcdserver: leader changed"),
            Error::LeaseTtlTooLarge => status(OutOfRange, "etcdserver: too large lease TTL"),
            Error::BadLeaderTransferee => {
                status(FailedPrecondition, "etcdserver: bad leader transferee")
            }
            Error::MemberNotFound => status(NotFound, "etcdserver: member not found"),
            Error::Unhealthy => status(Unavailable, "etcdserver: unhealthy cluster"),
            Error::NotLeader => status(FailedPrecondition, "etcdserver: not leader"),
            Error::LearnerNotReady => status(
                FailedPrecondition,
                "etcdserver: can only promote a learner member which is in sync with leader",
            ),
            Error::NotLearner => status(
                FailedPrecondition,
                "etcdserver: can only promote a learner member",
            ),
            Error::PeerUrlExists => {
                status(FailedPrecondition, "etcdserver: Peer URLs already exists")
            }
            Error::TooManyLearners => status(
                FailedPrecondition,
                "etcdserver: too many learner members in cluster",
            ),
            Error::InvalidPeerUrls => {
                status(InvalidArgument, "etcdserver: given member URLs are invalid")
            }
            err @ (Error::Config(_) | Error::Fatal(_) | Error::Io(_)) => {
                status(Internal, &format!("etcdserver: {err}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_codes_and_texts() {
        let s = Status::from(Error::Store(StoreError::Compacted));
        assert_eq!(s.code(), Code::OutOfRange);
        assert_eq!(
            s.message(),
            "etcdserver: mvcc: required revision has been compacted"
        );
        let s = Status::from(Error::RequestTooLarge);
        assert_eq!(
            (s.code(), s.message()),
            (Code::InvalidArgument, "etcdserver: request is too large")
        );
        let s = Status::from(Error::Store(StoreError::LeaseNotFound));
        assert_eq!(
            (s.code(), s.message()),
            (Code::NotFound, "etcdserver: requested lease not found")
        );
        let s = Status::from(Error::NoLeader);
        assert_eq!(s.code(), Code::Unavailable);
    }
}
