//! Transactions: compares, then one list of ops or the other, atomically.

use ballast_proto::etcdserverpb as pb;
use ballast_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use ballast_proto::etcdserverpb::request_op::Request;
use ballast_proto::etcdserverpb::response_op::Response;
use bytes::Bytes;

use crate::kv::{
    DeleteOptions, DeleteResponse, GetOptions, GetResponse, PutOptions, PutResponse, Span,
};
use crate::types::Header;

/// How a compare tests the key's field against the given value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// Equal to the given value.
    Equal,
    /// Equal to the given value.
    NotEqual,
    /// Greater than the given value.
    Greater,
    /// Less than the given value.
    Less,
}

impl CompareOp {
    fn result(self) -> i32 {
        let result = match self {
            CompareOp::Equal => CompareResult::Equal,
            CompareOp::NotEqual => CompareResult::NotEqual,
            CompareOp::Greater => CompareResult::Greater,
            CompareOp::Less => CompareResult::Less,
        };
        result as i32
    }
}

/// One condition of a transaction. A missing key compares as version, revisions and
/// lease 0; a value compare on a missing key is always false.
#[derive(Debug, Clone)]
pub struct Compare(pb::Compare);

impl Compare {
    fn new(
        key: impl AsRef<[u8]>,
        target: CompareTarget,
        op: CompareOp,
        union: TargetUnion,
    ) -> Self {
        Compare(pb::Compare {
            result: op.result(),
            target: target as i32,
            key: Bytes::copy_from_slice(key.as_ref()),
            target_union: Some(union),
            range_end: Bytes::new(),
        })
    }
    /// Compares the key's version (writes since creation; 0 if missing).
    pub fn version(key: impl AsRef<[u8]>, op: CompareOp, version: i64) -> Self {
        Self::new(
            key,
            CompareTarget::Version,
            op,
            TargetUnion::Version(version),
        )
    }
    /// Compares the key's create revision (0 if missing).
    pub fn create_revision(key: impl AsRef<[u8]>, op: CompareOp, revision: i64) -> Self {
        Self::new(
            key,
            CompareTarget::Create,
            op,
            TargetUnion::CreateRevision(revision),
        )
    }
    /// Compares the key's last modification revision (0 if missing).
    pub fn mod_revision(key: impl AsRef<[u8]>, op: CompareOp, revision: i64) -> Self {
        Self::new(
            key,
            CompareTarget::Mod,
            op,
            TargetUnion::ModRevision(revision),
        )
    }
    /// Compares the key's value (always false if the key is missing).
    pub fn value(key: impl AsRef<[u8]>, op: CompareOp, value: impl AsRef<[u8]>) -> Self {
        let value = Bytes::copy_from_slice(value.as_ref());
        Self::new(key, CompareTarget::Value, op, TargetUnion::Value(value))
    }
    /// Compares the key's lease id (0 if none).
    pub fn lease(key: impl AsRef<[u8]>, op: CompareOp, lease: i64) -> Self {
        Self::new(key, CompareTarget::Lease, op, TargetUnion::Lease(lease))
    }
    /// Apply to every key in [key, end).
    pub fn with_range(mut self, end: impl AsRef<[u8]>) -> Self {
        self.0.range_end = Bytes::copy_from_slice(end.as_ref());
        self
    }
    /// Apply to every key starting with the key.
    pub fn with_prefix(mut self) -> Self {
        let (key, end) = Span::Prefix.resolve(self.0.key.clone());
        self.0.key = key;
        self.0.range_end = end;
        self
    }
}

/// One operation inside a transaction.
#[derive(Debug, Clone)]
pub struct TxnOp(pb::RequestOp);

impl TxnOp {
    /// A read inside the transaction; it sees earlier writes of the transaction.
    pub fn get(key: impl AsRef<[u8]>, options: GetOptions) -> Self {
        let req = options.request(Bytes::copy_from_slice(key.as_ref()));
        TxnOp(pb::RequestOp {
            request: Some(Request::RequestRange(req)),
        })
    }
    /// A write inside the transaction.
    pub fn put(key: impl AsRef<[u8]>, value: impl AsRef<[u8]>, options: PutOptions) -> Self {
        let req = options.request(
            Bytes::copy_from_slice(key.as_ref()),
            Bytes::copy_from_slice(value.as_ref()),
        );
        TxnOp(pb::RequestOp {
            request: Some(Request::RequestPut(req)),
        })
    }
    /// A delete inside the transaction.
    pub fn delete(key: impl AsRef<[u8]>, options: DeleteOptions) -> Self {
        let req = options.request(Bytes::copy_from_slice(key.as_ref()));
        TxnOp(pb::RequestOp {
            request: Some(Request::RequestDeleteRange(req)),
        })
    }
    /// A nested transaction.
    pub fn txn(txn: Txn) -> Self {
        TxnOp(pb::RequestOp {
            request: Some(Request::RequestTxn(txn.into_request())),
        })
    }
}

/// A transaction: if every compare holds, the `and_then` ops run, else the `or_else` ops.
#[derive(Debug, Clone, Default)]
pub struct Txn {
    compare: Vec<pb::Compare>,
    success: Vec<pb::RequestOp>,
    failure: Vec<pb::RequestOp>,
}

impl Txn {
    /// Default options.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds conditions; all must hold.
    pub fn when(mut self, compares: impl IntoIterator<Item = Compare>) -> Self {
        self.compare.extend(compares.into_iter().map(|c| c.0));
        self
    }
    /// Adds ops to run when the conditions hold.
    pub fn and_then(mut self, ops: impl IntoIterator<Item = TxnOp>) -> Self {
        self.success.extend(ops.into_iter().map(|o| o.0));
        self
    }
    /// Adds ops to run when a condition fails.
    pub fn or_else(mut self, ops: impl IntoIterator<Item = TxnOp>) -> Self {
        self.failure.extend(ops.into_iter().map(|o| o.0));
        self
    }

    pub(crate) fn into_request(self) -> pb::TxnRequest {
        pb::TxnRequest {
            compare: self.compare,
            success: self.success,
            failure: self.failure,
        }
    }
}

/// True if no branch of the txn writes (it is then safe to retry like a read).
pub(crate) fn is_read_only(req: &pb::TxnRequest) -> bool {
    req.success
        .iter()
        .chain(&req.failure)
        .all(|op| match &op.request {
            Some(Request::RequestPut(_)) | Some(Request::RequestDeleteRange(_)) => false,
            Some(Request::RequestTxn(nested)) => is_read_only(nested),
            _ => true,
        })
}

/// The answer of one op of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOpResponse {
    /// Answer to a get.
    Get(GetResponse),
    /// Answer to a put.
    Put(PutResponse),
    /// Answer to a delete.
    Delete(DeleteResponse),
    /// Answer to a nested transaction.
    Txn(TxnResponse),
}

/// Answer to a transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TxnResponse {
    /// The responding member and the store revision.
    pub header: Header,
    /// True if the compares held (the `and_then` branch ran).
    pub succeeded: bool,
    /// One answer per op of the branch that ran.
    pub responses: Vec<TxnOpResponse>,
}

impl From<pb::TxnResponse> for TxnResponse {
    fn from(r: pb::TxnResponse) -> Self {
        TxnResponse {
            header: r.header.into(),
            succeeded: r.succeeded,
            responses: r
                .responses
                .into_iter()
                .filter_map(|op| {
                    Some(match op.response? {
                        Response::ResponseRange(r) => TxnOpResponse::Get(r.into()),
                        Response::ResponsePut(r) => TxnOpResponse::Put(r.into()),
                        Response::ResponseDeleteRange(r) => TxnOpResponse::Delete(r.into()),
                        Response::ResponseTxn(r) => TxnOpResponse::Txn(r.into()),
                    })
                })
                .collect(),
        }
    }
}
