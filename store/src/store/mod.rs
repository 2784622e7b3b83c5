//! The store: the state machine a raft node applies committed entries to, and the read
//! side the gRPC services query.
//!
//! Only the raft driver applies (through [`ApplyBatch`]), one batch at a time; any
//! number read.
//! Readers take a [`ReadView`] under the revision lock, so a compaction can never remove
//! what a view promises. Each concern has its own file, as etcd's `mvcc/` does:
//!
//! - `apply`: the one dispatch of every raft entry kind and the apply batch's write;
//! - `read`: Range, read-only Txn, hash and lease lookups served from this member;
//! - `auth`: applying auth changes and the current auth state;
//! - `members`: the member list and cluster id kept beside the data;
//! - `compactor`: the thread that removes history below the compaction point;
//! - `snapshots`: writing and installing whole-state snapshots;
//! - `alarms`: the NOSPACE and CORRUPT alarms and the writes they refuse.

mod alarms;
mod apply;
mod auth;
mod compactor;
mod members;
mod read;
mod snapshots;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use ballast_proto::etcdserverpb::{AlarmMember, ResponseHeader};
use rocksdb::WriteBatch;

use crate::auth::Auth;
use crate::backend::{meta, Backend, Cf};
use crate::error::{Error, Result};
use crate::mvcc::latest::LatestCache;
use crate::mvcc::query::execute_range;
use crate::mvcc::read::ReadView;
use crate::record::{decode_u64, encode_u64};
use crate::snapshot;
use crate::watch::{History, Syncer, WatchHub};

use apply::Pending;
pub use apply::{Applied, ApplyBatch, Effect, APPLY_BATCH_BYTES_MAX};
use compactor::Compactor;

/// The revision of an empty store; the first write gets the next one (as in etcd).
pub const INITIAL_REVISION: i64 = 1;

/// The store revision and the compaction point, read together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revisions {
    /// Revision of the last write.
    pub current: i64,
    /// Reads below this fail; 0 before the first compaction.
    pub compacted: i64,
}

/// The state machine; see the module docs.
pub struct Store {
    backend: Backend,
    /// Where snapshot files are written and received.
    snap_dir: PathBuf,
    revisions: RwLock<Revisions>,
    applied: AtomicU64,
    applied_term: AtomicU64,
    /// How many keys exist, as of the last written apply batch.
    keys: AtomicI64,
    hub: Arc<WatchHub>,
    /// Staged and not yet written; touched by the apply thread only, a Mutex so the
    /// store stays `Sync`.
    pending: Mutex<Pending>,
    /// Newest versions of recent keys, as written; filled by the apply thread.
    latest: Mutex<LatestCache>,
    compactor: Compactor,
    /// Users, roles and permissions as of the last applied auth change; swapped whole.
    auth: RwLock<Arc<Auth>>,
    /// The active alarms, as of the last applied alarm change.
    alarms: RwLock<Vec<AlarmMember>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .field("revisions", &self.revisions())
            .field("applied", &self.applied_index())
            .finish()
    }
}

impl Store {
    /// Opens the store under `dir`, recovering its state, and starts its background
    /// threads (watch syncer, compactor). Call [`Store::close`] before dropping it.
    pub fn open(dir: &Path) -> Result<Arc<Store>> {
        let backend = Backend::open(dir)?;
        let snap_dir = dir.parent().unwrap_or(dir).join("snap");
        snapshot::remove_partial(&snap_dir)?;
        // A snapshot install that a crash interrupted is finished before anything else.
        if let Some(name) = backend.get(Cf::Meta, snapshot::INSTALLING)? {
            let name = String::from_utf8(name)
                .map_err(|_| Error::Corrupt("bad snapshot marker".into()))?;
            tracing::warn!(snapshot = %name, "finishing an interrupted snapshot install");
            snapshot::install(&backend, &snap_dir.join(name))?;
        }
        crate::mvcc::compact::complete_history(&backend)?;
        let Revisions { current, compacted } = read_revisions(&backend)?;
        let finished = read_compact_finished(&backend)?;
        let (applied, applied_term) = read_applied(&backend)?;
        let auth = Auth::load(&backend)?;
        let alarms = alarms::load(&backend)?;
        let keys = read_keys_total(&backend, current, compacted)?;
        let store = Arc::new(Store {
            backend,
            snap_dir,
            revisions: RwLock::new(Revisions { current, compacted }),
            applied: AtomicU64::new(applied),
            applied_term: AtomicU64::new(applied_term),
            keys: AtomicI64::new(keys),
            hub: Arc::new(WatchHub::new(current)),
            pending: Mutex::new(Pending::empty(current)),
            latest: Mutex::new(LatestCache::new(current)),
            compactor: Compactor::new(compacted, finished),
            auth: RwLock::new(Arc::new(auth)),
            alarms: RwLock::new(alarms),
            threads: Mutex::new(Vec::new()),
        });
        tracing::info!(revision = current, compacted, applied, "store opened");
        let syncer = {
            let store = store.clone();
            std::thread::Builder::new()
                .name("watch-syncer".into())
                .spawn(move || {
                    crate::backend::perf_counters_off();
                    Syncer::new(&store.hub, &*store).run()
                })
                .expect("spawn watch syncer")
        };
        let compactor = {
            let store = store.clone();
            std::thread::Builder::new()
                .name("compactor".into())
                .spawn(move || {
                    crate::backend::perf_counters_off();
                    store.run_compactor()
                })
                .expect("spawn compactor")
        };
        store.lock_threads().extend([syncer, compactor]);
        Ok(store)
    }

    /// Stops the background threads. The DB closes when the last reference is dropped.
    pub fn close(&self) {
        self.hub.stop();
        self.compactor.stop();
        let threads = std::mem::take(&mut *self.lock_threads());
        for thread in threads {
            if thread.join().is_err() {
                tracing::error!("a store thread panicked");
            }
        }
        // Not needed for safety (the WAL has everything) but it makes the next start fast.
        if let Err(err) = self.backend.flush() {
            tracing::warn!(%err, "flushing memtables at close failed");
        }
    }

    fn lock_threads(&self) -> std::sync::MutexGuard<'_, Vec<JoinHandle<()>>> {
        self.threads.lock().expect("store threads lock poisoned")
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().expect("apply batch lock poisoned")
    }

    fn lock_latest(&self) -> std::sync::MutexGuard<'_, LatestCache> {
        self.latest.lock().expect("latest cache lock poisoned")
    }

    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    pub fn watch_hub(&self) -> &WatchHub {
        &self.hub
    }

    /// Lets a new watcher receive events, catching it up from history first if it starts
    /// in the past.
    pub fn watch_activate(&self, watcher: crate::watch::WatcherId) {
        Syncer::new(&self.hub, self).activate(watcher);
    }

    pub fn revisions(&self) -> Revisions {
        *self.revisions.read().expect("revision lock poisoned")
    }

    /// Index of the last raft entry applied.
    pub fn applied_index(&self) -> u64 {
        self.applied.load(Ordering::Acquire)
    }

    /// How many keys exist (etcd's `etcd_debugging_mvcc_keys_total`).
    pub fn keys_total(&self) -> i64 {
        self.keys.load(Ordering::Acquire)
    }

    /// Term of the last raft entry applied.
    pub fn applied_term(&self) -> u64 {
        self.applied_term.load(Ordering::Acquire)
    }

    /// Stages the applied index and term in `batch`; [`Store::mark_applied`] publishes
    /// them once the batch is written.
    fn stamp_applied(&self, batch: &mut WriteBatch, index: u64, term: u64) {
        let mut value = encode_u64(index).to_vec();
        value.extend_from_slice(&encode_u64(term));
        batch.put_cf(self.backend.cf(Cf::Meta), meta::APPLIED, value);
    }

    fn mark_applied(&self, index: u64, term: u64) {
        self.applied_term.store(term, Ordering::Release);
        self.applied.store(index, Ordering::Release);
    }

    /// A consistent view of the store as of now.
    pub fn read_view(&self) -> ReadView<'_> {
        let revisions = self.revisions.read().expect("revision lock poisoned");
        ReadView::snapshot(&self.backend, revisions.current, revisions.compacted)
    }
}

/// What the watch syncer reads: history, through the store's views.
impl History for Store {
    fn view(&self) -> ReadView<'_> {
        self.read_view()
    }

    fn compacted(&self) -> i64 {
        self.revisions().compacted
    }
}

/// The store revision and compaction point recorded in the DB.
fn read_revisions(backend: &Backend) -> Result<Revisions> {
    let current = backend
        .get_u64(Cf::Meta, meta::REVISION)?
        .map_or(INITIAL_REVISION, |r| r as i64);
    let compacted = backend.get_u64(Cf::Meta, meta::COMPACTED)?.unwrap_or(0) as i64;
    assert!(
        compacted <= current,
        "compacted {compacted} above revision {current}"
    );
    Ok(Revisions { current, compacted })
}

/// How many keys exist, as recorded in the DB; counted (and recorded) once for a store
/// written before the count was kept.
fn read_keys_total(backend: &Backend, current: i64, compacted: i64) -> Result<i64> {
    if let Some(keys) = backend.get_u64(Cf::Meta, meta::KEYS)? {
        return Ok(keys as i64);
    }
    let every_key = ballast_proto::etcdserverpb::RangeRequest {
        key: bytes::Bytes::from_static(b"\0"),
        range_end: bytes::Bytes::from_static(b"\0"),
        count_only: true,
        ..Default::default()
    };
    let view = ReadView::snapshot(backend, current, compacted);
    let keys = execute_range(&view, &every_key)?.count;
    let mut batch = WriteBatch::default();
    batch.put_cf(backend.cf(Cf::Meta), meta::KEYS, encode_u64(keys as u64));
    backend.write(batch, false)?;
    Ok(keys)
}

/// How far history has been physically removed, as recorded in the DB.
fn read_compact_finished(backend: &Backend) -> Result<i64> {
    Ok(backend
        .get_u64(Cf::Meta, meta::COMPACT_FINISHED)?
        .unwrap_or(0) as i64)
}

/// The applied index and term recorded in the DB.
fn read_applied(backend: &Backend) -> Result<(u64, u64)> {
    match backend.get(Cf::Meta, meta::APPLIED)? {
        Some(bytes) if bytes.len() == 16 => {
            Ok((decode_u64(&bytes[..8])?, decode_u64(&bytes[8..])?))
        }
        Some(bytes) => Err(Error::Corrupt(format!("bad applied record {bytes:?}"))),
        None => Ok((0, 0)),
    }
}

fn header(revision: i64) -> ResponseHeader {
    ResponseHeader {
        revision,
        ..Default::default()
    }
}

impl Error {
    /// True for failures of the store itself, as opposed to refusals of a request.
    pub fn is_fatal(&self) -> bool {
        matches!(self, Error::Corrupt(_) | Error::RocksDb(_) | Error::Io(_))
    }
}
