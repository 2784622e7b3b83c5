//! etcd's Txn: request checks, compare evaluation and execution.
//!
//! As in etcd, every compare of the whole request tree is evaluated first, against the
//! state before the transaction; the result is the path of branches taken. The chosen
//! ops then run in list order, each seeing the writes before it.

use std::collections::HashSet;
use std::ops::ControlFlow;

use ballast_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use ballast_proto::etcdserverpb::request_op::Request;
use ballast_proto::etcdserverpb::response_op::Response;
use ballast_proto::etcdserverpb::{
    Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, ResponseHeader, ResponseOp,
    TxnRequest, TxnResponse,
};
use ballast_proto::mvccpb::KeyValue;
use bytes::Bytes;

use crate::error::{Error, Result};
use crate::mvcc::query::execute_range;
use crate::mvcc::read::KvRead;
use crate::mvcc::write::WriteTxn;
use crate::range::{KeyRange, RangeEnd};
use crate::range_set::{End, RangeSet};

/// Ops in one txn at most, counting compares and every op of every nested txn.
/// `--max-txn-ops` bounds each list only, which lets nesting reach ~75,000 ops that
/// would all be checked and applied as one request.
pub const TXN_OPS_TOTAL_MAX: usize = 10_000;

// ------------------------------------------------------------------ request checks

/// Checks a Range before it is served.
pub fn check_range(req: &RangeRequest) -> Result<()> {
    if req.key.is_empty() {
        return Err(Error::EmptyKey);
    }
    Ok(())
}

/// Checks a Put before it is proposed.
pub fn check_put(req: &PutRequest) -> Result<()> {
    if req.key.is_empty() {
        return Err(Error::EmptyKey);
    }
    if req.ignore_value && !req.value.is_empty() {
        return Err(Error::ValueProvided);
    }
    if req.ignore_lease && req.lease != 0 {
        return Err(Error::LeaseProvided);
    }
    Ok(())
}

/// Checks a DeleteRange before it is proposed.
pub fn check_delete(req: &DeleteRangeRequest) -> Result<()> {
    if req.key.is_empty() {
        return Err(Error::EmptyKey);
    }
    Ok(())
}

/// Checks a Txn before it is proposed: op counts, keys, and that no branch writes a key
/// twice (as etcd's `checkTxnRequest` and `checkIntervals`).
pub fn check_txn(req: &TxnRequest, max_ops: usize) -> Result<()> {
    if txn_ops_total(req) > TXN_OPS_TOTAL_MAX {
        return Err(Error::TooManyTxnOps);
    }
    check_txn_ops(req, max_ops)?;
    check_intervals(&req.success)?;
    check_intervals(&req.failure)?;
    Ok(())
}

/// Compares and ops of a txn, nested ones included.
pub fn txn_ops_total(req: &TxnRequest) -> usize {
    let nested: usize = req
        .success
        .iter()
        .chain(&req.failure)
        .map(|op| match &op.request {
            Some(Request::RequestTxn(nested)) => txn_ops_total(nested),
            _ => 0,
        })
        .sum();
    req.compare.len() + req.success.len() + req.failure.len() + nested
}

fn check_txn_ops(req: &TxnRequest, max_ops: usize) -> Result<()> {
    let ops = req
        .compare
        .len()
        .max(req.success.len())
        .max(req.failure.len());
    if ops > max_ops {
        return Err(Error::TooManyTxnOps);
    }
    if req.compare.iter().any(|c| c.key.is_empty()) {
        return Err(Error::EmptyKey);
    }
    for op in req.success.iter().chain(&req.failure) {
        match &op.request {
            Some(Request::RequestRange(r)) => check_range(r)?,
            Some(Request::RequestPut(r)) => check_put(r)?,
            Some(Request::RequestDeleteRange(r)) => check_delete(r)?,
            Some(Request::RequestTxn(r)) => check_txn_ops(r, max_ops - ops)?,
            None => {}
        }
    }
    Ok(())
}

/// Keys put and ranges deleted by one list of ops (and the txns nested in it). The
/// deletes are an interval set, so each check is a lookup, not a scan of every delete.
#[derive(Default)]
struct Writes {
    puts: HashSet<Bytes>,
    deletes: RangeSet,
}

impl Writes {
    fn deletes_key(&self, key: &Bytes) -> bool {
        self.deletes.contains_key(key)
    }
}

/// The keys a delete's range covers, as an interval.
fn deleted(del: &DeleteRangeRequest) -> (Vec<u8>, End) {
    let range = KeyRange::new(del.key.clone(), del.range_end.clone());
    let end = match range.end {
        RangeEnd::Single => {
            let mut next = range.start.to_vec();
            next.push(0);
            End::Before(next)
        }
        RangeEnd::Unbounded => End::Unbounded,
        RangeEnd::Before(end) => End::Before(end.to_vec()),
    };
    (range.start.to_vec(), end)
}

fn check_intervals(ops: &[RequestOp]) -> Result<Writes> {
    let mut writes = Writes::default();
    for op in ops {
        if let Some(Request::RequestDeleteRange(del)) = &op.request {
            let (start, end) = deleted(del);
            writes.deletes.insert(start, end);
        }
    }
    for op in ops {
        let Some(Request::RequestTxn(nested)) = &op.request else {
            continue;
        };
        let then = check_intervals(&nested.success)?;
        let otherwise = check_intervals(&nested.failure)?;
        for key in &then.puts {
            if writes.puts.contains(key) || writes.deletes_key(key) {
                return Err(Error::DuplicateKey);
            }
        }
        for key in &otherwise.puts {
            // A key put by both branches is fine: only one of them runs.
            if (writes.puts.contains(key) && !then.puts.contains(key)) || writes.deletes_key(key) {
                return Err(Error::DuplicateKey);
            }
        }
        writes.puts.extend(then.puts);
        writes.puts.extend(otherwise.puts);
        writes.deletes.extend(then.deletes);
        writes.deletes.extend(otherwise.deletes);
    }
    for op in ops {
        let Some(Request::RequestPut(put)) = &op.request else {
            continue;
        };
        if writes.puts.contains(&put.key) || writes.deletes_key(&put.key) {
            return Err(Error::DuplicateKey);
        }
        writes.puts.insert(put.key.clone());
    }
    Ok(writes)
}

/// True if no branch of the txn (at any depth) writes: it can be served as a read.
pub fn is_read_only(req: &TxnRequest) -> bool {
    req.success
        .iter()
        .chain(&req.failure)
        .all(|op| match &op.request {
            Some(Request::RequestPut(_)) | Some(Request::RequestDeleteRange(_)) => false,
            Some(Request::RequestTxn(nested)) => is_read_only(nested),
            _ => true,
        })
}

// ------------------------------------------------------------------ compares

/// Evaluates every compare on the branches that will run, depth first, before any op.
fn compare_path(view: &dyn KvRead, req: &TxnRequest, path: &mut Vec<bool>) -> Result<()> {
    let mut succeeded = true;
    for compare in &req.compare {
        if !evaluate(view, compare)? {
            succeeded = false;
            break;
        }
    }
    path.push(succeeded);
    let ops = if succeeded {
        &req.success
    } else {
        &req.failure
    };
    for op in ops {
        if let Some(Request::RequestTxn(nested)) = &op.request {
            compare_path(view, nested, path)?;
        }
    }
    Ok(())
}

fn evaluate(view: &dyn KvRead, compare: &Compare) -> Result<bool> {
    let range = KeyRange::new(compare.key.clone(), compare.range_end.clone());
    let target = CompareTarget::try_from(compare.target).unwrap_or(CompareTarget::Version);
    if range.is_single() {
        return Ok(match view.newest(&compare.key)? {
            Some(kv) => compare_kv(compare, target, &kv),
            None => missing_key_holds(compare, target),
        });
    }
    let mut seen = false;
    let mut holds = true;
    view.scan(
        &range,
        view.revision(),
        target == CompareTarget::Value,
        &mut |kv| {
            seen = true;
            if compare_kv(compare, target, &kv) {
                ControlFlow::Continue(())
            } else {
                holds = false;
                ControlFlow::Break(())
            }
        },
    )?;
    if !seen {
        return Ok(missing_key_holds(compare, target));
    }
    Ok(holds)
}

/// A missing key compares as a zero KeyValue, except that a value compare fails: there is
/// no way to tell a missing value from an empty one.
fn missing_key_holds(compare: &Compare, target: CompareTarget) -> bool {
    target != CompareTarget::Value && compare_kv(compare, target, &KeyValue::default())
}

fn compare_kv(compare: &Compare, target: CompareTarget, kv: &KeyValue) -> bool {
    let ordering = match (target, &compare.target_union) {
        (CompareTarget::Value, Some(TargetUnion::Value(v))) => kv.value[..].cmp(&v[..]),
        (CompareTarget::Value, _) => kv.value[..].cmp(&[][..]),
        (CompareTarget::Version, union) => kv.version.cmp(&int_target(union, target)),
        (CompareTarget::Create, union) => kv.create_revision.cmp(&int_target(union, target)),
        (CompareTarget::Mod, union) => kv.mod_revision.cmp(&int_target(union, target)),
        (CompareTarget::Lease, union) => kv.lease.cmp(&int_target(union, target)),
    };
    match CompareResult::try_from(compare.result).unwrap_or(CompareResult::Equal) {
        CompareResult::Equal => ordering.is_eq(),
        CompareResult::NotEqual => ordering.is_ne(),
        CompareResult::Greater => ordering.is_gt(),
        CompareResult::Less => ordering.is_lt(),
    }
}

/// The integer a compare tests against; a union of the wrong kind counts as 0, as in etcd.
fn int_target(union: &Option<TargetUnion>, target: CompareTarget) -> i64 {
    match (target, union) {
        (CompareTarget::Version, Some(TargetUnion::Version(v))) => *v,
        (CompareTarget::Create, Some(TargetUnion::CreateRevision(v))) => *v,
        (CompareTarget::Mod, Some(TargetUnion::ModRevision(v))) => *v,
        (CompareTarget::Lease, Some(TargetUnion::Lease(v))) => *v,
        _ => 0,
    }
}

// ------------------------------------------------------------------ execution

/// Runs a txn in `txn`. On error the caller drops `txn`, so nothing is applied.
pub fn execute_txn(txn: &mut WriteTxn<'_>, req: &TxnRequest) -> Result<TxnResponse> {
    let mut path = Vec::new();
    compare_path(txn, req, &mut path)?;
    let mut path = path.into_iter();
    let mut response = execute(txn, req, &mut path)?;
    // As in etcd, only the outermost header carries the revision; nested ones are empty.
    response.header = Some(ResponseHeader {
        revision: txn.end_revision(),
        ..Default::default()
    });
    Ok(response)
}

fn execute(
    txn: &mut WriteTxn<'_>,
    req: &TxnRequest,
    path: &mut std::vec::IntoIter<bool>,
) -> Result<TxnResponse> {
    let succeeded = path.next().expect("the path covers every txn that runs");
    let ops = if succeeded {
        &req.success
    } else {
        &req.failure
    };
    let mut responses = Vec::with_capacity(ops.len());
    for op in ops {
        let response = match &op.request {
            Some(Request::RequestRange(r)) => Some(Response::ResponseRange(execute_range(txn, r)?)),
            Some(Request::RequestPut(r)) => Some(Response::ResponsePut(txn.put(r)?)),
            Some(Request::RequestDeleteRange(r)) => {
                Some(Response::ResponseDeleteRange(txn.delete_range(r)?))
            }
            Some(Request::RequestTxn(r)) => Some(Response::ResponseTxn(execute(txn, r, path)?)),
            None => None,
        };
        responses.push(ResponseOp { response });
    }
    Ok(TxnResponse {
        header: Some(ResponseHeader::default()),
        succeeded,
        responses,
    })
}

#[cfg(test)]
mod fuzz {
    //! Txn requests arrive from clients: whatever bytes decode as one, the checks answer
    //! without panicking or running away (nesting is as deep as the bytes allow).

    use super::*;
    use proptest::prelude::*;
    use prost::Message as _;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn checks_answer_whatever_decodes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(req) = TxnRequest::decode(&bytes[..]) {
                let _ = check_txn(&req, 128);
                let _ = is_read_only(&req);
                let _ = txn_ops_total(&req);
            }
        }
    }
}
