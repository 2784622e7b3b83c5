//! The space quota (etcd's `--quota-backend-bytes`): a write that would take this
//! member's live data past it is refused with "database space exceeded", and the member
//! raises the NOSPACE alarm through raft, after which every member refuses writes that
//! add data until an operator disarms it (etcd's quotaKVServer and capped applier).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use ballast_proto::etcdserverpb::request_op::Request as TxnOp;
use ballast_proto::etcdserverpb::{PutRequest, TxnRequest};
use ballast_store::Store;

/// etcd's default quota: 2 GiB.
pub const QUOTA_BYTES_DEFAULT: u64 = 2 << 30;
/// How long a measured size is reused: measuring reads RocksDB properties of every
/// column family, too much for every write.
const SIZE_REUSED_FOR: Duration = Duration::from_millis(100);
/// What a key costs beyond its key and value bytes (its revision record and index
/// entry; etcd counts the same kind of overhead per put).
const PUT_OVERHEAD_BYTES: u64 = 256;
/// What a lease grant costs (etcd's lease overhead).
pub const LEASE_GRANT_BYTES: u64 = 64;

/// The quota of one member.
#[derive(Debug)]
pub(crate) struct Quota {
    /// None: no quota (a negative `--quota-backend-bytes`, as in etcd).
    limit: Option<u64>,
    /// The last measured size and when it was measured.
    measured: Mutex<Option<(Instant, u64)>>,
}

impl Quota {
    /// The quota `--quota-backend-bytes` asks for: 0 is etcd's default, negative none.
    pub(crate) fn from_flag(bytes: i64) -> Quota {
        let limit = match bytes {
            0 => Some(QUOTA_BYTES_DEFAULT),
            b if b < 0 => None,
            b => Some(b as u64),
        };
        Quota {
            limit,
            measured: Mutex::new(None),
        }
    }

    pub(crate) fn limit(&self) -> Option<u64> {
        self.limit
    }

    /// True if `cost` more bytes stay within the quota.
    pub(crate) fn fits(&self, store: &Store, cost: u64) -> bool {
        let Some(limit) = self.limit else {
            return true;
        };
        let used = {
            let mut measured = self.measured.lock().expect("quota lock poisoned");
            match *measured {
                Some((at, used)) if at.elapsed() < SIZE_REUSED_FOR => used,
                _ => {
                    let used = store.backend().live_bytes();
                    *measured = Some((Instant::now(), used));
                    used
                }
            }
        };
        used.saturating_add(cost) <= limit
    }
}

/// What a put adds to the store.
pub(crate) fn put_cost(req: &PutRequest) -> u64 {
    (req.key.len() + req.value.len()) as u64 + PUT_OVERHEAD_BYTES
}

/// What a txn's puts add, in either branch (only one runs; the larger counts), at any
/// depth. 0 for a txn that puts nothing.
pub(crate) fn txn_cost(req: &TxnRequest) -> u64 {
    let branch = |ops: &[ballast_proto::etcdserverpb::RequestOp]| -> u64 {
        ops.iter()
            .map(|op| match &op.request {
                Some(TxnOp::RequestPut(put)) => put_cost(put),
                Some(TxnOp::RequestTxn(inner)) => txn_cost(inner),
                _ => 0,
            })
            .sum()
    };
    branch(&req.success).max(branch(&req.failure))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ballast_proto::etcdserverpb::{DeleteRangeRequest, RequestOp};

    fn op(request: TxnOp) -> RequestOp {
        RequestOp {
            request: Some(request),
        }
    }

    #[test]
    fn flag_values_as_etcd_reads_them() {
        assert_eq!(Quota::from_flag(0).limit(), Some(QUOTA_BYTES_DEFAULT));
        assert_eq!(Quota::from_flag(-1).limit(), None);
        assert_eq!(Quota::from_flag(4096).limit(), Some(4096));
    }

    #[test]
    fn a_txn_costs_its_larger_branch_and_nested_puts_count() {
        let put = |n: usize| {
            op(TxnOp::RequestPut(PutRequest {
                key: b"k".to_vec().into(),
                value: vec![0; n].into(),
                ..Default::default()
            }))
        };
        let delete = op(TxnOp::RequestDeleteRange(DeleteRangeRequest::default()));
        let only_deletes = TxnRequest {
            success: vec![delete.clone()],
            ..Default::default()
        };
        assert_eq!(txn_cost(&only_deletes), 0);
        let nested = TxnRequest {
            success: vec![put(10)],
            failure: vec![
                delete,
                op(TxnOp::RequestTxn(TxnRequest {
                    success: vec![put(100), put(100)],
                    ..Default::default()
                })),
            ],
            ..Default::default()
        };
        assert_eq!(txn_cost(&nested), 2 * (101 + PUT_OVERHEAD_BYTES));
    }
}
