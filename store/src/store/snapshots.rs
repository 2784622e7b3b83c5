//! Whole-state snapshots of the store: written for a follower too far behind the log,
//! installed when this member is that follower. The file format is `crate::snapshot`'s.

use std::path::{Path, PathBuf};

use super::{read_compact_finished, read_revisions, Pending, Store};
use crate::error::Result;
use crate::snapshot::{self, SnapshotMeta};

/// Snapshot files kept in the snapshot directory.
const SNAPSHOTS_KEPT: usize = 2;

impl Store {
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
    /// Whatever an apply batch staged before it is written first.
    pub fn install_snapshot(&self, path: &Path) -> Result<SnapshotMeta> {
        self.apply_batch().write()?;
        let mut pending = self.lock_pending();
        let mut revisions = self.revisions.write().expect("revision lock poisoned");
        let meta = snapshot::install(&self.backend, path)?;
        // A snapshot from a member of an older version may lack history entries.
        crate::mvcc::compact::complete_history(&self.backend)?;
        let installed = read_revisions(&self.backend)?;
        let finished = read_compact_finished(&self.backend)?;
        *revisions = installed;
        *pending = Pending::empty(installed.current);
        self.lock_latest().clear(installed.current);
        drop(pending);
        self.mark_applied(meta.index, meta.term);
        self.compactor.reset(installed.compacted, finished);
        self.set_auth(crate::auth::Auth::load(&self.backend)?);
        self.reload_alarms()?;
        let keys = super::read_keys_total(&self.backend, installed.current, installed.compacted)?;
        self.keys.store(keys, std::sync::atomic::Ordering::Release);
        drop(revisions);
        self.hub.restart_from(installed.current);
        tracing::info!(
            index = meta.index,
            revision = installed.current,
            "snapshot installed"
        );
        Ok(meta)
    }
}
