//! The store's errors. Variants that a client can cause map one-to-one onto etcd's errors;
//! the mapping to gRPC codes and etcd's message texts lives in the server (`rpc/status.rs`).

/// Everything the state machine can refuse or fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A read or watch asked for a revision below the compaction point.
    #[error("mvcc: required revision has been compacted")]
    Compacted,
    /// A read asked for a revision above the current one.
    #[error("mvcc: required revision is a future revision")]
    FutureRevision,
    /// A request named no key.
    #[error("key is not provided")]
    EmptyKey,
    /// Put with ignore_value or ignore_lease on a key that does not exist.
    #[error("key not found")]
    KeyNotFound,
    /// Put with ignore_value that also carries a value.
    #[error("value is provided")]
    ValueProvided,
    /// Put with ignore_lease that also carries a lease.
    #[error("lease is provided")]
    LeaseProvided,
    /// A txn with more compares or ops at one level than allowed.
    #[error("too many operations in txn request")]
    TooManyTxnOps,
    /// A txn that writes the same key twice.
    #[error("duplicate key given in txn request")]
    DuplicateKey,
    /// The lease named by a request does not exist.
    #[error("requested lease not found")]
    LeaseNotFound,
    /// LeaseGrant with an id that is already in use.
    #[error("lease already exists")]
    LeaseExists,
    /// MemberUpdate of a member id that is not in the cluster.
    #[error("member not found")]
    MemberNotFound,
    /// AuthEnable without user root.
    #[error("root user does not exist")]
    RootUserNotExist,
    /// AuthEnable while user root lacks role root.
    #[error("root user does not have root role")]
    RootRoleNotExist,
    #[error("user name already exists")]
    UserExists,
    #[error("user name is empty")]
    UserEmpty,
    #[error("user name not found")]
    UserNotFound,
    #[error("role name already exists")]
    RoleExists,
    #[error("role name not found")]
    RoleNotFound,
    #[error("role name is empty")]
    RoleEmpty,
    /// A wrong user name or password, or a password for a user without one.
    #[error("authentication failed, invalid user ID or password")]
    AuthFailed,
    #[error("permission denied")]
    PermissionDenied,
    #[error("role is not granted to the user")]
    RoleNotGranted,
    #[error("permission is not granted to the role")]
    PermissionNotGranted,
    /// RoleGrantPermission without a permission.
    #[error("permission not given")]
    PermissionNotGiven,
    #[error("authentication is not enabled")]
    AuthNotEnabled,
    /// Deleting root, its role, or root's root role while auth is on.
    #[error("invalid auth management")]
    InvalidAuthMgmt,
    /// The request's permissions were checked before the latest auth change.
    #[error("revision of auth store is old")]
    AuthOldRevision,
    /// A write while the NOSPACE alarm is active (or that would take the store past its
    /// space quota).
    #[error("mvcc: database space exceeded")]
    NoSpace,
    /// A write while the CORRUPT alarm is active: a member's data differs from the others'.
    #[error("corrupt cluster")]
    CorruptCluster,
    /// Internal to applying: an entry read history that earlier entries of its apply
    /// batch wrote but RocksDB does not hold yet. The batch is written and the entry
    /// applied again; it never reaches a client.
    #[error("apply batch must be written first")]
    Unwritten,
    /// On-disk data that does not decode: a bug or a damaged disk, never a client's fault.
    #[error("corrupt store: {0}")]
    Corrupt(String),
    /// A file (snapshot) could not be read or written.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// RocksDB failed.
    #[error("rocksdb: {0}")]
    RocksDb(#[from] rocksdb::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<prost::DecodeError> for Error {
    fn from(err: prost::DecodeError) -> Self {
        Error::Corrupt(err.to_string())
    }
}

impl From<protobuf::ProtobufError> for Error {
    fn from(err: protobuf::ProtobufError) -> Self {
        Error::Corrupt(err.to_string())
    }
}
