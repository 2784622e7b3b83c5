//! Compaction: the logical point moves when a Compaction entry is applied (reads below it
//! fail at once); a background thread then removes the history below it, so the apply
//! thread never waits for the deletion of old revisions.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ballast_proto::etcdserverpb::{CompactionRequest, CompactionResponse};
use rocksdb::WriteBatch;

use super::{header, Revisions, Store};
use crate::backend::{meta, Cf};
use crate::error::{Error, Result};
use crate::mvcc::compact::compact_physical;
use crate::record::encode_u64;

/// How long the compactor waits before trying a failed physical compaction again.
const COMPACTION_RETRY_DELAY: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
struct State {
    /// Logical compaction point whose physical removal is wanted.
    scheduled: i64,
    /// Physical removal done up to here.
    finished: i64,
    stopped: bool,
}

/// The compactor thread's work list and progress.
#[derive(Debug)]
pub(super) struct Compactor {
    state: Mutex<State>,
    changed: Condvar,
}

impl Compactor {
    pub(super) fn new(compacted: i64, finished: i64) -> Self {
        Compactor {
            state: Mutex::new(State {
                scheduled: compacted,
                finished,
                stopped: false,
            }),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("compactor lock poisoned")
    }

    /// Asks for history below `revision` to be removed.
    fn schedule(&self, revision: i64) {
        let mut state = self.lock();
        state.scheduled = state.scheduled.max(revision);
        self.changed.notify_all();
    }

    /// A snapshot replaced the state: its compaction point and progress replace ours.
    pub(super) fn reset(&self, compacted: i64, finished: i64) {
        let mut state = self.lock();
        state.scheduled = compacted;
        state.finished = finished.min(compacted);
        self.changed.notify_all();
    }

    pub(super) fn stop(&self) {
        self.lock().stopped = true;
        self.changed.notify_all();
    }
}

impl Store {
    /// Applies a Compaction entry, written at once with the applied index: the new
    /// compaction point must be durable before any read is refused for it.
    pub(super) fn apply_compaction(
        &self,
        index: u64,
        term: u64,
        req: &CompactionRequest,
    ) -> Result<Result<CompactionResponse>> {
        let before: Revisions = self.revisions();
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
            self.compactor.schedule(req.revision);
        }
        Ok(verdict.map(|()| CompactionResponse {
            header: Some(header(before.current)),
        }))
    }

    /// The compactor thread: removes history below each scheduled point until the store
    /// closes.
    pub(super) fn run_compactor(&self) {
        loop {
            let target = {
                let mut state = self.compactor.lock();
                while !state.stopped && state.scheduled <= state.finished {
                    state = self
                        .compactor
                        .changed
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
                std::thread::sleep(COMPACTION_RETRY_DELAY);
                continue;
            }
            drop(view);
            tracing::info!(revision = target, took = ?started.elapsed(), "compaction finished");
            let mut state = self.compactor.lock();
            state.finished = state.finished.max(target);
            self.compactor.changed.notify_all();
        }
    }

    /// Waits until history below `revision` is physically gone; false on timeout.
    pub fn wait_compacted(&self, revision: i64, timeout: Duration) -> bool {
        let state = self.compactor.lock();
        let (state, _) = self
            .compactor
            .changed
            .wait_timeout_while(state, timeout, |s| s.finished < revision && !s.stopped)
            .expect("compactor lock poisoned");
        state.finished >= revision
    }
}
