//! Compaction: removing history below a revision, and hashing what must remain.
//!
//! Applying a Compact only moves the logical compaction point (reads below it fail at
//! once); the physical removal runs afterwards in the background, in bounded batches, and
//! resumes after a crash from the recorded `compacted` / `compact_finished` pair. The rule
//! for what survives compaction at revision C, per key:
//!
//! - every version above C;
//! - the version at exactly C, even a tombstone: a watch may start at C and must see it;
//! - the newest version below C if it is a put (it is what a read at C returns).
//!
//! Everything else goes, and so does the `rev` history below C. The same rule decides
//! what `hash_kv` covers, so members agree on the hash whatever their physical progress.

use rocksdb::WriteBatch;

use crate::backend::{meta, Backend, Cf};
use crate::error::Result;
use crate::keys::{decode_key_prefix, rev_key, split_rev_key, split_version_key};
use crate::mvcc::read::{KvRead, ReadView};
use crate::record::{encode_u64, Change, ChangeKind, Version};

/// Deletes per WriteBatch during physical compaction: bounds the memory of a batch and
/// lets applies interleave with a long compaction.
pub const COMPACTION_DELETES_PER_BATCH: usize = 10_000;

/// Tracks, while walking one key's versions newest first, whether a version at or below
/// the compaction point has already been kept.
struct Survival {
    compact: i64,
    prefix: Vec<u8>,
    settled: bool,
}

impl Survival {
    fn new(compact: i64) -> Self {
        Survival {
            compact,
            prefix: Vec::new(),
            settled: false,
        }
    }

    /// Decides whether the version `(prefix, revision)` survives compaction.
    fn survives(&mut self, prefix: &[u8], revision: i64, is_tombstone: bool) -> bool {
        if prefix != self.prefix.as_slice() {
            self.prefix.clear();
            self.prefix.extend_from_slice(prefix);
            self.settled = false;
        }
        if revision > self.compact {
            return true;
        }
        if self.settled {
            return false;
        }
        self.settled = true;
        revision == self.compact || !is_tombstone
    }
}

/// Gives back the history entries that physical compaction used to drop with everything
/// below the compaction point, survivors included, in a store written before they were
/// kept (each gets the next free sub revision of its revision); then records that the
/// history is complete, so this runs once.
pub(crate) fn complete_history(backend: &Backend) -> Result<()> {
    if backend.get(Cf::Meta, meta::HISTORY_COMPLETE)?.is_some() {
        return Ok(());
    }
    let finished = backend
        .get_u64(Cf::Meta, meta::COMPACT_FINISHED)?
        .unwrap_or(0) as i64;
    let mut batch = WriteBatch::default();
    let mut restored = 0u64;
    let db = backend.db();
    let mut versions = db.raw_iterator_cf_opt(backend.cf(Cf::Kv), backend.read_options());
    versions.seek_to_first();
    // Sub revisions handed out here, per revision.
    let mut assigned: std::collections::HashMap<i64, i64> = Default::default();
    while let (Some(key), Some(value)) = (versions.key(), versions.value()) {
        let (prefix, revision) = split_version_key(key);
        if revision < finished {
            let user_key = decode_key_prefix(prefix);
            let mut next_sub = 0;
            let mut indexed = false;
            let mut history = db.raw_iterator_cf_opt(backend.cf(Cf::Rev), backend.read_options());
            history.seek(rev_key(revision, 0));
            while let (Some(rev), Some(change)) = (history.key(), history.value()) {
                let (main, sub) = split_rev_key(rev);
                if main != revision {
                    break;
                }
                next_sub = sub + 1;
                if Change::decode(change)?.key[..] == user_key[..] {
                    indexed = true;
                    break;
                }
                history.next();
            }
            history.status()?;
            if !indexed {
                let sub = assigned.entry(revision).or_insert(next_sub);
                let kind = match Version::decode(value, false)? {
                    Version::Tombstone => ChangeKind::Delete,
                    Version::Put { .. } => ChangeKind::Put,
                };
                let change = Change {
                    kind,
                    key: user_key.into(),
                };
                batch.put_cf(
                    backend.cf(Cf::Rev),
                    rev_key(revision, *sub),
                    change.encode(),
                );
                *sub += 1;
                restored += 1;
            }
        }
        versions.next();
    }
    versions.status()?;
    batch.put_cf(backend.cf(Cf::Meta), meta::HISTORY_COMPLETE, []);
    backend.write(batch, true)?;
    if restored > 0 {
        tracing::warn!(
            restored,
            "history entries of versions kept by compaction restored"
        );
    }
    Ok(())
}

/// Deletes written in batches of [`COMPACTION_DELETES_PER_BATCH`].
struct Deletes<'a> {
    backend: &'a Backend,
    batch: WriteBatch,
    count: usize,
}

impl Deletes<'_> {
    fn delete(&mut self, cf: Cf, key: &[u8]) -> Result<()> {
        self.batch.delete_cf(self.backend.cf(cf), key);
        self.count += 1;
        if self.count == COMPACTION_DELETES_PER_BATCH {
            self.backend.write(std::mem::take(&mut self.batch), false)?;
            self.count = 0;
        }
        Ok(())
    }
}

/// Physically removes the history below `compact` and records it as finished.
/// `view` must be a snapshot taken after the compaction was applied.
pub(crate) fn compact_physical(view: &ReadView<'_>, compact: i64) -> Result<()> {
    let backend: &Backend = view.backend();
    let mut deletes = Deletes {
        backend,
        batch: WriteBatch::default(),
        count: 0,
    };
    let mut iter = view.iterator(Cf::Kv, None, None);
    iter.seek_to_first();
    let mut survival = Survival::new(compact);
    while let (Some(key), Some(value)) = (iter.key(), iter.value()) {
        let (prefix, revision) = split_version_key(key);
        let is_tombstone = Version::decode(value, false)? == Version::Tombstone;
        if !survival.survives(prefix, revision, is_tombstone) {
            deletes.delete(Cf::Kv, key)?;
        }
        iter.next();
    }
    iter.status()?;
    drop(iter);
    // The history keeps an entry for every stored version (a snapshot in etcd's format
    // lists versions by it): below the compaction point, only the survivors' stay.
    let mut history = view.iterator(Cf::Rev, None, Some(rev_key(compact, 0).to_vec()));
    history.seek_to_first();
    while let (Some(rev), Some(change)) = (history.key(), history.value()) {
        let (main, _) = split_rev_key(rev);
        let change = Change::decode(change)?;
        let survivor = view.get(&change.key, compact)?;
        if survivor.is_none_or(|kv| kv.mod_revision != main) {
            deletes.delete(Cf::Rev, rev)?;
        }
        history.next();
    }
    history.status()?;
    let mut batch = deletes.batch;
    batch.put_cf(
        backend.cf(Cf::Meta),
        meta::COMPACT_FINISHED,
        encode_u64(compact as u64),
    );
    backend.write(batch, false)?;
    Ok(())
}

/// CRC32 over every version that survives compaction and is at or below `revision`.
pub(crate) fn hash_kv(view: &ReadView<'_>, revision: i64) -> Result<u32> {
    let mut hasher = crc32fast::Hasher::new();
    let mut iter = view.iterator(Cf::Kv, None, None);
    iter.seek_to_first();
    let mut survival = Survival::new(view.compacted());
    while let (Some(key), Some(value)) = (iter.key(), iter.value()) {
        let (prefix, version_revision) = split_version_key(key);
        let is_tombstone = Version::decode(value, false)? == Version::Tombstone;
        if survival.survives(prefix, version_revision, is_tombstone) && version_revision <= revision
        {
            hasher.update(key);
            hasher.update(value);
        }
        iter.next();
    }
    iter.status()?;
    Ok(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survival_rule() {
        // Versions of one key, newest first: 9, 5 (put), 3 (put), compact at 5.
        let mut s = Survival::new(5);
        assert!(s.survives(b"k", 9, false));
        assert!(
            s.survives(b"k", 5, true),
            "the version at C stays, even a tombstone"
        );
        assert!(!s.survives(b"k", 3, false));
        // Another key: newest below C is a put: kept; older ones go.
        assert!(s.survives(b"l", 4, false));
        assert!(!s.survives(b"l", 2, false));
        // A tombstone below C goes, and so does everything under it.
        assert!(!s.survives(b"m", 4, true));
        assert!(!s.survives(b"m", 2, false));
    }
}
