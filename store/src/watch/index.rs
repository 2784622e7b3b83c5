//! Watchers by the keys they watch, so publishing a revision visits the watchers its
//! events concern, not every watcher of the member. One-key watchers are found by key;
//! range watchers are grouped by range (the watchers of one prefix, the usual case, are
//! one group), and each distinct range is looked at once per event.

use std::collections::{HashMap, HashSet};

use ballast_proto::mvccpb::Event;
use bytes::Bytes;

use crate::range::KeyRange;

#[derive(Debug, Default)]
pub(super) struct WatcherIndex {
    keys: HashMap<Bytes, HashSet<u64>>,
    ranges: HashMap<KeyRange, HashSet<u64>>,
}

impl WatcherIndex {
    pub(super) fn insert(&mut self, id: u64, range: &KeyRange) {
        let ids = if range.is_single() {
            self.keys.entry(range.start.clone()).or_default()
        } else {
            self.ranges.entry(range.clone()).or_default()
        };
        ids.insert(id);
    }

    pub(super) fn remove(&mut self, id: u64, range: &KeyRange) {
        if range.is_single() {
            remove_from(&mut self.keys, &range.start, id);
        } else {
            remove_from(&mut self.ranges, range, id);
        }
    }

    /// The groups of watchers whose range holds the key of one of `events`. A watcher
    /// is in one group only, and each group is named once, so each watcher comes once.
    pub(super) fn concerned(&self, events: &[Event]) -> Vec<&HashSet<u64>> {
        let mut keys: Vec<&Bytes> = events
            .iter()
            .filter_map(|e| e.kv.as_ref().map(|kv| &kv.key))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let mut groups: Vec<&HashSet<u64>> =
            keys.iter().filter_map(|key| self.keys.get(*key)).collect();
        for (range, ids) in &self.ranges {
            if keys.iter().any(|key| range.contains(key)) {
                groups.push(ids);
            }
        }
        groups
    }
}

fn remove_from<K: std::hash::Hash + Eq>(map: &mut HashMap<K, HashSet<u64>>, key: &K, id: u64) {
    if let Some(ids) = map.get_mut(key) {
        ids.remove(&id);
        if ids.is_empty() {
            map.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ballast_proto::mvccpb::KeyValue;

    fn event(key: &str) -> Event {
        Event {
            kv: Some(KeyValue {
                key: Bytes::copy_from_slice(key.as_bytes()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn range(key: &str, end: &str) -> KeyRange {
        KeyRange::new(
            Bytes::copy_from_slice(key.as_bytes()),
            Bytes::copy_from_slice(end.as_bytes()),
        )
    }

    #[test]
    fn finds_the_watchers_of_the_events_keys_once_each() {
        let mut index = WatcherIndex::default();
        index.insert(1, &range("a", ""));
        index.insert(2, &range("a", "c"));
        index.insert(3, &range("a", "c"));
        index.insert(4, &range("x", "\0"));
        index.insert(5, &range("b", ""));
        let ids = |index: &WatcherIndex, events: &[Event]| {
            let mut ids: Vec<u64> = index
                .concerned(events)
                .into_iter()
                .flatten()
                .copied()
                .collect();
            ids.sort();
            ids
        };
        assert_eq!(
            ids(&index, &[event("a"), event("b"), event("a")]),
            [1, 2, 3, 5]
        );
        assert_eq!(ids(&index, &[event("zz")]), [4]);
        index.remove(2, &range("a", "c"));
        index.remove(1, &range("a", ""));
        assert_eq!(ids(&index, &[event("a")]), [3]);
        index.remove(3, &range("a", "c"));
        assert!(index.ranges.len() == 1 && index.keys.len() == 1);
    }
}
