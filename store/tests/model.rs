//! The MVCC rules checked against a simple in-memory model with proptest: random puts,
//! deletes, compare-and-swap txns, leases, compactions and restarts, then reads at random
//! revisions with random options, and the history replayed to a watcher.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use ballast_proto::ballast::internal::raft_request::Request;
use ballast_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use ballast_proto::etcdserverpb::request_op::Request as Op;
use ballast_proto::etcdserverpb::*;
use ballast_proto::mvccpb::{event::EventType, KeyValue};
use ballast_store::watch::{SinkError, WatchMessage, WatchSink};
use ballast_store::{Error, KeyRange};
use bytes::Bytes;
use common::TestStore;
use proptest::prelude::*;

/// Keys chosen to exercise the key escaping: zero bytes, prefixes, 0xFF.
const KEYS: [&[u8]; 7] = [b"a", b"a\0", b"a\0b", b"ab", b"b", b"b\xff", b"c"];

/// The lease a put names.
#[derive(Debug, Clone, Copy)]
enum LeaseChoice {
    None,
    /// The newest live lease (a missing one if none is).
    Live,
    /// The newest revoked lease (a missing one if none was).
    Revoked,
}

#[derive(Debug, Clone)]
enum Action {
    Put {
        key: usize,
        value: u8,
        lease: LeaseChoice,
    },
    Delete {
        from: usize,
        to: Option<usize>,
    },
    Cas {
        key: usize,
        right_guess: bool,
        value: u8,
        /// How far back the failure branch reads the key.
        back: i64,
    },
    /// A new lease, or `again` the newest live one (refused).
    Grant {
        again: bool,
    },
    /// The newest live lease, or `again` the newest revoked one (refused).
    Revoke {
        again: bool,
    },
    Compact {
        back: i64,
    },
    Reopen,
    /// Writes the staged entries (the store runs in staging mode).
    Commit,
    Read {
        from: usize,
        to: Option<usize>,
        back: i64,
        limit: i64,
        keys_only: bool,
        count_only: bool,
    },
}

fn lease_choice() -> impl Strategy<Value = LeaseChoice> {
    prop_oneof![
        4 => Just(LeaseChoice::None),
        3 => Just(LeaseChoice::Live),
        1 => Just(LeaseChoice::Revoked),
    ]
}

fn action() -> impl Strategy<Value = Action> {
    let key = 0..KEYS.len();
    // Most writes go to two hot keys, so keys reach high versions and long histories.
    let hot_key = prop_oneof![3 => 0..2usize, 1 => 0..KEYS.len()];
    prop_oneof![
        6 => (hot_key.clone(), any::<u8>(), lease_choice()).prop_map(|(key, value, lease)| Action::Put { key, value, lease }),
        2 => (key.clone(), proptest::option::of(0..KEYS.len())).prop_map(|(from, to)| Action::Delete { from, to }),
        2 => (hot_key, any::<bool>(), any::<u8>(), 0i64..4).prop_map(|(key, right_guess, value, back)| Action::Cas { key, right_guess, value, back }),
        1 => any::<bool>().prop_map(|again| Action::Grant { again }),
        1 => any::<bool>().prop_map(|again| Action::Revoke { again }),
        1 => (0i64..6).prop_map(|back| Action::Compact { back }),
        1 => Just(Action::Reopen),
        2 => Just(Action::Commit),
        5 => (key, proptest::option::of(0..KEYS.len()), 0i64..8, 0i64..4, any::<bool>(), any::<bool>())
            .prop_map(|(from, to, back, limit, keys_only, count_only)| Action::Read { from, to, back, limit, keys_only, count_only }),
    ]
}

type State = BTreeMap<Vec<u8>, KeyValue>;

/// The model: the full key set after every revision, and the events that made them.
struct Model {
    states: Vec<State>, // states[r] = state at revision r (index 0 unused)
    events: Vec<(i64, bool, Vec<u8>)>, // (revision, is_put, key)
    compacted: i64,
    leases: Vec<i64>,
    revoked: Vec<i64>,
    next_lease: i64,
}

impl Model {
    fn new() -> Model {
        Model {
            states: vec![State::new(), State::new()],
            events: Vec::new(),
            compacted: 0,
            leases: Vec::new(),
            revoked: Vec::new(),
            next_lease: 1,
        }
    }
    fn revision(&self) -> i64 {
        self.states.len() as i64 - 1
    }
    fn current(&self) -> &State {
        self.states.last().unwrap()
    }
}

fn range_of(from: usize, to: Option<usize>) -> (Bytes, Bytes) {
    let start = Bytes::from_static(KEYS[from]);
    let end = match to {
        None => Bytes::new(),
        Some(to) if to == KEYS.len() - 1 => Bytes::from_static(b"\0"), // from-key
        Some(to) => Bytes::from_static(KEYS[to]),
    };
    (start, end)
}

struct Collect(Mutex<Vec<WatchMessage>>);

impl WatchSink for Collect {
    fn try_send(&self, message: WatchMessage) -> Result<(), SinkError> {
        self.0.lock().unwrap().push(message);
        Ok(())
    }
}

fn kv_tuple(kv: &KeyValue) -> (Vec<u8>, Vec<u8>, i64, i64, i64, i64) {
    (
        kv.key.to_vec(),
        kv.value.to_vec(),
        kv.create_revision,
        kv.mod_revision,
        kv.version,
        kv.lease,
    )
}

/// A key and what it becomes: Some((value, lease)), or None for a delete.
type Change = (Vec<u8>, Option<(Vec<u8>, i64)>);

/// Applies a write to the model.
fn model_write(m: &mut Model, changes: Vec<Change>) {
    if changes.is_empty() {
        return;
    }
    let revision = m.revision() + 1;
    let mut state = m.current().clone();
    for (key, change) in changes {
        match change {
            Some((value, lease)) => {
                let (create, version) = state.get(&key).map_or((revision, 1), |prev| {
                    (prev.create_revision, prev.version + 1)
                });
                state.insert(
                    key.clone(),
                    KeyValue {
                        key: key.clone().into(),
                        value: value.into(),
                        create_revision: create,
                        mod_revision: revision,
                        version,
                        lease,
                    },
                );
                m.events.push((revision, true, key));
            }
            None => {
                state.remove(&key);
                m.events.push((revision, false, key));
            }
        }
    }
    m.states.push(state);
}

fn run(actions: Vec<Action>) {
    let mut t = TestStore::new();
    // Writes stay staged until a commit, a read, a restart, a compaction, or a revoke of a
    // lease that staged entries attached keys to.
    t.staging = true;
    let mut m = Model::new();
    for action in actions {
        let staged = matches!(
            action,
            Action::Put { .. }
                | Action::Delete { .. }
                | Action::Cas { .. }
                | Action::Grant { .. }
                | Action::Revoke { .. }
        );
        match action {
            Action::Put { key, value, lease } => {
                let lease = match lease {
                    LeaseChoice::None => 0,
                    LeaseChoice::Live => m.leases.last().copied().unwrap_or(404),
                    LeaseChoice::Revoked => m.revoked.last().copied().unwrap_or(404),
                };
                let req = PutRequest {
                    key: Bytes::from_static(KEYS[key]),
                    value: Bytes::from(vec![value]),
                    lease,
                    ..Default::default()
                };
                let result = t.apply(Request::Put(req));
                if lease != 0 && !m.leases.contains(&lease) {
                    assert!(matches!(result, Err(Error::LeaseNotFound)), "{result:?}");
                } else {
                    result.unwrap();
                    model_write(
                        &mut m,
                        vec![(KEYS[key].to_vec(), Some((vec![value], lease)))],
                    );
                }
            }
            Action::Delete { from, to } => {
                let (key, range_end) = range_of(from, to);
                let range = KeyRange::new(key.clone(), range_end.clone());
                t.apply(Request::DeleteRange(DeleteRangeRequest {
                    key,
                    range_end,
                    prev_kv: false,
                }))
                .unwrap();
                let victims: Vec<_> = m
                    .current()
                    .keys()
                    .filter(|k| range.contains(k))
                    .cloned()
                    .collect();
                model_write(&mut m, victims.into_iter().map(|k| (k, None)).collect());
            }
            Action::Cas {
                key,
                right_guess,
                value,
                back,
            } => {
                let current = m.current().get(KEYS[key]).map_or(0, |kv| kv.mod_revision);
                let guess = if right_guess { current } else { current + 1 };
                // A read at an older revision, which may lie among staged entries.
                let read_at = (m.revision() - back).max(1);
                let req = TxnRequest {
                    compare: vec![Compare {
                        result: CompareResult::Equal as i32,
                        target: CompareTarget::Mod as i32,
                        key: Bytes::from_static(KEYS[key]),
                        target_union: Some(TargetUnion::ModRevision(guess)),
                        range_end: Bytes::new(),
                    }],
                    success: vec![RequestOp {
                        request: Some(Op::RequestPut(PutRequest {
                            key: Bytes::from_static(KEYS[key]),
                            value: Bytes::from(vec![value]),
                            ..Default::default()
                        })),
                    }],
                    failure: vec![RequestOp {
                        request: Some(Op::RequestRange(RangeRequest {
                            key: Bytes::from_static(KEYS[key]),
                            revision: read_at,
                            ..Default::default()
                        })),
                    }],
                };
                let result = t.txn(req);
                if !right_guess && read_at < m.compacted {
                    assert!(matches!(result, Err(Error::Compacted)), "{result:?}");
                    continue;
                }
                let resp = result.unwrap();
                assert_eq!(resp.succeeded, right_guess);
                if !right_guess {
                    let Some(response_op::Response::ResponseRange(read)) =
                        &resp.responses[0].response
                    else {
                        panic!("failure branch answered {:?}", resp.responses);
                    };
                    let got: Vec<_> = read.kvs.iter().map(kv_tuple).collect();
                    let want: Vec<_> = m.states[read_at as usize]
                        .get(KEYS[key])
                        .map(kv_tuple)
                        .into_iter()
                        .collect();
                    assert_eq!(got, want, "txn read at revision {read_at}");
                }
                if right_guess {
                    model_write(&mut m, vec![(KEYS[key].to_vec(), Some((vec![value], 0)))]);
                }
                assert_eq!(resp.header.unwrap().revision, m.revision());
            }
            Action::Grant { again: true } => {
                let Some(&id) = m.leases.last() else { continue };
                let result = t.grant(id, 60);
                assert!(matches!(result, Err(Error::LeaseExists)), "{result:?}");
            }
            Action::Grant { again: false } => {
                let id = m.next_lease;
                m.next_lease += 1;
                t.grant(id, 60).unwrap();
                m.leases.push(id);
            }
            Action::Revoke { again: true } => {
                let Some(&id) = m.revoked.last() else {
                    continue;
                };
                let result = t.revoke(id);
                assert!(matches!(result, Err(Error::LeaseNotFound)), "{result:?}");
            }
            Action::Revoke { again: false } => {
                let Some(id) = m.leases.pop() else { continue };
                t.revoke(id).unwrap();
                m.revoked.push(id);
                let victims: Vec<_> = m
                    .current()
                    .values()
                    .filter(|kv| kv.lease == id)
                    .map(|kv| kv.key.to_vec())
                    .collect();
                model_write(&mut m, victims.into_iter().map(|k| (k, None)).collect());
            }
            Action::Compact { back } => {
                let target = m.revision() - back;
                let result = t.compact(target);
                if target <= m.compacted {
                    assert!(matches!(result, Err(Error::Compacted)), "{result:?}");
                } else {
                    result.unwrap();
                    m.compacted = target;
                }
            }
            Action::Reopen => t.reopen(),
            Action::Commit => t.commit(),
            Action::Read {
                from,
                to,
                back,
                limit,
                keys_only,
                count_only,
            } => {
                t.commit();
                let (key, range_end) = range_of(from, to);
                let range = KeyRange::new(key.clone(), range_end.clone());
                let revision = (m.revision() - back).max(1);
                let req = RangeRequest {
                    key,
                    range_end,
                    // Zero (the current revision) is the read that fills the key cache.
                    revision: if back == 0 { 0 } else { revision },
                    limit,
                    keys_only,
                    count_only,
                    ..Default::default()
                };
                let result = t.store().range(&req);
                if revision < m.compacted {
                    assert!(matches!(result, Err(Error::Compacted)), "{result:?}");
                    continue;
                }
                let resp = result.unwrap();
                let mut expected: Vec<KeyValue> = m.states[revision as usize]
                    .values()
                    .filter(|kv| range.contains(&kv.key))
                    .cloned()
                    .collect();
                assert_eq!(resp.count, expected.len() as i64);
                assert_eq!(resp.header.unwrap().revision, m.revision());
                if count_only {
                    assert!(resp.kvs.is_empty());
                    continue;
                }
                let more = limit > 0 && expected.len() > limit as usize;
                if more {
                    expected.truncate(limit as usize);
                }
                if keys_only {
                    for kv in &mut expected {
                        kv.value = Bytes::new();
                    }
                }
                assert_eq!(resp.more, more);
                let got: Vec<_> = resp.kvs.iter().map(kv_tuple).collect();
                let want: Vec<_> = expected.iter().map(kv_tuple).collect();
                assert_eq!(got, want, "range at revision {revision}");
            }
        }
        if !staged {
            assert_eq!(t.revision(), m.revision());
        }
    }
    t.commit();
    assert_eq!(t.revision(), m.revision());

    // The history from the compaction point on replays to a watcher, in order, once.
    let start = m.compacted.max(1);
    let sink = Arc::new(Collect(Mutex::new(Vec::new())));
    let hub = t.store().watch_hub();
    let stream = hub.open_stream(sink.clone());
    let (watcher, _) = hub.watch(stream, 7, common::every_key(false), start);
    t.store().watch_activate(watcher);
    let mut replayed = Vec::new();
    for message in sink.0.lock().unwrap().iter() {
        match message {
            WatchMessage::Events { events, .. } => {
                for e in events {
                    let kv = e.kv.as_ref().unwrap();
                    replayed.push((
                        kv.mod_revision,
                        e.r#type == EventType::Put as i32,
                        kv.key.to_vec(),
                    ));
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let expected: Vec<_> = m
        .events
        .iter()
        .filter(|(r, _, _)| *r >= start)
        .cloned()
        .collect();
    // Both are in revision order, and within a revision in write order (deletes and
    // revokes go in key order in the model and in the store).
    assert_eq!(replayed, expected);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn store_matches_the_model(actions in proptest::collection::vec(action(), 1..60)) {
        run(actions);
    }
}
