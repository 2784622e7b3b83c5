//! The raft log and raft state in RocksDB: raft-rs's `Storage` for a node.
//!
//! Entries live in `raft_log` keyed by index (u64 big-endian); the hard state, conf state
//! and truncation point in `raft_state`. New entries and the hard state are written in one
//! WriteBatch, synced when raft asks (`Ready::must_sync`). The bounds and states raft asks
//! for on every step are cached in memory, updated only after the write that makes them
//! true has succeeded. So are the newest entries themselves (`Tail`): raft reads each
//! entry back to apply it, and the leader to send it, moments after it was written.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, StorageError};
use rocksdb::WriteBatch;

use crate::backend::Cf;
use crate::error::{Error, Result};
use crate::record::{decode_u64, encode_u64};
use crate::snapshot::SnapshotMeta;
use crate::store::Store;

use crate::backend::raft_state::{CONF_STATE, HARD_STATE, TRUNCATED};

/// Bytes of the newest entries kept in memory: a few Readies' worth at full load, so
/// applying and replicating them never reads RocksDB.
pub const LOG_TAIL_BYTES_MAX: usize = 8 << 20;

/// The newest entries, contiguous and ending at the last index.
#[derive(Debug, Default)]
struct Tail {
    entries: VecDeque<Entry>,
    bytes: usize,
}

impl Tail {
    fn first_index(&self) -> Option<u64> {
        self.entries.front().map(|e| e.index)
    }

    /// Appends entries just written; drops any cached tail they replaced.
    fn append(&mut self, new: &[Entry]) {
        let Some(first) = new.first() else { return };
        match self.first_index() {
            Some(cached) if first.index >= cached => {
                let keep = (first.index - cached) as usize;
                while self.entries.len() > keep {
                    let dropped = self.entries.pop_back().expect("non-empty");
                    self.bytes -= dropped.data.len();
                }
                if keep > 0 && self.entries.back().map(|e| e.index + 1) != Some(first.index) {
                    self.clear();
                }
            }
            _ => self.clear(),
        }
        for entry in new {
            self.bytes += entry.data.len();
            self.entries.push_back(entry.clone());
        }
        while self.bytes > LOG_TAIL_BYTES_MAX {
            let dropped = self.entries.pop_front().expect("non-empty");
            self.bytes -= dropped.data.len();
        }
    }

    /// Drops entries up to and including `index`.
    fn truncate(&mut self, index: u64) {
        while self.first_index().is_some_and(|first| first <= index) {
            let dropped = self.entries.pop_front().expect("non-empty");
            self.bytes -= dropped.data.len();
        }
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    fn get(&self, index: u64) -> Option<&Entry> {
        let first = self.first_index()?;
        self.entries.get(index.checked_sub(first)? as usize)
    }
}

#[derive(Debug, Default, Clone)]
struct Core {
    hard_state: HardState,
    conf_state: ConfState,
    truncated_index: u64,
    truncated_term: u64,
    last_index: u64,
    last_term: u64,
}

/// Where the snapshot for lagging followers stands. Generating one reads the whole
/// store, so it happens on its own thread while raft is told to ask again later.
#[derive(Debug, Default)]
enum SnapState {
    #[default]
    Idle,
    Generating,
    Ready(SnapshotMeta, PathBuf),
}

/// raft-rs storage over the node's RocksDB.
#[derive(Debug, Clone)]
pub struct LogStore {
    store: Arc<Store>,
    core: Arc<RwLock<Core>>,
    tail: Arc<Mutex<Tail>>,
    snap: Arc<Mutex<SnapState>>,
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

impl LogStore {
    /// Loads the raft state of the store.
    pub fn open(store: Arc<Store>) -> Result<LogStore> {
        let backend = store.backend();
        let mut hard_state = match backend.get(Cf::RaftState, HARD_STATE)? {
            Some(bytes) => HardState::parse_from_bytes(&bytes)?,
            None => HardState::default(),
        };
        let conf_state = match backend.get(Cf::RaftState, CONF_STATE)? {
            Some(bytes) => ConfState::parse_from_bytes(&bytes)?,
            None => ConfState::default(),
        };
        let (truncated_index, truncated_term) = match backend.get(Cf::RaftState, TRUNCATED)? {
            Some(bytes) if bytes.len() == 16 => {
                (decode_u64(&bytes[..8])?, decode_u64(&bytes[8..])?)
            }
            Some(bytes) => return Err(Error::Corrupt(format!("bad truncation record {bytes:?}"))),
            None => (0, 0),
        };
        let mut iter = backend.db().raw_iterator_cf(backend.cf(Cf::RaftLog));
        iter.seek_to_last();
        let (last_index, last_term) = match iter.value() {
            Some(bytes) => {
                let entry = Entry::parse_from_bytes(bytes)?;
                (entry.index, entry.term)
            }
            None => (truncated_index, truncated_term),
        };
        iter.status()?;
        drop(iter);
        if hard_state.commit < truncated_index {
            // Entries up to the truncation are committed; stores written before the
            // install raised the commit with it may hold an older one.
            tracing::warn!(
                commit = hard_state.commit,
                truncated_index,
                "raising the commit index to the log's start"
            );
            hard_state.commit = truncated_index;
        }
        let core = Core {
            hard_state,
            conf_state,
            truncated_index,
            truncated_term,
            last_index,
            last_term,
        };
        Ok(LogStore {
            store,
            core: Arc::new(RwLock::new(core)),
            tail: Arc::new(Mutex::new(Tail::default())),
            snap: Arc::new(Mutex::new(SnapState::Idle)),
        })
    }

    fn read(&self) -> RwLockReadGuard<'_, Core> {
        self.core.read().expect("raft log lock poisoned")
    }

    fn write(&self) -> RwLockWriteGuard<'_, Core> {
        self.core.write().expect("raft log lock poisoned")
    }

    fn tail(&self) -> std::sync::MutexGuard<'_, Tail> {
        self.tail.lock().expect("raft log tail lock poisoned")
    }

    /// True once the node has a membership: it was bootstrapped or joined.
    pub fn is_initialized(&self) -> bool {
        let core = self.read();
        !core.conf_state.voters.is_empty() || !core.conf_state.learners.is_empty()
    }

    /// Seeds the founding membership (every founding member seeds the same voters).
    pub fn bootstrap(&self, voters: Vec<u64>) -> Result<()> {
        assert!(
            !self.is_initialized(),
            "bootstrap of an initialized raft log"
        );
        let conf_state = ConfState {
            voters,
            ..Default::default()
        };
        self.set_conf_state(&conf_state)
    }

    pub fn hard_state(&self) -> HardState {
        self.read().hard_state.clone()
    }

    pub fn conf_state(&self) -> ConfState {
        self.read().conf_state.clone()
    }

    pub fn last_index(&self) -> u64 {
        self.read().last_index
    }

    pub fn first_index(&self) -> u64 {
        self.read().truncated_index + 1
    }

    /// Persists new entries (replacing any conflicting tail) and the hard state in one
    /// batch; `sync` makes them durable before returning.
    pub fn persist(
        &self,
        entries: &[Entry],
        hard_state: Option<&HardState>,
        sync: bool,
    ) -> Result<()> {
        if entries.is_empty() && hard_state.is_none() {
            // Most Readies of heartbeats and reads carry neither, and an empty batch
            // still costs a trip through RocksDB's write path.
            return Ok(());
        }
        let backend = self.store.backend();
        let cf = backend.cf(Cf::RaftLog);
        let mut batch = WriteBatch::default();
        let old_last = self.read().last_index;
        if let (Some(first), Some(last)) = (entries.first(), entries.last()) {
            assert!(
                first.index <= old_last + 1,
                "gap in the raft log: appending {} after {old_last}",
                first.index
            );
            for entry in entries {
                batch.put_cf(cf, index_key(entry.index), entry.write_to_bytes()?);
            }
            if last.index < old_last {
                // raft replaced a conflicting tail: entries past the new last must go.
                batch.delete_range_cf(cf, index_key(last.index + 1), index_key(old_last + 1));
            }
        }
        if let Some(hs) = hard_state {
            batch.put_cf(backend.cf(Cf::RaftState), HARD_STATE, hs.write_to_bytes()?);
        }
        backend.write(batch, sync)?;
        self.tail().append(entries);
        let mut core = self.write();
        if let Some(last) = entries.last() {
            core.last_index = last.index;
            core.last_term = last.term;
        }
        if let Some(hs) = hard_state {
            core.hard_state = hs.clone();
        }
        Ok(())
    }

    /// Records a new commit index (raft's LightReady); no sync needed, see the design.
    pub fn set_commit(&self, commit: u64) -> Result<()> {
        let mut hs = self.hard_state();
        hs.commit = commit;
        self.persist(&[], Some(&hs), false)
    }

    pub fn set_conf_state(&self, conf_state: &ConfState) -> Result<()> {
        let backend = self.store.backend();
        let mut batch = WriteBatch::default();
        batch.put_cf(
            backend.cf(Cf::RaftState),
            CONF_STATE,
            conf_state.write_to_bytes()?,
        );
        backend.write(batch, true)?;
        self.write().conf_state = conf_state.clone();
        Ok(())
    }

    /// Records in memory a conf state the store already persisted (with the entry that
    /// changed it, see `Store::apply_membership`).
    pub fn note_conf_state(&self, conf_state: &ConfState) {
        self.write().conf_state = conf_state.clone();
    }

    /// Reloads everything from the DB, after a snapshot replaced it.
    pub fn reload(&self) -> Result<()> {
        let fresh = LogStore::open(self.store.clone())?;
        let core = fresh.read().clone();
        self.tail().clear();
        *self.write() = core;
        Ok(())
    }

    /// Index of the last entry removed by truncation (or covered by a snapshot).
    pub fn truncated_index(&self) -> u64 {
        self.read().truncated_index
    }

    /// Drops the entries up to and including `index`, which must be applied.
    pub fn truncate(&self, index: u64) -> Result<()> {
        let (first, last) = {
            let core = self.read();
            (core.truncated_index + 1, core.last_index)
        };
        if index < first {
            return Ok(());
        }
        assert!(
            index <= last,
            "truncating to {index} past the last entry {last}"
        );
        assert!(
            index <= self.store.applied_index(),
            "truncating unapplied entries up to {index}"
        );
        let term = self.entry_term(index)?;
        let backend = self.store.backend();
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(
            backend.cf(Cf::RaftLog),
            index_key(first),
            index_key(index + 1),
        );
        let mut record = encode_u64(index).to_vec();
        record.extend_from_slice(&encode_u64(term));
        batch.put_cf(backend.cf(Cf::RaftState), TRUNCATED, record);
        // Synced (once per `--snapshot-count` entries): the files dropped below are gone
        // for good, so the truncation point, and the applies before it in the WAL, must
        // not be lost to a power cut, or a restart would look for the dropped entries.
        backend.write(batch, true)?;
        // The range delete alone frees nothing until a compaction meets it, and files
        // of sequential log keys move down the levels without one: 1,000,000 puts of
        // 10 KB left 10 GB of dead entries on disk. Files wholly below the truncation
        // point hold only deleted entries, so they go now.
        backend.drop_files(Cf::RaftLog, &index_key(0), &index_key(index))?;
        self.tail().truncate(index);
        let mut core = self.write();
        core.truncated_index = index;
        core.truncated_term = term;
        Ok(())
    }

    fn entry(&self, index: u64) -> Result<Entry> {
        if let Some(entry) = self.tail().get(index) {
            return Ok(entry.clone());
        }
        let backend = self.store.backend();
        match backend.get(Cf::RaftLog, &index_key(index))? {
            Some(bytes) => Ok(Entry::parse_from_bytes(&bytes)?),
            None => Err(Error::Corrupt(format!("raft entry {index} missing"))),
        }
    }

    fn entry_term(&self, index: u64) -> Result<u64> {
        Ok(self.entry(index)?.term)
    }
}

impl LogStore {
    /// Entries `low..high` from the cached tail, if it holds them all; `max_size` as
    /// raft-rs means it (at least one entry).
    fn tail_entries(&self, low: u64, high: u64, max_size: Option<u64>) -> Option<Vec<Entry>> {
        let tail = self.tail();
        if low >= high || tail.first_index()? > low || tail.get(high - 1).is_none() {
            return None;
        }
        let mut entries = Vec::with_capacity((high - low) as usize);
        let mut size = 0u64;
        for index in low..high {
            let entry = tail.get(index).expect("checked above");
            size += u64::from(entry.compute_size());
            if !entries.is_empty() && max_size.is_some_and(|max| size > max) {
                break;
            }
            entries.push(entry.clone());
        }
        Some(entries)
    }
}

fn storage_error(err: Error) -> raft::Error {
    raft::Error::Store(StorageError::Other(Box::new(err)))
}

impl raft::Storage for LogStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        let core = self.read();
        Ok(RaftState::new(
            core.hard_state.clone(),
            core.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        let max_size = max_size.into();
        let (first, last) = {
            let core = self.read();
            (core.truncated_index + 1, core.last_index)
        };
        if low < first {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        assert!(
            high <= last + 1,
            "entries up to {high} requested, last is {last}"
        );
        if let Some(entries) = self.tail_entries(low, high, max_size) {
            return Ok(entries);
        }
        let backend = self.store.backend();
        let mut opts = rocksdb::ReadOptions::default();
        opts.set_iterate_upper_bound(index_key(high).to_vec());
        let mut iter = backend
            .db()
            .raw_iterator_cf_opt(backend.cf(Cf::RaftLog), opts);
        iter.seek(index_key(low));
        let mut entries = Vec::with_capacity((high - low) as usize);
        let mut size = 0u64;
        while let Some(bytes) = iter.value() {
            let entry = Entry::parse_from_bytes(bytes).map_err(|e| storage_error(e.into()))?;
            assert_eq!(
                entry.index,
                low + entries.len() as u64,
                "hole in the raft log"
            );
            size += bytes.len() as u64;
            if !entries.is_empty() && max_size.is_some_and(|max| size > max) {
                break;
            }
            entries.push(entry);
            iter.next();
        }
        iter.status().map_err(|e| storage_error(e.into()))?;
        Ok(entries)
    }

    fn term(&self, index: u64) -> raft::Result<u64> {
        let core = self.read();
        if index == core.truncated_index {
            return Ok(core.truncated_term);
        }
        if index < core.truncated_index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if index > core.last_index {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        if index == core.last_index {
            return Ok(core.last_term);
        }
        drop(core);
        self.entry_term(index).map_err(storage_error)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(LogStore::first_index(self))
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(LogStore::last_index(self))
    }

    /// A snapshot at least as new as `request_index` and the truncation point, or
    /// "temporarily unavailable" while one is being written (raft asks again).
    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        let needed = request_index.max(self.read().truncated_index);
        let mut state = self.snap.lock().expect("snapshot state lock poisoned");
        match &*state {
            SnapState::Ready(meta, path) if meta.index >= needed && path.exists() => {
                let mut snapshot = Snapshot::default();
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default();
                snapshot.data = name.as_bytes().to_vec().into();
                let metadata = snapshot.mut_metadata();
                metadata.index = meta.index;
                metadata.term = meta.term;
                metadata.set_conf_state(meta.conf_state.clone());
                return Ok(snapshot);
            }
            SnapState::Generating => {
                return Err(raft::Error::Store(
                    StorageError::SnapshotTemporarilyUnavailable,
                ))
            }
            _ => {}
        }
        *state = SnapState::Generating;
        tracing::info!(for_peer = to, "writing a snapshot for a lagging follower");
        let store = self.store.clone();
        let slot = self.snap.clone();
        let spawned = std::thread::Builder::new()
            .name("snapshot-writer".into())
            .spawn(move || {
                crate::backend::perf_counters_off();
                let next = match store.write_snapshot() {
                    Ok((meta, path)) => {
                        tracing::info!(index = meta.index, ?path, "snapshot written");
                        SnapState::Ready(meta, path)
                    }
                    Err(err) => {
                        tracing::error!(%err, "writing a snapshot failed; will retry");
                        SnapState::Idle
                    }
                };
                *slot.lock().expect("snapshot state lock poisoned") = next;
            });
        if spawned.is_err() {
            *state = SnapState::Idle;
        }
        Err(raft::Error::Store(
            StorageError::SnapshotTemporarilyUnavailable,
        ))
    }
}
