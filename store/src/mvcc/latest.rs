//! The newest version of recently used keys, for the apply thread.
//!
//! Every put needs its key's newest version (for the version, the create revision, the
//! lease and the event's `prev_kv`). In RocksDB that is a seek through the memtable and
//! every level that may hold the key: the largest cost of applying a put once the data
//! outgrows the memtable. etcd answers it from its in-memory index of every key; this
//! cache keeps only recent keys and is bounded in bytes, so memory stays flat however
//! many keys the store holds.
//!
//! It holds the state RocksDB holds (what the last written apply batch left): the apply
//! thread, the only writer, fills it on a miss and updates it when it writes a batch.

use std::collections::HashMap;

use ballast_proto::mvccpb::KeyValue;
use bytes::Bytes;

/// Bytes the cache holds at most, as estimated. 64 MiB keeps about 100,000 keys of
/// 256-byte values: a busy control plane's working set, and a small part of etcd's RSS.
pub const LATEST_CACHE_BYTES_MAX: usize = 64 << 20;

/// Estimated bytes of one entry besides its key and value: the map slot (a `Bytes` and
/// an `Option<KeyValue>`, about 140 bytes) times the hash map's spare capacity (between
/// 1.14x and 2.3x), the allocators' headers and the shared `Bytes` headers. 160, the
/// first estimate, let the cache grow to about 150 MiB at 1,000,000 keys.
const ENTRY_OVERHEAD_BYTES: usize = 320;

/// Two generations: new entries go into `young`; when it reaches half the budget it
/// becomes `old` and the previous `old` is dropped, so keys used since the last turn
/// survive and the total stays within the budget. A hit in `old` moves up to `young`.
#[derive(Debug)]
pub(crate) struct LatestCache {
    young: HashMap<Bytes, Option<KeyValue>>,
    old: HashMap<Bytes, Option<KeyValue>>,
    young_bytes: usize,
    budget_bytes: usize,
}

impl Default for LatestCache {
    fn default() -> Self {
        LatestCache::with_budget(LATEST_CACHE_BYTES_MAX)
    }
}

fn entry_bytes(key: &[u8], kv: &Option<KeyValue>) -> usize {
    key.len() + kv.as_ref().map_or(0, |kv| kv.value.len()) + ENTRY_OVERHEAD_BYTES
}

impl LatestCache {
    pub(crate) fn with_budget(budget_bytes: usize) -> Self {
        LatestCache {
            young: HashMap::new(),
            old: HashMap::new(),
            young_bytes: 0,
            budget_bytes,
        }
    }

    /// The newest version of `key` if cached: `Some(None)` means the key does not exist.
    pub(crate) fn get(&mut self, key: &[u8]) -> Option<Option<KeyValue>> {
        if let Some(kv) = self.young.get(key) {
            return Some(kv.clone());
        }
        let (key, kv) = self.old.remove_entry(key)?;
        self.insert(key, kv.clone());
        Some(kv)
    }

    /// Records the newest version of `key` (None: it does not exist).
    pub(crate) fn insert(&mut self, key: Bytes, kv: Option<KeyValue>) {
        let bytes = entry_bytes(&key, &kv);
        let generation = self.budget_bytes / 2;
        if bytes > generation {
            // Larger than a generation: never cached, and no stale copy may remain.
            self.young.remove(&key);
            self.old.remove(&key);
            return;
        }
        if let Some(slot) = self.young.get_mut(&key) {
            // Replaced in place: only the size difference counts.
            self.young_bytes = self.young_bytes + bytes - entry_bytes(&key, slot);
            *slot = kv;
            return;
        }
        if self.young_bytes + bytes > generation {
            self.old = std::mem::take(&mut self.young);
            self.young_bytes = 0;
        }
        self.old.remove(&key);
        self.young.insert(key, kv);
        self.young_bytes += bytes;
    }

    /// Forgets everything (the store was replaced by a snapshot).
    pub(crate) fn clear(&mut self) {
        self.young.clear();
        self.old.clear();
        self.young_bytes = 0;
    }

    /// Bytes held, as estimated for the budget.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        let old: usize = self.old.iter().map(|(k, kv)| entry_bytes(k, kv)).sum();
        self.young_bytes + old
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value_len: usize, mod_revision: i64) -> Option<KeyValue> {
        Some(KeyValue {
            key: Bytes::copy_from_slice(key.as_bytes()),
            value: Bytes::from(vec![7; value_len]),
            mod_revision,
            ..Default::default()
        })
    }

    fn key(i: usize) -> Bytes {
        Bytes::from(format!("key-{i:06}"))
    }

    #[test]
    fn holds_the_newest_state_of_each_key() {
        let mut cache = LatestCache::with_budget(1 << 20);
        assert_eq!(cache.get(b"a"), None);
        cache.insert(Bytes::from("a"), kv("a", 3, 2));
        cache.insert(Bytes::from("a"), kv("a", 3, 5));
        assert_eq!(cache.get(b"a").unwrap().unwrap().mod_revision, 5);
        cache.insert(Bytes::from("a"), None);
        assert_eq!(cache.get(b"a"), Some(None));
        cache.clear();
        assert_eq!(cache.get(b"a"), None);
    }

    #[test]
    fn stays_within_its_budget_and_keeps_recent_keys() {
        let budget = 100 * (10 + 100 + ENTRY_OVERHEAD_BYTES);
        let mut cache = LatestCache::with_budget(budget);
        for i in 0..1000 {
            cache.insert(key(i), kv("k", 100, i as i64));
            assert!(cache.bytes() <= budget, "{} bytes after {i}", cache.bytes());
        }
        assert!(cache.get(&key(999)).is_some());
        assert!(cache.get(&key(0)).is_none());
        // Rewriting a key replaces its size instead of adding to it.
        let before = cache.bytes();
        cache.insert(key(999), kv("k", 100, 2000));
        assert_eq!(cache.bytes(), before);
    }

    #[test]
    fn a_key_used_again_survives_the_next_generation() {
        let per_entry = 10 + 100 + ENTRY_OVERHEAD_BYTES;
        let mut cache = LatestCache::with_budget(20 * per_entry);
        cache.insert(key(0), kv("k", 100, 1));
        for i in 1..10 {
            cache.insert(key(i), kv("k", 100, 1));
        }
        // key 0 is old now; reading it moves it up, so it outlives the next turn.
        for i in 10..20 {
            cache.insert(key(i), kv("k", 100, 1));
        }
        assert!(cache.get(&key(0)).is_some());
        for i in 20..29 {
            cache.insert(key(i), kv("k", 100, 1));
        }
        assert!(cache.get(&key(0)).is_some());
        assert!(cache.get(&key(1)).is_none());
    }

    #[test]
    fn an_entry_larger_than_a_generation_is_never_cached() {
        let mut cache = LatestCache::with_budget(1000);
        cache.insert(Bytes::from("a"), kv("a", 10, 1));
        cache.insert(Bytes::from("a"), kv("a", 900, 2));
        assert_eq!(
            cache.get(b"a"),
            None,
            "the stale small version must not remain"
        );
    }
}
