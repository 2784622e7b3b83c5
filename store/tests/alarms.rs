//! Alarms through the apply path: what NOSPACE and CORRUPT refuse and let through, kept
//! across a restart and carried by snapshots, cleared only by a disarm.

mod common;

use ballast_proto::ballast::internal::raft_request::Request;
use ballast_proto::etcdserverpb::alarm_request::AlarmAction;
use ballast_proto::etcdserverpb::request_op::Request as Op;
use ballast_proto::etcdserverpb::*;
use ballast_store::{Error, Response};
use common::*;

fn alarm(action: AlarmAction, member_id: u64, kind: AlarmType) -> Request {
    Request::Alarm(AlarmRequest {
        action: action as i32,
        member_id,
        alarm: kind as i32,
    })
}

fn answered(response: ballast_store::Result<Response>) -> Vec<(u64, i32)> {
    match response.unwrap() {
        Response::Alarm(r) => r.alarms.iter().map(|a| (a.member_id, a.alarm)).collect(),
        other => panic!("unexpected {other:?}"),
    }
}

fn txn(op: Op) -> TxnRequest {
    TxnRequest {
        success: vec![RequestOp { request: Some(op) }],
        ..Default::default()
    }
}

const NOSPACE: i32 = AlarmType::Nospace as i32;

#[test]
fn nospace_refuses_what_adds_data_until_disarmed() {
    let mut t = TestStore::new();
    t.put("a", "1");
    t.put("b", "2");
    let raised = t.apply(alarm(AlarmAction::Activate, 7, AlarmType::Nospace));
    assert_eq!(answered(raised), [(7, NOSPACE)]);
    let again = t.apply(alarm(AlarmAction::Activate, 7, AlarmType::Nospace));
    assert_eq!(answered(again), [(7, NOSPACE)], "raising twice keeps one");

    let revision = t.revision();
    assert!(matches!(
        t.apply(Request::Put(put_req("c", "3"))),
        Err(Error::NoSpace)
    ));
    assert!(matches!(t.grant(9, 60), Err(Error::NoSpace)));
    let nested = TxnRequest {
        failure: vec![RequestOp {
            request: Some(Op::RequestTxn(txn(Op::RequestPut(put_req("c", "3"))))),
        }],
        ..Default::default()
    };
    assert!(matches!(t.txn(nested), Err(Error::NoSpace)));
    assert_eq!(t.revision(), revision, "nothing refused was written");

    // Reads, deletes (also in txns) and compaction make room.
    assert_eq!(t.get("a").kvs.len(), 1);
    t.delete("a", "");
    t.txn(txn(Op::RequestDeleteRange(DeleteRangeRequest {
        key: b("b"),
        ..Default::default()
    })))
    .unwrap();
    t.compact(t.revision()).unwrap();

    // Kept across a restart; GET lists it for NONE and for its own kind only.
    t.reopen();
    assert_eq!(
        answered(t.apply(alarm(AlarmAction::Get, 0, AlarmType::None))),
        [(7, NOSPACE)]
    );
    assert!(answered(t.apply(alarm(AlarmAction::Get, 0, AlarmType::Corrupt))).is_empty());
    assert!(matches!(
        t.apply(Request::Put(put_req("c", "3"))),
        Err(Error::NoSpace)
    ));

    // Disarming another member's alarm clears nothing; this one's clears it.
    assert!(answered(t.apply(alarm(AlarmAction::Deactivate, 8, AlarmType::Nospace))).is_empty());
    assert_eq!(
        answered(t.apply(alarm(AlarmAction::Deactivate, 7, AlarmType::Nospace))),
        [(7, NOSPACE)]
    );
    assert!(t.store().alarms().is_empty());
    t.put("c", "3");
    t.grant(9, 60).unwrap();
}

#[test]
fn corrupt_refuses_every_write_and_travels_in_snapshots() {
    let mut t = TestStore::new();
    t.put("a", "1");
    t.grant(5, 60).unwrap();
    t.apply(alarm(AlarmAction::Activate, 3, AlarmType::Corrupt))
        .unwrap();
    assert!(matches!(
        t.apply(Request::DeleteRange(DeleteRangeRequest {
            key: b("a"),
            ..Default::default()
        })),
        Err(Error::CorruptCluster)
    ));
    assert!(matches!(t.compact(2), Err(Error::CorruptCluster)));
    assert!(matches!(t.revoke(5), Err(Error::CorruptCluster)));
    assert_eq!(t.get("a").kvs.len(), 1);

    let (_, path) = t.store().write_snapshot().unwrap();
    let mut target = TestStore::new();
    target.store().install_snapshot(&path).unwrap();
    assert!(target.store().alarm_active(AlarmType::Corrupt));
    target.index = t.index;
    assert!(matches!(
        target.apply(Request::Put(put_req("b", "2"))),
        Err(Error::CorruptCluster)
    ));
}

#[test]
fn unknown_alarm_kinds_are_not_raised() {
    let mut t = TestStore::new();
    let odd = Request::Alarm(AlarmRequest {
        action: AlarmAction::Activate as i32,
        member_id: 1,
        alarm: 42,
    });
    assert!(answered(t.apply(odd)).is_empty());
    assert!(answered(t.apply(alarm(AlarmAction::Activate, 1, AlarmType::None))).is_empty());
    assert!(t.store().alarms().is_empty());
}
