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
//! thread fills it on a miss and updates it when it writes a batch, before it publishes
//! the batch's revision. So a reader that finds a key's newest version here at or below
//! the revision it reads at has that key's answer without a RocksDB snapshot or iterator
//! ([`CachedPoint`]). A reader that missed may fill in what it read, but only while no
//! batch has been written since the revision it read at: otherwise what it found may
//! already be replaced.

use std::ops::ControlFlow;

use ballast_proto::mvccpb::KeyValue;
use bytes::Bytes;
use lru::LruCache;

use crate::error::Result;
use crate::mvcc::read::KvRead;
use crate::range::KeyRange;

/// Bytes the cache holds at most, as estimated. 64 MiB keeps about 100,000 keys of
/// 256-byte values: a busy control plane's working set, and a small part of etcd's RSS.
pub const LATEST_CACHE_BYTES_MAX: usize = 64 << 20;

/// Estimated bytes of one entry besides its key and value: the list node (a `Bytes`, an
/// `Option<KeyValue>` and two links, about 170 bytes), the hash table's slot times its
/// spare capacity, the allocators' headers and the shared `Bytes` headers. 160, the
/// first estimate, let the cache grow to about 150 MiB at 1,000,000 keys.
const ENTRY_OVERHEAD_BYTES: usize = 320;

/// Least recently used keys leave first once the budget is reached; reads and writes
/// both count as use.
#[derive(Debug)]
pub(crate) struct LatestCache {
    entries: LruCache<Bytes, Option<KeyValue>>,
    bytes: usize,
    budget_bytes: usize,
    /// The store revision after the last written batch: the state the entries describe.
    written: i64,
}

fn entry_bytes(key: &[u8], kv: &Option<KeyValue>) -> usize {
    key.len() + kv.as_ref().map_or(0, |kv| kv.value.len()) + ENTRY_OVERHEAD_BYTES
}

impl LatestCache {
    pub(crate) fn new(written: i64) -> Self {
        LatestCache::with_budget(LATEST_CACHE_BYTES_MAX, written)
    }

    pub(crate) fn with_budget(budget_bytes: usize, written: i64) -> Self {
        LatestCache {
            entries: LruCache::unbounded(),
            bytes: 0,
            budget_bytes,
            written,
        }
    }

    /// The newest version of `key` if cached: `Some(None)` means the key does not exist.
    pub(crate) fn get(&mut self, key: &[u8]) -> Option<Option<KeyValue>> {
        self.entries.get(key).cloned()
    }

    /// Records the newest version of `key` (None: it does not exist), as the apply
    /// thread knows it.
    pub(crate) fn insert(&mut self, key: Bytes, kv: Option<KeyValue>) {
        let bytes = entry_bytes(&key, &kv);
        if bytes > self.budget_bytes {
            // Larger than the whole cache: never cached, and no stale copy may remain.
            if let Some(old) = self.entries.pop(&key) {
                self.bytes -= entry_bytes(&key, &old);
            }
            return;
        }
        let old = self.entries.put(key.clone(), kv);
        if let Some(old) = old {
            self.bytes -= entry_bytes(&key, &old);
        }
        self.bytes += bytes;
        while self.bytes > self.budget_bytes {
            let (key, kv) = self
                .entries
                .pop_lru()
                .expect("bytes are counted for entries");
            self.bytes -= entry_bytes(&key, &kv);
        }
    }

    /// A written batch has moved the store to `revision`; its keys are inserted beside.
    pub(crate) fn written(&mut self, revision: i64) {
        self.written = revision;
    }

    /// What a reader found for `key` reading at revision `read_at`, kept only if nothing
    /// was written since (so it is still the newest) and the key is not cached already.
    pub(crate) fn fill(&mut self, key: Bytes, kv: Option<KeyValue>, read_at: i64) {
        if read_at == self.written && !self.entries.contains(&key[..]) {
            self.insert(key, kv);
        }
    }

    /// Forgets everything: the store was replaced by a snapshot at `revision`.
    pub(crate) fn clear(&mut self, revision: i64) {
        self.entries.clear();
        self.bytes = 0;
        self.written = revision;
    }

    /// Bytes held, as estimated for the budget.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.entries.iter().map(|(k, kv)| entry_bytes(k, kv)).sum()
    }
}

/// A read of one key served from the cache: the view of a store at `revision` in which
/// `kv`, that key's newest version, is the key's only version there is to see. Only
/// built for a point read at a revision no older than `kv` (see `Store::range`).
pub(crate) struct CachedPoint {
    pub(crate) revision: i64,
    pub(crate) compacted: i64,
    pub(crate) kv: KeyValue,
}

impl KvRead for CachedPoint {
    fn revision(&self) -> i64 {
        self.revision
    }

    fn compacted(&self) -> i64 {
        self.compacted
    }

    fn scan(
        &self,
        range: &KeyRange,
        revision: i64,
        with_values: bool,
        visit: &mut dyn FnMut(KeyValue) -> ControlFlow<()>,
    ) -> Result<()> {
        // Anything else asked of it is a bug in the caller; answer nothing rather than
        // something wrong.
        debug_assert!(range.is_single() && self.kv.mod_revision <= revision);
        if range.contains(&self.kv.key) && self.kv.mod_revision <= revision {
            let mut kv = self.kv.clone();
            if !with_values {
                kv.value = Bytes::new();
            }
            let _ = visit(kv);
        }
        Ok(())
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
        let mut cache = LatestCache::with_budget(1 << 20, 1);
        assert_eq!(cache.get(b"a"), None);
        cache.insert(Bytes::from("a"), kv("a", 3, 2));
        cache.insert(Bytes::from("a"), kv("a", 3, 5));
        assert_eq!(cache.get(b"a").unwrap().unwrap().mod_revision, 5);
        cache.insert(Bytes::from("a"), None);
        assert_eq!(cache.get(b"a"), Some(None));
        cache.clear(9);
        assert_eq!(cache.get(b"a"), None);
    }

    #[test]
    fn stays_within_its_budget_and_keeps_recent_keys() {
        let budget = 100 * (10 + 100 + ENTRY_OVERHEAD_BYTES);
        let mut cache = LatestCache::with_budget(budget, 1);
        for i in 0..1000 {
            cache.insert(key(i), kv("k", 100, i as i64));
            assert!(cache.bytes() <= budget, "{} bytes after {i}", cache.bytes());
            assert_eq!(cache.bytes, cache.bytes());
        }
        assert_eq!(cache.entries.len(), 100, "the whole budget is used");
        assert!(cache.get(&key(999)).is_some());
        assert!(cache.get(&key(900)).is_some());
        assert!(cache.get(&key(899)).is_none());
        // Rewriting a key replaces its size instead of adding to it.
        let before = cache.bytes();
        cache.insert(key(999), kv("k", 100, 2000));
        assert_eq!(cache.bytes(), before);
        assert_eq!(cache.bytes, before);
    }

    #[test]
    fn a_key_read_again_outlives_keys_not_used_since() {
        let per_entry = 10 + 100 + ENTRY_OVERHEAD_BYTES;
        let mut cache = LatestCache::with_budget(10 * per_entry, 1);
        for i in 0..10 {
            cache.insert(key(i), kv("k", 100, 1));
        }
        assert!(cache.get(&key(0)).is_some());
        cache.insert(key(10), kv("k", 100, 1));
        assert!(cache.get(&key(0)).is_some(), "used last, so kept");
        assert!(cache.get(&key(1)).is_none(), "used least recently, so gone");
    }

    #[test]
    fn an_entry_larger_than_the_budget_is_never_cached() {
        let mut cache = LatestCache::with_budget(1000, 1);
        cache.insert(Bytes::from("a"), kv("a", 10, 1));
        cache.insert(Bytes::from("a"), kv("a", 900, 2));
        assert_eq!(
            cache.get(b"a"),
            None,
            "the stale small version must not remain"
        );
        assert_eq!(cache.bytes, 0);
    }

    #[test]
    fn a_reader_fills_in_only_what_nothing_written_since_can_have_replaced() {
        let mut cache = LatestCache::with_budget(1 << 20, 4);
        cache.fill(Bytes::from("a"), kv("a", 3, 3), 3);
        assert_eq!(cache.get(b"a"), None, "read before the last batch");
        cache.fill(Bytes::from("a"), kv("a", 3, 3), 4);
        assert_eq!(cache.get(b"a").unwrap().unwrap().mod_revision, 3);
        cache.insert(Bytes::from("b"), kv("b", 3, 4));
        cache.fill(Bytes::from("b"), kv("b", 3, 2), 4);
        assert_eq!(
            cache.get(b"b").unwrap().unwrap().mod_revision,
            4,
            "a cached entry is never replaced by a reader"
        );
        cache.written(5);
        cache.fill(Bytes::from("c"), None, 4);
        assert_eq!(cache.get(b"c"), None);
        cache.clear(7);
        cache.fill(Bytes::from("c"), None, 5);
        assert_eq!(cache.get(b"c"), None, "read before the snapshot install");
    }
}
