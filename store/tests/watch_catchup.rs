//! Many watchers that fall behind together are caught up from history by the syncer
//! (one read for the group): each gets exactly its own events, in order, once.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ballast_proto::mvccpb::event::EventType;
use ballast_store::watch::{Filter, SinkError, WatchMessage, WatchSink};
use ballast_store::KeyRange;
use bytes::Bytes;
use common::TestStore;

/// A sink that refuses everything until it is opened, like a client that stopped reading;
/// it says so, so the syncer skips its watchers until then (nothing wakes it on opening).
struct Gate {
    open: AtomicUsize,
    got: Mutex<Vec<WatchMessage>>,
}

impl WatchSink for Gate {
    fn try_send(&self, message: WatchMessage) -> Result<(), SinkError> {
        if self.open.load(Ordering::Acquire) == 0 {
            return Err(SinkError::Full);
        }
        self.got.lock().unwrap().push(message);
        Ok(())
    }

    fn has_room(&self) -> bool {
        self.open.load(Ordering::Acquire) != 0
    }
}

/// (mod revision, is put, key, has prev_kv) of every event a watcher received.
type Seen = Vec<(i64, bool, Vec<u8>, bool)>;

fn events_by_watch_id(messages: &[WatchMessage]) -> std::collections::HashMap<i64, Seen> {
    let mut seen: std::collections::HashMap<i64, Seen> = Default::default();
    for message in messages {
        let WatchMessage::Events {
            watch_id, events, ..
        } = message
        else {
            panic!("unexpected {message:?}");
        };
        for e in events {
            let kv = e.kv.as_ref().unwrap();
            seen.entry(*watch_id).or_default().push((
                kv.mod_revision,
                e.r#type == EventType::Put as i32,
                kv.key.to_vec(),
                e.prev_kv.is_some(),
            ));
        }
    }
    seen
}

#[test]
fn watchers_behind_together_are_caught_up_exactly() {
    let mut t = TestStore::new();
    t.put("k0", "before");
    let start = t.revision() + 1;
    let gate = Arc::new(Gate {
        open: AtomicUsize::new(0),
        got: Mutex::new(Vec::new()),
    });
    let store = t.store().clone();
    let hub = store.watch_hub();
    let stream = hub.open_stream(gate.clone());
    // Watchers with different ranges, event types and prev_kv choices.
    let mut filters = Vec::new();
    for i in 0..60i64 {
        let range = match i % 3 {
            0 => KeyRange::new(Bytes::from("k"), Bytes::from("l")),
            1 => KeyRange::single(Bytes::from(format!("k{}", i % 5))),
            _ => KeyRange::new(Bytes::from(format!("k{}", i % 5)), Bytes::from("k9")),
        };
        let filter = Filter {
            range,
            no_put: i % 7 == 0,
            no_delete: i % 11 == 0,
            prev_kv: i % 2 == 0,
        };
        let (watcher, _) = hub.watch(stream, i, filter.clone(), start);
        store.watch_activate(watcher);
        filters.push(filter);
    }
    // Writes while nobody can receive: every watcher falls behind.
    for round in 0..40 {
        let key = format!("k{}", round % 6);
        if round % 4 == 3 {
            t.delete(&key, "");
        } else {
            t.put(&key, &format!("v{round}"));
        }
    }
    let end = t.revision();
    gate.open.store(1, Ordering::Release);

    // The history as it happened: (revision, is put, key) per write.
    let all = {
        let view_all = Arc::new(Gate {
            open: AtomicUsize::new(1),
            got: Mutex::new(Vec::new()),
        });
        let s = hub.open_stream(view_all.clone());
        let (w, _) = hub.watch(s, 1000, common::every_key(true), start);
        store.watch_activate(w);
        let got = view_all.got.lock().unwrap().clone();
        events_by_watch_id(&got).remove(&1000).unwrap()
    };
    assert_eq!(
        all.last().unwrap().0,
        end,
        "the reference watcher saw everything"
    );

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen = events_by_watch_id(&gate.got.lock().unwrap());
        let done = filters.iter().enumerate().all(|(i, filter)| {
            let last_wanted = all
                .iter()
                .rev()
                .find(|(_, put, key, _)| wants(filter, *put, key))
                .map(|e| e.0);
            let last_seen = seen.get(&(i as i64)).and_then(|s| s.last()).map(|e| e.0);
            last_wanted == last_seen
        });
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "watchers not caught up: {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let seen = events_by_watch_id(&gate.got.lock().unwrap());
    for (i, filter) in filters.iter().enumerate() {
        let expected: Seen = all
            .iter()
            .filter(|(_, put, key, _)| wants(filter, *put, key))
            .map(|(r, put, key, prev)| (*r, *put, key.clone(), filter.prev_kv && *prev))
            .collect();
        assert_eq!(
            seen.get(&(i as i64)).cloned().unwrap_or_default(),
            expected,
            "watcher {i} ({filter:?})"
        );
    }
}

fn wants(filter: &Filter, put: bool, key: &[u8]) -> bool {
    !(put && filter.no_put || !put && filter.no_delete) && filter.range.contains(key)
}
