//! The MVCC rules of etcd's KV API, checked against a real store on RocksDB.

mod common;

use ballast_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use ballast_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use ballast_proto::etcdserverpb::request_op::Request as Op;
use ballast_proto::etcdserverpb::response_op::Response as OpResponse;
use ballast_proto::etcdserverpb::*;
use ballast_store::mvcc::txn::{check_put, check_txn};
use ballast_store::{Error, Response};
use common::*;

#[test]
fn empty_store_is_at_revision_one_and_first_write_gets_two() {
    let mut t = TestStore::new();
    assert_eq!(t.revision(), 1);
    let resp = t.get("missing");
    assert_eq!(resp.header.unwrap().revision, 1);
    assert!(resp.kvs.is_empty());
    let put = t.put("a", "1");
    assert_eq!(put.header.unwrap().revision, 2);
    let kv = &t.get("a").kvs[0];
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (2, 2, 1));
}

#[test]
fn versions_count_writes_and_a_delete_resets_them() {
    let mut t = TestStore::new();
    t.put("a", "1");
    t.put("a", "1"); // an unchanged value still bumps everything
    let kv = t.get("a").kvs[0].clone();
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (2, 3, 2));
    let del = t.delete("a", "");
    assert_eq!(del.deleted, 1);
    assert_eq!(del.header.unwrap().revision, 4);
    assert_eq!(del.prev_kvs[0].value, b("1"));
    assert!(t.get("a").kvs.is_empty());
    t.put("a", "2");
    let kv = t.get("a").kvs[0].clone();
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (5, 5, 1));
}

#[test]
fn deleting_nothing_does_not_bump_the_revision() {
    let mut t = TestStore::new();
    t.put("a", "1");
    let del = t.delete("zzz", "");
    assert_eq!(del.deleted, 0);
    assert_eq!(del.header.unwrap().revision, 2);
    assert_eq!(t.revision(), 2);
}

/// Key "a" read at `revision` (0: the current one).
fn a_at(t: &TestStore, revision: i64) -> ballast_store::Result<RangeResponse> {
    let mut req = range_req("a", "");
    req.revision = revision;
    t.store().range(&req)
}

#[test]
fn reads_at_past_revisions_and_their_errors() {
    let mut t = TestStore::new();
    t.put("a", "1"); // 2
    t.put("a", "2"); // 3
    t.delete("a", ""); // 4
    assert_eq!(a_at(&t, 2).unwrap().kvs[0].value, b("1"));
    assert_eq!(a_at(&t, 3).unwrap().kvs[0].value, b("2"));
    assert!(a_at(&t, 4).unwrap().kvs.is_empty());
    // The header reports the current revision, not the one read at.
    assert_eq!(a_at(&t, 2).unwrap().header.unwrap().revision, 4);
    assert!(matches!(a_at(&t, 5), Err(Error::FutureRevision)));
    assert!(matches!(t.compact(3), Ok(Response::Compaction(_))));
    assert!(matches!(a_at(&t, 2), Err(Error::Compacted)));
    assert_eq!(a_at(&t, 3).unwrap().kvs[0].value, b("2"));
}

/// Point reads of a key whose newest version the apply thread has cached answer from
/// that version only where it is the one visible.
#[test]
fn point_reads_of_a_cached_key_at_every_revision() {
    let mut t = TestStore::new();
    t.put("a", "1"); // 2
    t.put("b", "1"); // 3
    t.put("a", "2"); // 4
    let kv = a_at(&t, 0).unwrap().kvs[0].clone();
    assert_eq!((kv.value, kv.mod_revision, kv.version), (b("2"), 4, 2));
    assert_eq!(a_at(&t, 4).unwrap().kvs[0].value, b("2"));
    assert_eq!(
        a_at(&t, 3).unwrap().kvs[0].value,
        b("1"),
        "older than the cached one"
    );
    assert!(a_at(&t, 1).unwrap().kvs.is_empty());
    assert_eq!(a_at(&t, 3).unwrap().header.unwrap().revision, 4);
    assert!(matches!(a_at(&t, 5), Err(Error::FutureRevision)));
    assert!(matches!(t.compact(4), Ok(Response::Compaction(_))));
    assert!(matches!(a_at(&t, 3), Err(Error::Compacted)));
    let mut keys_only = range_req("a", "");
    keys_only.keys_only = true;
    let kv = t.store().range(&keys_only).unwrap().kvs[0].clone();
    assert_eq!((kv.key, kv.value), (b("a"), b("")));
    let mut count_only = range_req("a", "");
    count_only.count_only = true;
    let counted = t.store().range(&count_only).unwrap();
    assert_eq!((counted.count, counted.kvs.len()), (1, 0));
}

/// After a restart the key cache is empty and point reads fill it; what they leave must
/// be the whole newest version, whatever the read asked for.
#[test]
fn point_reads_after_a_restart_leave_whole_versions_behind() {
    let mut t = TestStore::new();
    t.put("a", "1"); // 2
    t.put("a", "2"); // 3
    t.reopen();
    let mut keys_only = range_req("a", "");
    keys_only.keys_only = true;
    assert_eq!(t.store().range(&keys_only).unwrap().kvs[0].value, b(""));
    let mut filtered = range_req("a", "");
    filtered.min_mod_revision = 4;
    assert!(t.store().range(&filtered).unwrap().kvs.is_empty());
    let kv = t.get("a").kvs[0].clone();
    assert_eq!((kv.value, kv.mod_revision, kv.version), (b("2"), 3, 2));
    // The apply path reads the same cache.
    let put = t.put("a", "3");
    assert_eq!(put.prev_kv, None);
    let kv = t.get("a").kvs[0].clone();
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (2, 4, 3));
}

fn abc(t: &mut TestStore) {
    t.put("a", "3"); // 2
    t.put("b", "1"); // 3
    t.put("c", "2"); // 4
    t.put("a\0", "0"); // 5
    t.put("b", "1"); // 6: b version 2
}

#[test]
fn range_end_rules() {
    let mut t = TestStore::new();
    abc(&mut t);
    let r = |k: &str, e: &str| keys(&t.store().range(&range_req(k, e)).unwrap());
    assert_eq!(r("a", ""), ["a"]);
    assert_eq!(r("a", "c"), ["a", "a\0", "b"]);
    assert_eq!(r("b", "\0"), ["b", "c"]);
    assert_eq!(r("\0", "\0"), ["a", "a\0", "b", "c"]);
    assert_eq!(r("a", "b"), ["a", "a\0"], "prefix a = [a, b)");
    assert_eq!(r("c", "a"), Vec::<String>::new());
}

#[test]
fn range_limit_more_count_and_projections() {
    let mut t = TestStore::new();
    abc(&mut t);
    let mut req = range_req("\0", "\0");
    req.limit = 2;
    let resp = t.store().range(&req).unwrap();
    assert_eq!(keys(&resp), ["a", "a\0"]);
    assert!(resp.more);
    assert_eq!(resp.count, 4);

    req.limit = 4;
    let resp = t.store().range(&req).unwrap();
    assert!(!resp.more);

    req.limit = 0;
    req.keys_only = true;
    let resp = t.store().range(&req).unwrap();
    assert!(resp.kvs.iter().all(|kv| kv.value.is_empty()));
    assert_eq!(resp.kvs[2].version, 2);

    req.keys_only = false;
    req.count_only = true;
    let resp = t.store().range(&req).unwrap();
    assert!(resp.kvs.is_empty());
    assert_eq!(resp.count, 4);
}

#[test]
fn range_sorting() {
    let mut t = TestStore::new();
    abc(&mut t);
    let sorted = |order: SortOrder, target: SortTarget, limit: i64| {
        let mut req = range_req("\0", "\0");
        req.sort_order = order as i32;
        req.sort_target = target as i32;
        req.limit = limit;
        t.store().range(&req).unwrap()
    };
    assert_eq!(
        keys(&sorted(SortOrder::Descend, SortTarget::Key, 0)),
        ["c", "b", "a\0", "a"]
    );
    assert_eq!(
        keys(&sorted(SortOrder::Ascend, SortTarget::Value, 0)),
        ["a\0", "b", "c", "a"]
    );
    // A non-key target with no order sorts ascending.
    assert_eq!(
        keys(&sorted(SortOrder::None, SortTarget::Create, 0)),
        ["a", "b", "c", "a\0"]
    );
    assert_eq!(
        keys(&sorted(SortOrder::Descend, SortTarget::Mod, 0)),
        ["b", "a\0", "c", "a"]
    );
    assert_eq!(
        keys(&sorted(SortOrder::Descend, SortTarget::Version, 1)),
        ["b"]
    );
    let resp = sorted(SortOrder::Descend, SortTarget::Create, 2);
    assert_eq!(keys(&resp), ["a\0", "c"]);
    assert!(resp.more);
    assert_eq!(resp.count, 4);
}

#[test]
fn range_revision_filters_do_not_change_count() {
    let mut t = TestStore::new();
    abc(&mut t);
    let mut req = range_req("\0", "\0");
    req.min_mod_revision = 4;
    let resp = t.store().range(&req).unwrap();
    assert_eq!(keys(&resp), ["a\0", "b", "c"]);
    assert_eq!(resp.count, 4);
    req.max_mod_revision = 5;
    assert_eq!(keys(&t.store().range(&req).unwrap()), ["a\0", "c"]);
    let mut req = range_req("\0", "\0");
    req.max_create_revision = 3;
    req.limit = 1;
    let resp = t.store().range(&req).unwrap();
    assert_eq!(keys(&resp), ["a"]);
    assert!(resp.more);
    let mut req = range_req("\0", "\0");
    req.min_create_revision = 4;
    assert_eq!(keys(&t.store().range(&req).unwrap()), ["a\0", "c"]);
}

#[test]
fn put_options() {
    let mut t = TestStore::new();
    let mut req = put_req("k", "");
    req.ignore_value = true;
    assert!(matches!(
        t.apply(common_put(req.clone())),
        Err(Error::KeyNotFound)
    ));
    assert_eq!(t.revision(), 1, "a refused put changes nothing");

    t.put("k", "v1");
    assert!(matches!(t.grant(7, 10), Ok(Response::LeaseGrant(_))));
    assert!(t.put_lease("k", "v2", 7).is_ok());
    // ignore_value keeps the value; the lease given replaces the old one.
    let resp = t
        .apply(common_put(PutRequest {
            prev_kv: true,
            ..req.clone()
        }))
        .unwrap();
    let Response::Put(resp) = resp else { panic!() };
    assert_eq!(resp.prev_kv.unwrap().value, b("v2"));
    let kv = t.get("k").kvs[0].clone();
    assert_eq!((kv.value, kv.lease), (b("v2"), 0));

    t.put_lease("k", "v3", 7).unwrap();
    let mut keep_lease = put_req("k", "v4");
    keep_lease.ignore_lease = true;
    t.apply(common_put(keep_lease)).unwrap();
    let kv = t.get("k").kvs[0].clone();
    assert_eq!((kv.value, kv.lease), (b("v4"), 7));

    assert!(matches!(
        t.put_lease("k", "v", 99),
        Err(Error::LeaseNotFound)
    ));

    let mut bad = put_req("k", "value");
    bad.ignore_value = true;
    assert!(matches!(check_put(&bad), Err(Error::ValueProvided)));
    let mut bad = put_req("k", "");
    bad.ignore_lease = true;
    bad.lease = 7;
    assert!(matches!(check_put(&bad), Err(Error::LeaseProvided)));
    assert!(matches!(check_put(&put_req("", "v")), Err(Error::EmptyKey)));
}

fn common_put(req: PutRequest) -> ballast_proto::ballast::internal::raft_request::Request {
    ballast_proto::ballast::internal::raft_request::Request::Put(req)
}

fn cmp(key: &str, target: CompareTarget, result: CompareResult, union: TargetUnion) -> Compare {
    Compare {
        result: result as i32,
        target: target as i32,
        key: b(key),
        target_union: Some(union),
        range_end: Default::default(),
    }
}

fn put_op(key: &str, value: &str) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestPut(put_req(key, value))),
    }
}

fn range_op(key: &str, end: &str) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestRange(range_req(key, end))),
    }
}

fn delete_op(key: &str, end: &str) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestDeleteRange(DeleteRangeRequest {
            key: b(key),
            range_end: b(end),
            prev_kv: false,
        })),
    }
}

fn txn_op(txn: TxnRequest) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestTxn(txn)),
    }
}

#[test]
fn txn_compares_every_target_and_result() {
    let mut t = TestStore::new();
    t.put("k", "m"); // 2
    t.grant(5, 10).unwrap();
    t.put_lease("k", "m", 5).unwrap(); // 3: version 2, lease 5
    use CompareResult::*;
    use CompareTarget::*;
    let cases = [
        (cmp("k", Version, Equal, TargetUnion::Version(2)), true),
        (cmp("k", Version, Greater, TargetUnion::Version(1)), true),
        (cmp("k", Version, Less, TargetUnion::Version(2)), false),
        (
            cmp("k", Create, Equal, TargetUnion::CreateRevision(2)),
            true,
        ),
        (cmp("k", Mod, NotEqual, TargetUnion::ModRevision(3)), false),
        (cmp("k", Mod, Greater, TargetUnion::ModRevision(2)), true),
        (cmp("k", Value, Equal, TargetUnion::Value(b("m"))), true),
        (cmp("k", Value, Greater, TargetUnion::Value(b("a"))), true),
        (cmp("k", Value, Less, TargetUnion::Value(b("a"))), false),
        (cmp("k", Lease, Equal, TargetUnion::Lease(5)), true),
        // A missing key compares as zero, except on value.
        (
            cmp("none", Create, Equal, TargetUnion::CreateRevision(0)),
            true,
        ),
        (cmp("none", Version, Equal, TargetUnion::Version(0)), true),
        (cmp("none", Value, Equal, TargetUnion::Value(b(""))), false),
        (
            cmp("none", Value, NotEqual, TargetUnion::Value(b("x"))),
            false,
        ),
    ];
    for (compare, expected) in cases {
        let resp = t
            .txn(TxnRequest {
                compare: vec![compare.clone()],
                ..Default::default()
            })
            .unwrap();
        assert_eq!(resp.succeeded, expected, "{compare:?}");
    }
    assert_eq!(t.revision(), 3, "txns without ops change nothing");
}

#[test]
fn txn_range_compare_needs_every_key() {
    let mut t = TestStore::new();
    t.put("p/a", "1");
    t.put("p/b", "1");
    t.put("p/b", "2");
    let mut all_v1 = cmp(
        "p/",
        CompareTarget::Version,
        CompareResult::Equal,
        TargetUnion::Version(1),
    );
    all_v1.range_end = b("p0");
    let mut all_created = cmp(
        "p/",
        CompareTarget::Create,
        CompareResult::Greater,
        TargetUnion::CreateRevision(0),
    );
    all_created.range_end = b("p0");
    let run = |t: &mut TestStore, c: &Compare| {
        t.txn(TxnRequest {
            compare: vec![c.clone()],
            ..Default::default()
        })
        .unwrap()
        .succeeded
    };
    assert!(!run(&mut t, &all_v1));
    assert!(run(&mut t, &all_created));
}

#[test]
fn txn_is_one_revision_and_sees_its_own_writes() {
    let mut t = TestStore::new();
    t.put("x", "old"); // 2
    let resp = t
        .txn(TxnRequest {
            compare: vec![],
            success: vec![
                put_op("a", "1"),
                put_op("b", "2"),
                range_op("a", "c"),
                delete_op("x", ""),
            ],
            failure: vec![],
        })
        .unwrap();
    assert!(resp.succeeded);
    assert_eq!(resp.header.unwrap().revision, 3);
    let Some(OpResponse::ResponseRange(range)) = &resp.responses[2].response else {
        panic!()
    };
    assert_eq!(keys(range), ["a", "b"]);
    assert_eq!(range.header.as_ref().unwrap().revision, 3);
    let Some(OpResponse::ResponsePut(put)) = &resp.responses[0].response else {
        panic!()
    };
    assert_eq!(put.header.as_ref().unwrap().revision, 3);
    assert_eq!(t.get("a").kvs[0].mod_revision, 3);
    assert_eq!(t.get("b").kvs[0].mod_revision, 3);
    assert!(t.get("x").kvs.is_empty());
    assert_eq!(t.revision(), 3);
}

#[test]
fn nested_txns_take_the_branches_their_compares_chose_beforehand() {
    let mut t = TestStore::new();
    t.put("k", "1"); // 2
                     // The nested compare sees the state before the txn (k version 1), not after the put.
    let inner = TxnRequest {
        compare: vec![cmp(
            "k",
            CompareTarget::Version,
            CompareResult::Equal,
            TargetUnion::Version(1),
        )],
        success: vec![put_op("inner-then", "x")],
        failure: vec![put_op("inner-else", "x")],
    };
    let resp = t
        .txn(TxnRequest {
            compare: vec![cmp(
                "k",
                CompareTarget::Value,
                CompareResult::Equal,
                TargetUnion::Value(b("1")),
            )],
            success: vec![put_op("k", "2"), txn_op(inner)],
            failure: vec![],
        })
        .unwrap();
    assert!(resp.succeeded);
    let Some(OpResponse::ResponseTxn(nested)) = &resp.responses[1].response else {
        panic!()
    };
    assert!(nested.succeeded);
    assert_eq!(t.get("inner-then").kvs.len(), 1);
    assert!(t.get("inner-else").kvs.is_empty());
    assert_eq!(t.revision(), 3);
}

#[test]
fn a_failing_op_leaves_the_whole_txn_unapplied() {
    let mut t = TestStore::new();
    let mut leased = put_req("b", "2");
    leased.lease = 404;
    let result = t.txn(TxnRequest {
        compare: vec![],
        success: vec![
            put_op("a", "1"),
            RequestOp {
                request: Some(Op::RequestPut(leased)),
            },
        ],
        failure: vec![],
    });
    assert!(matches!(result, Err(Error::LeaseNotFound)));
    assert!(t.get("a").kvs.is_empty());
    assert_eq!(t.revision(), 1);
}

#[test]
fn txn_request_checks() {
    let many = TxnRequest {
        success: (0..129).map(|i| put_op(&format!("k{i}"), "v")).collect(),
        ..Default::default()
    };
    assert!(matches!(check_txn(&many, 128), Err(Error::TooManyTxnOps)));
    let ok = TxnRequest {
        success: (0..128).map(|i| put_op(&format!("k{i}"), "v")).collect(),
        ..Default::default()
    };
    assert!(check_txn(&ok, 128).is_ok());

    let dup = |ops: Vec<RequestOp>| {
        check_txn(
            &TxnRequest {
                success: ops,
                ..Default::default()
            },
            128,
        )
    };
    assert!(matches!(
        dup(vec![put_op("a", "1"), put_op("a", "2")]),
        Err(Error::DuplicateKey)
    ));
    assert!(matches!(
        dup(vec![put_op("b", "1"), delete_op("a", "c")]),
        Err(Error::DuplicateKey)
    ));
    assert!(matches!(
        dup(vec![put_op("z", "1"), delete_op("a", "\0")]),
        Err(Error::DuplicateKey)
    ));
    assert!(dup(vec![put_op("c", "1"), delete_op("a", "c")]).is_ok());
    assert!(
        dup(vec![delete_op("a", "c"), delete_op("b", "")]).is_ok(),
        "deletes may overlap"
    );
    // Both branches of a nested txn may put the same key: only one runs.
    let both = TxnRequest {
        success: vec![put_op("n", "1")],
        failure: vec![put_op("n", "2")],
        ..Default::default()
    };
    assert!(dup(vec![txn_op(both.clone())]).is_ok());
    assert!(matches!(
        dup(vec![txn_op(both), put_op("n", "3")]),
        Err(Error::DuplicateKey)
    ));
    // Success and failure of the outer txn are checked separately.
    assert!(check_txn(
        &TxnRequest {
            success: vec![put_op("a", "1")],
            failure: vec![put_op("a", "2")],
            ..Default::default()
        },
        128
    )
    .is_ok());
    let empty_key = TxnRequest {
        compare: vec![cmp(
            "",
            CompareTarget::Version,
            CompareResult::Equal,
            TargetUnion::Version(0),
        )],
        ..Default::default()
    };
    assert!(matches!(check_txn(&empty_key, 128), Err(Error::EmptyKey)));
}

#[test]
fn compaction_rules() {
    let mut t = TestStore::new();
    t.put("a", "1"); // 2
    t.put("a", "2"); // 3
    t.put("b", "1"); // 4
    t.delete("b", ""); // 5
    t.put("c", "1"); // 6
    assert!(matches!(t.compact(7), Err(Error::FutureRevision)));
    assert!(t.compact(5).is_ok());
    assert!(matches!(t.compact(5), Err(Error::Compacted)));
    assert!(matches!(t.compact(4), Err(Error::Compacted)));
    assert!(t
        .store()
        .wait_compacted(5, std::time::Duration::from_secs(10)));
    // Reads at the compaction point still see everything they saw before.
    let mut req = range_req("\0", "\0");
    req.revision = 5;
    assert_eq!(keys(&t.store().range(&req).unwrap()), ["a"]);
    assert_eq!(t.store().range(&req).unwrap().kvs[0].value, b("2"));
    // Only the surviving versions remain: a@3, the tombstone of b at 5, c@6.
    let kv_entries = count_cf(&t, ballast_store::backend::Cf::Kv);
    assert_eq!(kv_entries, 3);
    let history = count_cf(&t, ballast_store::backend::Cf::Rev);
    assert_eq!(
        history, 3,
        "the history indexes the surviving versions only"
    );
}

fn count_cf(t: &TestStore, cf: ballast_store::backend::Cf) -> usize {
    let backend = t.store().backend();
    backend
        .db()
        .iterator_cf(backend.cf(cf), rocksdb::IteratorMode::Start)
        .count()
}

#[test]
fn leases_hold_keys_and_revoke_deletes_them_in_one_revision() {
    let mut t = TestStore::new();
    assert!(t.grant(1, 30).is_ok());
    assert!(matches!(t.grant(1, 30), Err(Error::LeaseExists)));
    assert_eq!(t.revision(), 1, "granting does not bump the revision");
    t.put_lease("a", "1", 1).unwrap(); // 2
    t.put_lease("b", "1", 1).unwrap(); // 3
    t.put_lease("c", "1", 1).unwrap(); // 4
    t.put("c", "2"); // 5: detached from lease 1
    assert_eq!(t.store().lease_keys(1).unwrap(), vec![b("a"), b("b")]);
    assert_eq!(t.store().lease(1).unwrap().unwrap().ttl, 30);
    assert!(t.revoke(1).is_ok());
    assert_eq!(t.revision(), 6, "both keys deleted in one revision");
    assert!(t.get("a").kvs.is_empty());
    assert!(t.get("b").kvs.is_empty());
    assert_eq!(t.get("c").kvs.len(), 1);
    assert!(t.store().lease(1).unwrap().is_none());
    assert!(t.store().lease_keys(1).unwrap().is_empty());
    assert!(matches!(t.revoke(1), Err(Error::LeaseNotFound)));
    assert!(matches!(
        t.put_lease("a", "1", 1),
        Err(Error::LeaseNotFound)
    ));
    // A lease with no keys revokes without a new revision.
    t.grant(2, 10).unwrap();
    t.revoke(2).unwrap();
    assert_eq!(t.revision(), 6);
}

#[test]
fn everything_survives_a_reopen() {
    let mut t = TestStore::new();
    t.put("a", "1");
    t.put("b", "2");
    t.grant(9, 60).unwrap();
    t.put_lease("c", "3", 9).unwrap();
    t.compact(3).unwrap();
    let applied = t.store().applied_index();
    t.reopen();
    assert_eq!(t.revision(), 4);
    assert_eq!(t.store().revisions().compacted, 3);
    assert_eq!(t.store().applied_index(), applied);
    assert_eq!(t.get("b").kvs[0].value, b("2"));
    assert_eq!(
        t.store().leases().unwrap(),
        vec![ballast_store::Lease { id: 9, ttl: 60 }]
    );
    assert_eq!(t.store().lease_keys(9).unwrap(), vec![b("c")]);
    t.put("d", "4");
    assert_eq!(t.revision(), 5);
}

#[test]
fn hash_kv_ignores_physical_compaction_progress() {
    let mut a = TestStore::new();
    let mut c = TestStore::new();
    for t in [&mut a, &mut c] {
        t.put("x", "1");
        t.put("x", "2");
        t.put("y", "1");
        t.delete("y", "");
    }
    let before = a.store().hash_kv(0).unwrap();
    assert_eq!(before, c.store().hash_kv(0).unwrap());
    a.compact(4).unwrap();
    c.compact(4).unwrap();
    assert!(a
        .store()
        .wait_compacted(4, std::time::Duration::from_secs(10)));
    // c may or may not have compacted physically yet; the hashes must agree regardless.
    assert_eq!(a.store().hash_kv(0).unwrap(), c.store().hash_kv(0).unwrap());
    assert_eq!(a.store().hash_kv(0).unwrap().1, 4);
    assert!(matches!(a.store().hash_kv(3), Err(Error::Compacted)));
    a.put("z", "1");
    assert_ne!(
        a.store().hash_kv(0).unwrap().0,
        c.store().hash_kv(0).unwrap().0
    );
}

/// `kv` files carry prefix bloom filters: lookups of one key consult them, scans must
/// not. Keys spread over several files, some prefixes of others, must all be found.
#[test]
fn reads_across_files_with_prefix_filters() {
    let mut t = TestStore::new();
    let generations = [["a", "ab"], ["a\0", "b"], ["abc", "a"]];
    for (i, keys_of_file) in generations.iter().enumerate() {
        for key in keys_of_file {
            t.put(key, &format!("v{i}"));
        }
        t.store().backend().flush().unwrap();
    }
    let all = t.store().range(&range_req("\0", "\0")).unwrap();
    assert_eq!(keys(&all), vec!["a", "a\0", "ab", "abc", "b"]);
    assert_eq!(all.count, 5);
    // Newest version of "a" is in the last file, its first in the first.
    let a = t.get("a");
    assert_eq!(a.kvs[0].value, b("v2"));
    assert_eq!(a.kvs[0].version, 2);
    assert_eq!(t.get("ab").kvs[0].value, b("v0"));
    assert!(t.get("ac").kvs.is_empty());
    assert!(t.get("").kvs.is_empty());
    let prefixed = t.store().range(&range_req("a", "b")).unwrap();
    assert_eq!(keys(&prefixed), vec!["a", "a\0", "ab", "abc"]);
    // A put finds the previous version in an older file.
    let put = t.put("ab", "v3");
    assert_eq!(put.header.unwrap().revision, t.revision());
    assert_eq!(t.get("ab").kvs[0].version, 2);
}

#[test]
fn staged_entries_are_invisible_until_committed() {
    let mut t = TestStore::new();
    t.put("a", "1");
    let applied = t.store().applied_index();
    t.staging = true;
    assert_eq!(t.put("a", "2").header.unwrap().revision, 3);
    // A later entry of the same batch sees the earlier one.
    assert_eq!(t.put("a", "3").header.unwrap().revision, 4);
    assert_eq!(t.revision(), 2);
    assert_eq!(t.store().applied_index(), applied);
    assert_eq!(t.get("a").kvs[0].value, b("1"));
    t.commit();
    assert_eq!(t.revision(), 4);
    assert_eq!(t.store().applied_index(), applied + 2);
    let kv = &t.get("a").kvs[0];
    assert_eq!(
        (kv.value.clone(), kv.version, kv.create_revision),
        (b("3"), 3, 2)
    );
}

#[test]
fn a_txn_reading_between_written_and_staged_revisions_sees_that_revision() {
    let mut t = TestStore::new();
    t.put("a", "1"); // revision 2, written
    t.staging = true;
    t.put("a", "2"); // 3, staged
    t.put("b", "x"); // 4, staged
    let read = |revision| TxnRequest {
        compare: vec![],
        success: vec![RequestOp {
            request: Some(Op::RequestRange(RangeRequest {
                revision,
                ..range_req("a", "")
            })),
        }],
        failure: vec![],
    };
    let value_at = |resp: TxnResponse| match &resp.responses[0].response {
        Some(OpResponse::ResponseRange(r)) => r.kvs[0].value.clone(),
        other => panic!("unexpected {other:?}"),
    };
    // Revision 3 is neither in RocksDB nor the newest: the batch is written first.
    assert_eq!(value_at(t.txn(read(3)).unwrap()), b("2"));
    assert_eq!(t.revision(), 4, "the batch was written to answer the read");
    t.put("a", "3"); // 5, staged
    assert_eq!(value_at(t.txn(read(2)).unwrap()), b("1"));
    assert_eq!(value_at(t.txn(read(0)).unwrap()), b("3"));
    assert_eq!(
        t.revision(),
        4,
        "reads at written or newest revisions stay staged"
    );
    t.commit();
    assert_eq!(t.get("a").kvs[0].value, b("3"));
}

#[test]
fn a_refused_txn_among_staged_entries_leaves_nothing() {
    let mut t = TestStore::new();
    t.staging = true;
    t.put("a", "1");
    let refused = t.txn(TxnRequest {
        compare: vec![],
        success: vec![put_op("b", "x"), {
            let mut put = put_req("c", "y");
            put.lease = 404;
            RequestOp {
                request: Some(Op::RequestPut(put)),
            }
        }],
        failure: vec![],
    });
    assert!(matches!(refused, Err(Error::LeaseNotFound)), "{refused:?}");
    t.delete("a", "c");
    t.commit();
    assert_eq!(t.revision(), 3);
    assert!(t.get("a").kvs.is_empty());
    assert!(t.get("b").kvs.is_empty());
    assert_eq!(t.store().applied_index(), 3);
}

/// Grants and revokes share their batch's one write, as puts do; later entries of the
/// batch see them, and a revoke still deletes keys that staged entries attached.
#[test]
fn lease_entries_are_staged_with_the_rest_of_their_batch() {
    let mut t = TestStore::new();
    t.grant(1, 30).unwrap();
    t.put_lease("x", "1", 1).unwrap();
    t.staging = true;
    t.grant(2, 30).unwrap();
    assert!(matches!(t.grant(2, 30), Err(Error::LeaseExists)));
    assert!(t.store().lease(2).unwrap().is_none(), "staged, not written");
    t.put_lease("a", "1", 2).unwrap();
    t.put_lease("b", "1", 1).unwrap();
    t.revoke(1).unwrap();
    assert!(matches!(
        t.put_lease("c", "1", 1),
        Err(Error::LeaseNotFound)
    ));
    assert!(matches!(t.revoke(1), Err(Error::LeaseNotFound)));
    // "a" was attached by a staged entry: listing lease 2's keys writes the batch first.
    t.revoke(2).unwrap();
    t.put("d", "1");
    t.grant(3, 10).unwrap();
    assert!(t.store().lease(3).unwrap().is_none(), "staged, not written");
    t.commit();
    assert!(t.get("a").kvs.is_empty(), "revoked with its lease");
    assert!(t.get("b").kvs.is_empty(), "revoked with its lease");
    assert!(t.get("x").kvs.is_empty(), "revoked with its lease");
    assert_eq!(t.get("d").kvs.len(), 1);
    assert_eq!(
        t.store().leases().unwrap(),
        vec![ballast_store::Lease { id: 3, ttl: 10 }]
    );
    assert!(t.store().lease_keys(1).unwrap().is_empty());
    assert!(t.store().lease_keys(2).unwrap().is_empty());
}

#[test]
fn the_key_count_follows_creates_and_deletes_across_restarts_and_snapshots() {
    let mut t = TestStore::new();
    t.staging = true;
    t.put("a", "1");
    t.put("a", "2");
    t.put("b", "1");
    t.grant(7, 60).unwrap();
    t.put_lease("c", "1", 7).unwrap();
    t.commit();
    assert_eq!(t.store().keys_total(), 3, "an overwrite creates nothing");
    t.delete("a", "");
    t.delete("zzz", "");
    t.revoke(7).unwrap();
    t.commit();
    assert_eq!(t.store().keys_total(), 1);
    t.reopen();
    assert_eq!(t.store().keys_total(), 1);
    let (_, path) = t.store().write_snapshot().unwrap();
    let other = TestStore::new();
    other.store().install_snapshot(&path).unwrap();
    assert_eq!(other.store().keys_total(), 1);
}

#[test]
fn physical_compaction_keeps_a_history_entry_for_every_version_it_keeps() {
    use ballast_store::backend::Cf;
    use ballast_store::keys::{split_rev_key, split_version_key};
    use ballast_store::record::Change;

    let mut t = TestStore::new();
    t.put("once", "0");
    t.put("a", "1");
    t.put("b", "2");
    t.put("a", "3");
    t.delete("b", "");
    t.put("c", "4");
    let compact = 5;
    t.compact(compact).unwrap();
    assert!(t
        .store()
        .wait_compacted(compact, std::time::Duration::from_secs(10)));

    let backend = t.store().backend();
    let db = backend.db();
    let mut versions: Vec<(Vec<u8>, i64)> = db
        .iterator_cf(backend.cf(Cf::Kv), rocksdb::IteratorMode::Start)
        .map(|item| {
            let (key, _) = item.unwrap();
            let (prefix, revision) = split_version_key(&key);
            (ballast_store::keys::decode_key_prefix(prefix), revision)
        })
        .collect();
    let mut history: Vec<(Vec<u8>, i64)> = db
        .iterator_cf(backend.cf(Cf::Rev), rocksdb::IteratorMode::Start)
        .map(|item| {
            let (rev, change) = item.unwrap();
            (
                Change::decode(&change).unwrap().key.to_vec(),
                split_rev_key(&rev).0,
            )
        })
        .collect();
    versions.sort();
    history.sort();
    assert_eq!(
        history, versions,
        "the history indexes exactly the stored versions"
    );
    assert!(
        versions.contains(&(b"once".to_vec(), 2)),
        "the one version of a key below the point stays"
    );
    assert!(
        !versions.contains(&(b"a".to_vec(), 3)),
        "an overwritten version below the point goes"
    );
}

#[test]
fn history_entries_a_store_from_before_lacks_are_restored_at_open() {
    use ballast_store::backend::{meta, Cf};
    use ballast_store::keys::rev_key;

    let mut t = TestStore::new();
    t.put("once", "0"); // 2
    t.put("a", "1"); // 3
    t.put("a", "2"); // 4
    t.compact(4).unwrap();
    assert!(t
        .store()
        .wait_compacted(4, std::time::Duration::from_secs(10)));
    // What an earlier compaction left: no history below the point, no marker.
    {
        let backend = t.store().backend();
        let mut batch = rocksdb::WriteBatch::default();
        batch.delete_cf(backend.cf(Cf::Rev), rev_key(2, 0));
        batch.delete_cf(backend.cf(Cf::Meta), meta::HISTORY_COMPLETE);
        backend.write(batch, true).unwrap();
    }
    t.reopen();
    let backend = t.store().backend();
    let restored = backend.get(Cf::Rev, &rev_key(2, 0)).unwrap();
    let change = ballast_store::record::Change::decode(&restored.expect("restored")).unwrap();
    assert_eq!(&change.key[..], b"once");
    assert!(backend
        .get(Cf::Meta, meta::HISTORY_COMPLETE)
        .unwrap()
        .is_some());
    assert!(
        backend.get(Cf::Rev, &rev_key(3, 0)).unwrap().is_none(),
        "an overwritten version below the point stays out"
    );
}
