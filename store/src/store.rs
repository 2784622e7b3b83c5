//! The store: the state machine a raft node applies committed entries to, and the read
//! side the gRPC services query.
//!
//! One thread applies (the raft driver); any number read. Readers take a [`ReadView`]
//! under the revision lock, so a compaction can never remove what a view promises.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ballast_proto::ballast::internal::raft_request::Request;
use ballast_proto::ballast::internal::RaftRequest;
use ballast_proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeResponse, LeaseGrantResponse,
    LeaseRevokeResponse, Member, MemberListResponse, PutResponse, RangeRequest, RangeResponse,
    ResponseHeader, TxnRequest, TxnResponse,
};
use ballast_proto::mvccpb::Event;
use prost::Message as _;
use raft::eraftpb::ConfState;
use rocksdb::WriteBatch;

use crate::backend::{meta, raft_state, Backend, Cf};
use crate::error::{Error, Result};
use crate::lease::{self, Lease};
use crate::mvcc::compact::{compact_physical, hash_kv};
use crate::mvcc::latest::{CachedPoint, LatestCache};
use crate::mvcc::query::execute_range;
use crate::mvcc::read::{KvRead, ReadView};
use crate::mvcc::txn::execute_txn;
use crate::mvcc::write::{Unwritten, WriteTxn};
use crate::record::{decode_u64, encode_u64};
use crate::snapshot::{self, SnapshotMeta};
use crate::watch::WatchHub;

/// Snapshot files kept in the snapshot directory.
const SNAPSHOTS_KEPT: usize = 2;

/// Bytes an apply batch stages before it is written, whatever the caller: bounds the
/// memory of a follower that applies thousands of entries in one go.
pub const APPLY_BATCH_BYTES_MAX: usize = 4 << 20;

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

/// The client-visible result of applying one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(TxnResponse),
    Compaction(CompactionResponse),
    LeaseGrant(LeaseGrantResponse),
    LeaseRevoke(LeaseRevokeResponse),
}

/// What applying one entry produced. A refused request (a missing lease, a compacted
/// revision, ...) is a normal outcome: it changed nothing, on every member alike.
#[derive(Debug)]
pub struct Applied {
    pub response: Result<Response>,
}

/// Entries staged by [`Store::stage`] and not yet written: one WriteBatch, so a raft
/// Ready's entries cost one RocksDB write, and the applied index and revision are
/// recorded once for all of them.
#[derive(Default)]
struct Pending {
    batch: WriteBatch,
    unwritten: Unwritten,
    /// The last staged entry's index and term; None when nothing is staged.
    applied: Option<(u64, u64)>,
    /// The store revision after the staged entries.
    revision: i64,
    /// Each staged revision's events, in order, published once written.
    events: Vec<(i64, Vec<Event>)>,
}

impl Pending {
    fn empty(revision: i64) -> Pending {
        Pending {
            unwritten: Unwritten {
                written: revision,
                keys: Default::default(),
            },
            revision,
            ..Default::default()
        }
    }
}

#[derive(Debug, Default)]
struct CompactorState {
    /// Logical compaction point whose physical removal is wanted.
    scheduled: i64,
    /// Physical removal done up to here.
    finished: i64,
    stopped: bool,
}

/// The state machine; see the module docs.
pub struct Store {
    backend: Backend,
    /// Where snapshot files are written and received.
    snap_dir: PathBuf,
    revisions: RwLock<Revisions>,
    applied: AtomicU64,
    applied_term: AtomicU64,
    hub: WatchHub,
    /// Used by the apply thread only; a Mutex so the store stays `Sync`.
    pending: Mutex<Pending>,
    /// Newest versions of recent keys, as written; apply thread only.
    latest: Mutex<LatestCache>,
    compactor: Mutex<CompactorState>,
    compactor_cv: Condvar,
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
        // A snapshot install that a crash interrupted is finished before anything else.
        if let Some(name) = backend.get(Cf::Meta, crate::snapshot::INSTALLING)? {
            let name = String::from_utf8(name)
                .map_err(|_| Error::Corrupt("bad snapshot marker".into()))?;
            tracing::warn!(snapshot = %name, "finishing an interrupted snapshot install");
            snapshot::install(&backend, &snap_dir.join(name))?;
        }
        let current = backend
            .get_u64(Cf::Meta, meta::REVISION)?
            .map_or(INITIAL_REVISION, |r| r as i64);
        let compacted = backend.get_u64(Cf::Meta, meta::COMPACTED)?.unwrap_or(0) as i64;
        let finished = backend
            .get_u64(Cf::Meta, meta::COMPACT_FINISHED)?
            .unwrap_or(0) as i64;
        let (applied, applied_term) = read_applied(&backend)?;
        assert!(
            compacted <= current,
            "compacted {compacted} above revision {current}"
        );
        let store = Arc::new(Store {
            backend,
            snap_dir,
            revisions: RwLock::new(Revisions { current, compacted }),
            applied: AtomicU64::new(applied),
            applied_term: AtomicU64::new(applied_term),
            hub: WatchHub::new(current),
            pending: Mutex::new(Pending::empty(current)),
            latest: Mutex::new(LatestCache::new(current)),
            compactor: Mutex::new(CompactorState {
                scheduled: compacted,
                finished,
                stopped: false,
            }),
            compactor_cv: Condvar::new(),
            threads: Mutex::new(Vec::new()),
        });
        tracing::info!(revision = current, compacted, applied, "store opened");
        let syncer = {
            let store = store.clone();
            std::thread::Builder::new()
                .name("watch-syncer".into())
                .spawn(move || store.run_watch_syncer())
                .expect("spawn watch syncer")
        };
        let compactor = {
            let store = store.clone();
            std::thread::Builder::new()
                .name("compactor".into())
                .spawn(move || store.run_compactor())
                .expect("spawn compactor")
        };
        store.lock_threads().extend([syncer, compactor]);
        Ok(store)
    }

    /// Stops the background threads. The DB closes when the last reference is dropped.
    pub fn close(&self) {
        self.stop_watch_syncer();
        {
            let mut state = self.lock_compactor();
            state.stopped = true;
            self.compactor_cv.notify_all();
        }
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

    fn lock_compactor(&self) -> std::sync::MutexGuard<'_, CompactorState> {
        self.compactor.lock().expect("compactor lock poisoned")
    }

    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    pub fn watch_hub(&self) -> &WatchHub {
        &self.hub
    }

    pub fn revisions(&self) -> Revisions {
        *self.revisions.read().expect("revision lock poisoned")
    }

    /// Index of the last raft entry applied.
    pub fn applied_index(&self) -> u64 {
        self.applied.load(Ordering::Acquire)
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

    /// Serves a Range from this member's state.
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse> {
        if let Some(point) = self.cached_point(req) {
            return execute_range(&point, req);
        }
        let view = self.read_view();
        let response = execute_range(&view, req)?;
        let newest_of_one_key = req.range_end.is_empty()
            && req.revision <= 0
            && !req.keys_only
            && !req.count_only
            && req.min_mod_revision == 0
            && req.max_mod_revision == 0
            && req.min_create_revision == 0
            && req.max_create_revision == 0;
        if newest_of_one_key {
            self.latest
                .lock()
                .expect("latest cache lock poisoned")
                .fill(
                    req.key.clone(),
                    response.kvs.first().cloned(),
                    view.revision(),
                );
        }
        Ok(response)
    }

    /// A read of one key answered by the key cache, when it holds the key's newest
    /// version and that version is no newer than the revision read at. The cache is
    /// updated before a revision is published, so whatever it holds is at least as new
    /// as the revision read here. A key the cache knows as deleted is not answered: when
    /// it was deleted is not known.
    fn cached_point(&self, req: &RangeRequest) -> Option<CachedPoint> {
        if !req.range_end.is_empty() {
            return None;
        }
        let (revision, compacted) = {
            let revisions = self.revisions.read().expect("revision lock poisoned");
            (revisions.current, revisions.compacted)
        };
        let at = if req.revision > 0 {
            req.revision
        } else {
            revision
        };
        let kv = self
            .latest
            .lock()
            .expect("latest cache lock poisoned")
            .get(&req.key)??;
        (kv.mod_revision <= at).then_some(CachedPoint {
            revision,
            compacted,
            kv,
        })
    }

    /// Serves a txn that writes nothing, from this member's state.
    pub fn txn_read_only(&self, req: &TxnRequest) -> Result<TxnResponse> {
        let mut txn = WriteTxn::new(self.read_view());
        let response = execute_txn(&mut txn, req)?;
        assert!(!txn.changed(), "a read-only txn wrote");
        Ok(response)
    }

    /// Applies one committed raft entry carrying `request` and writes it: [`Store::stage`]
    /// then [`Store::commit`]. An `Err` means the store itself failed (disk, corruption);
    /// the node must stop, as continuing would diverge.
    pub fn apply(&self, index: u64, term: u64, request: &RaftRequest) -> Result<Applied> {
        let applied = self.stage(index, term, request)?;
        self.commit()?;
        Ok(applied)
    }

    /// Applies one committed raft entry into the apply batch. Its response is final, but
    /// nothing of it is visible (applied index, revision, watch events, reads) until
    /// [`Store::commit`]; so no client may hear of it before then. Lease grants and
    /// revokes and compactions write at once, with whatever was staged before them.
    pub fn stage(&self, index: u64, term: u64, request: &RaftRequest) -> Result<Applied> {
        let Some(request) = &request.request else {
            return Err(Error::Corrupt(format!(
                "raft entry {index} carries no request"
            )));
        };
        match request {
            Request::Compaction(req) => {
                self.commit()?;
                return self.apply_compaction(index, term, req, self.revisions());
            }
            Request::MemberAttributes(_) | Request::MemberUpdate(_) => {
                return Err(Error::Corrupt(format!(
                    "raft entry {index}: membership changes go through apply_membership"
                )));
            }
            // They read and write the lease tables, which the batch's overlay does not
            // cover: each is written alone.
            Request::LeaseGrant(_) | Request::LeaseRevoke(_) => {
                self.commit()?;
                let applied = self.stage_request(index, term, request)?;
                self.commit()?;
                return Ok(applied);
            }
            _ => {}
        }
        let applied = match self.stage_request(index, term, request) {
            Err(Error::Unwritten) => {
                self.commit()?;
                self.stage_request(index, term, request)?
            }
            other => other?,
        };
        if self.lock_pending().batch.size_in_bytes() > APPLY_BATCH_BYTES_MAX {
            self.commit()?;
        }
        Ok(applied)
    }

    fn stage_request(&self, index: u64, term: u64, request: &Request) -> Result<Applied> {
        let mut pending = self.lock_pending();
        let compacted = self.revisions().compacted;
        let before = pending.revision;
        let view = ReadView::live(&self.backend, before, compacted);
        let mut txn = WriteTxn::after(view, &pending.unwritten, &self.latest);
        let outcome = match request {
            Request::Put(req) => txn.put(req).map(Response::Put),
            Request::DeleteRange(req) => txn.delete_range(req).map(Response::DeleteRange),
            Request::Txn(req) => execute_txn(&mut txn, req).map(Response::Txn),
            Request::LeaseGrant(req) => lease::grant(&mut txn, req).map(|lease| {
                Response::LeaseGrant(LeaseGrantResponse {
                    header: Some(header(before)),
                    id: lease.id,
                    ttl: lease.ttl,
                    error: String::new(),
                })
            }),
            Request::LeaseRevoke(req) => lease::revoke(&mut txn, req).map(|()| {
                Response::LeaseRevoke(LeaseRevokeResponse {
                    header: Some(header(txn.end_revision())),
                })
            }),
            Request::Compaction(_) | Request::MemberAttributes(_) | Request::MemberUpdate(_) => {
                unreachable!("handled by stage")
            }
        };
        let response = match outcome {
            Err(err) if err.is_fatal() || matches!(err, Error::Unwritten) => return Err(err),
            Err(err) => {
                drop(txn);
                pending.applied = Some((index, term));
                return Ok(Applied { response: Err(err) });
            }
            Ok(response) => response,
        };
        let staged = txn.into_staged();
        let pending = &mut *pending;
        for op in staged.ops {
            op.add_to(&self.backend, &mut pending.batch);
        }
        pending.unwritten.keys.extend(staged.overlay);
        if staged.revision != before {
            assert_eq!(staged.revision, before + 1, "one revision per entry");
            pending.revision = staged.revision;
            pending.events.push((staged.revision, staged.events));
        }
        pending.applied = Some((index, term));
        Ok(Applied {
            response: Ok(response),
        })
    }

    /// Records that an entry with no effect on the store (a leader's empty entry, a
    /// refused request) has been applied, in the apply batch.
    pub fn stage_noop(&self, index: u64, term: u64) {
        self.lock_pending().applied = Some((index, term));
    }

    /// Writes the apply batch, then makes it visible: applied index, revision, watch
    /// events, in that order.
    pub fn commit(&self) -> Result<()> {
        let mut pending = self.lock_pending();
        let Some((index, term)) = pending.applied else {
            return Ok(());
        };
        let current = pending.unwritten.written;
        let revision = pending.revision;
        let staged = std::mem::replace(&mut *pending, Pending::empty(revision));
        let mut batch = staged.batch;
        self.stamp_applied(&mut batch, index, term);
        if staged.revision != current {
            batch.put_cf(
                self.backend.cf(Cf::Meta),
                meta::REVISION,
                encode_u64(staged.revision as u64),
            );
        }
        self.backend.write(batch, false)?;
        {
            let mut cache = self.latest.lock().expect("latest cache lock poisoned");
            for (key, kv) in staged.unwritten.keys {
                cache.insert(key, kv);
            }
            cache.written(staged.revision);
        }
        self.mark_applied(index, term);
        if staged.revision != current {
            self.revisions
                .write()
                .expect("revision lock poisoned")
                .current = staged.revision;
            for (revision, events) in &staged.events {
                self.hub.publish(*revision, events);
            }
        }
        Ok(())
    }

    /// Records that an entry with no effect on the store (a leader's empty entry, a
    /// membership change, a refused request) has been applied, and writes it.
    pub fn record_applied(&self, index: u64, term: u64) -> Result<()> {
        self.stage_noop(index, term);
        self.commit()
    }

    /// Applies a membership change: the new member list and, for a raft configuration
    /// change, the new conf state, in one batch with the applied index, so membership,
    /// raft configuration and applied index never disagree after a crash.
    pub fn apply_membership(
        &self,
        index: u64,
        term: u64,
        members: &[Member],
        conf_state: Option<&ConfState>,
        removed: Option<u64>,
    ) -> Result<()> {
        self.commit()?;
        let mut batch = WriteBatch::default();
        self.stamp_applied(&mut batch, index, term);
        if let Some(id) = removed {
            let mut list = self
                .backend
                .get(Cf::Meta, meta::REMOVED)?
                .unwrap_or_default();
            list.extend_from_slice(&encode_u64(id));
            batch.put_cf(self.backend.cf(Cf::Meta), meta::REMOVED, list);
        }
        let list = MemberListResponse {
            members: members.to_vec(),
            ..Default::default()
        };
        batch.put_cf(
            self.backend.cf(Cf::Meta),
            meta::MEMBERS,
            list.encode_to_vec(),
        );
        if let Some(conf_state) = conf_state {
            batch.put_cf(
                self.backend.cf(Cf::RaftState),
                raft_state::CONF_STATE,
                protobuf::Message::write_to_bytes(conf_state)?,
            );
        }
        self.backend.write(batch, false)?;
        self.mark_applied(index, term);
        Ok(())
    }

    /// Ids of members removed from the cluster.
    pub fn removed_members(&self) -> Result<Vec<u64>> {
        let list = self
            .backend
            .get(Cf::Meta, meta::REMOVED)?
            .unwrap_or_default();
        list.chunks(8).map(decode_u64).collect()
    }

    /// The members, as last applied (or bootstrapped).
    pub fn members(&self) -> Result<Vec<Member>> {
        match self.backend.get(Cf::Meta, meta::MEMBERS)? {
            Some(bytes) => Ok(MemberListResponse::decode(&bytes[..])?.members),
            None => Ok(Vec::new()),
        }
    }

    /// The cluster id, once the cluster was founded or joined.
    pub fn cluster_id(&self) -> Result<Option<u64>> {
        self.backend.get_u64(Cf::Meta, meta::CLUSTER_ID)
    }

    /// Records the cluster this node founds or joins, durably, before raft starts.
    pub fn set_cluster(&self, cluster_id: u64, members: &[Member]) -> Result<()> {
        let mut batch = WriteBatch::default();
        let list = MemberListResponse {
            members: members.to_vec(),
            ..Default::default()
        };
        batch.put_cf(
            self.backend.cf(Cf::Meta),
            meta::MEMBERS,
            list.encode_to_vec(),
        );
        batch.put_cf(
            self.backend.cf(Cf::Meta),
            meta::CLUSTER_ID,
            encode_u64(cluster_id),
        );
        self.backend.write(batch, true)
    }

    fn apply_compaction(
        &self,
        index: u64,
        term: u64,
        req: &CompactionRequest,
        before: Revisions,
    ) -> Result<Applied> {
        let verdict = if req.revision > before.current {
            Err(Error::FutureRevision)
        } else if req.revision <= before.compacted {
            Err(Error::Compacted)
        } else {
            Ok(())
        };
        let mut batch = WriteBatch::default();
        self.stamp_applied(&mut batch, index, term);
        if verdict.is_ok() {
            batch.put_cf(
                self.backend.cf(Cf::Meta),
                meta::COMPACTED,
                encode_u64(req.revision as u64),
            );
        }
        self.backend.write(batch, false)?;
        self.mark_applied(index, term);
        if verdict.is_ok() {
            // Taking the write lock waits out readers that are still taking snapshots
            // against the old compaction point; the compactor starts only after.
            self.revisions
                .write()
                .expect("revision lock poisoned")
                .compacted = req.revision;
            let mut state = self.lock_compactor();
            state.scheduled = state.scheduled.max(req.revision);
            self.compactor_cv.notify_all();
        }
        Ok(Applied {
            response: verdict.map(|()| {
                Response::Compaction(CompactionResponse {
                    header: Some(header(before.current)),
                })
            }),
        })
    }

    /// The directory of snapshot files.
    pub fn snap_dir(&self) -> &Path {
        &self.snap_dir
    }

    /// Writes a snapshot of the current state into the snapshot directory, keeping the
    /// newest few; returns what it holds and its path.
    pub fn write_snapshot(&self) -> Result<(SnapshotMeta, PathBuf)> {
        let written = snapshot::write(&self.backend, &self.snap_dir)?;
        snapshot::prune(&self.snap_dir, SNAPSHOTS_KEPT)?;
        Ok(written)
    }

    /// Replaces the whole replicated state with a verified snapshot file. Readers wait
    /// meanwhile; watchers are caught up (or told of compaction) from the new history.
    pub fn install_snapshot(&self, path: &Path) -> Result<SnapshotMeta> {
        self.commit()?;
        let mut pending = self.lock_pending();
        let mut revisions = self.revisions.write().expect("revision lock poisoned");
        let meta = snapshot::install(&self.backend, path)?;
        let current = self
            .backend
            .get_u64(Cf::Meta, meta::REVISION)?
            .map_or(INITIAL_REVISION, |r| r as i64);
        let compacted = self
            .backend
            .get_u64(Cf::Meta, meta::COMPACTED)?
            .unwrap_or(0) as i64;
        let finished = self
            .backend
            .get_u64(Cf::Meta, meta::COMPACT_FINISHED)?
            .unwrap_or(0) as i64;
        *revisions = Revisions { current, compacted };
        *pending = Pending::empty(current);
        self.latest
            .lock()
            .expect("latest cache lock poisoned")
            .clear(current);
        drop(pending);
        self.mark_applied(meta.index, meta.term);
        {
            let mut state = self.lock_compactor();
            state.scheduled = compacted;
            state.finished = finished.min(compacted);
            self.compactor_cv.notify_all();
        }
        drop(revisions);
        self.hub.restart_from(current);
        tracing::info!(index = meta.index, revision = current, "snapshot installed");
        Ok(meta)
    }

    fn run_compactor(&self) {
        loop {
            let target = {
                let mut state = self.lock_compactor();
                while !state.stopped && state.scheduled <= state.finished {
                    state = self
                        .compactor_cv
                        .wait(state)
                        .expect("compactor lock poisoned");
                }
                if state.stopped {
                    return;
                }
                state.scheduled
            };
            let started = Instant::now();
            let view = self.read_view();
            if let Err(err) = compact_physical(&view, target) {
                tracing::error!(%err, target, "physical compaction failed; will retry");
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
            drop(view);
            tracing::info!(revision = target, took = ?started.elapsed(), "compaction finished");
            let mut state = self.lock_compactor();
            state.finished = state.finished.max(target);
            self.compactor_cv.notify_all();
        }
    }

    /// Waits until history below `revision` is physically gone; false on timeout.
    pub fn wait_compacted(&self, revision: i64, timeout: Duration) -> bool {
        let state = self.lock_compactor();
        let (state, _) = self
            .compactor_cv
            .wait_timeout_while(state, timeout, |s| s.finished < revision && !s.stopped)
            .expect("compactor lock poisoned");
        state.finished >= revision
    }

    /// CRC32 of the MVCC history up to `revision` (0 = current), with the compaction
    /// point it was computed at and the revision it covers.
    pub fn hash_kv(&self, revision: i64) -> Result<(u32, i64, i64)> {
        let view = self.read_view();
        let revs = Revisions {
            current: view.revision(),
            compacted: view.compacted(),
        };
        let revision = if revision <= 0 {
            revs.current
        } else {
            revision
        };
        if revision > revs.current {
            return Err(Error::FutureRevision);
        }
        if revision < revs.compacted {
            return Err(Error::Compacted);
        }
        Ok((hash_kv(&view, revision)?, revs.compacted, revision))
    }

    /// A lease, if it exists.
    pub fn lease(&self, id: i64) -> Result<Option<Lease>> {
        lease::get(&self.read_view(), id)
    }

    /// Every lease.
    pub fn leases(&self) -> Result<Vec<Lease>> {
        lease::list(&self.read_view())
    }

    /// The keys attached to a lease.
    pub fn lease_keys(&self, id: i64) -> Result<Vec<bytes::Bytes>> {
        lease::attached_keys(&self.read_view(), id)
    }
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
