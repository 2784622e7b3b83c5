//! Fuzzing the peer port's admission against raft-rs itself: whatever `admit` lets
//! through, a follower and a leader step and process without panicking. Random messages
//! of every type, from members and strangers, with indexes and terms around the log's.
//! Runs in CI as an ordinary test with a bounded number of cases; a failing case
//! proptest finds is kept in `proptest-regressions/` and replayed first ever after.

use std::panic::{catch_unwind, AssertUnwindSafe};

use proptest::prelude::*;
use protobuf::ProtobufEnum as _;
use raft::eraftpb::{Entry, Message as RaftMessage, MessageType};
use raft::storage::MemStorage;
use raft::{RawNode, StateRole};

use crate::peer::admit::{check, check_against_log};
use crate::raft::mem_node::{mem_node, ready};

/// Random messages tried per run.
const CASES: u32 = 4096;
const MEMBERS: u64 = 3;

/// Processes every node's Ready and delivers their messages to the members (a message to
/// a stranger is lost).
fn deliver(nodes: &mut [RawNode<MemStorage>]) {
    let mail: Vec<RaftMessage> = nodes.iter_mut().flat_map(|n| ready(n).0).collect();
    for m in mail {
        if let Some(node) = (m.to as usize)
            .checked_sub(1)
            .and_then(|i| nodes.get_mut(i))
        {
            let _ = node.step(m);
        }
    }
}

/// Three members with node 1 elected and a few entries committed everywhere.
fn cluster() -> Vec<RawNode<MemStorage>> {
    let mut nodes: Vec<_> = (1..=MEMBERS).map(mem_node).collect();
    nodes[0].campaign().unwrap();
    for round in 0..20 {
        if round == 5 {
            for _ in 0..3 {
                nodes[0].propose(vec![], b"entry".to_vec()).unwrap();
            }
        }
        deliver(&mut nodes);
    }
    assert_eq!(nodes[0].raft.state, StateRole::Leader);
    nodes
}

fn kinds() -> impl Strategy<Value = MessageType> {
    (0i32..19).prop_map(|n| MessageType::from_i32(n).unwrap_or(MessageType::MsgHup))
}

fn entries() -> impl Strategy<Value = Vec<Entry>> {
    proptest::collection::vec((0u64..20, 0u64..6, any::<bool>()), 0..4).prop_map(|es| {
        es.into_iter()
            .map(|(index, term, garbage)| Entry {
                index,
                term,
                data: if garbage {
                    vec![0xde, 0xad].into()
                } else {
                    Default::default()
                },
                ..Default::default()
            })
            .collect()
    })
}

prop_compose! {
    fn message(to: u64)(
        kind in kinds(),
        from in 1u64..=MEMBERS + 1,
        term in 0u64..6,
        log_term in 0u64..6,
        index in 0u64..20,
        commit in 0u64..20,
        reject in any::<bool>(),
        reject_hint in 0u64..20,
        request_snapshot in 0u64..20,
        entries in entries(),
    ) -> RaftMessage {
        let mut m = RaftMessage::default();
        m.set_msg_type(kind);
        m.from = from;
        m.to = to;
        m.term = term;
        m.log_term = log_term;
        m.index = index;
        m.commit = commit;
        m.reject = reject;
        m.reject_hint = reject_hint;
        m.request_snapshot = request_snapshot;
        m.entries = entries.into();
        m
    }
}

/// Steps the messages `admit` lets through into node `target` of a fresh cluster, and
/// processes what follows; true if raft-rs never panicked.
fn survives(target: usize, messages: Vec<RaftMessage>) -> bool {
    let mut nodes = cluster();
    let me = target as u64 + 1;
    catch_unwind(AssertUnwindSafe(|| {
        for m in messages {
            let raft = &nodes[target].raft;
            let (last_index, leader) =
                (raft.raft_log.last_index(), raft.state == StateRole::Leader);
            if check(&m, m.from, me).is_err() || check_against_log(&m, last_index, leader).is_err()
            {
                continue;
            }
            let _ = nodes[target].step(m);
            deliver(&mut nodes);
            for n in nodes.iter_mut() {
                n.tick();
            }
        }
    }))
    .is_ok()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn a_follower_survives_whatever_is_admitted(
        messages in proptest::collection::vec(message(2), 1..12)
    ) {
        prop_assert!(survives(1, messages));
    }

    #[test]
    fn a_leader_survives_whatever_is_admitted(
        messages in proptest::collection::vec(message(1), 1..12)
    ) {
        prop_assert!(survives(0, messages));
    }
}
