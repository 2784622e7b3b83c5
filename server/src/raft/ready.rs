//! Handling one raft Ready, in the order raft-rs requires, independent of where the log
//! lives and what applying means. The node's driver and the deterministic simulation
//! (`sim`) run this same code, so the simulation checks the order the node really uses.
//!
//! The order (raft-rs's "Processing the Ready State", made stricter where the docs
//! allow it):
//!
//! 1. soft state (leader, role) is noted;
//! 2. messages a leader may send before persisting (raft thesis 10.2.1);
//! 3. a snapshot, if raft hands one over: installed before anything else;
//! 4. new entries and the hard state persisted, synced if raft says so;
//! 5. messages that must follow persistence (votes, append responses);
//! 6. committed entries applied, only after step 4, so the applied index can never pass
//!    the persisted commit index;
//! 7. read states; then `advance`; the light ready's commit index persisted before its
//!    committed entries are applied.

use raft::eraftpb::{Entry, HardState, Message, Snapshot};
use raft::{RawNode, ReadState, StateRole, Storage};

use crate::error::Result;

/// The side effects of a Ready, supplied by the driver (RocksDB, gRPC) or the
/// simulation (memory, a simulated network).
pub(crate) trait ReadyIo<S: Storage> {
    /// Leadership or role changed; `term` is the current term.
    fn on_soft_state(&mut self, leader: u64, role: StateRole, term: u64);
    /// Sends messages to peers; must not block.
    fn send(&mut self, messages: Vec<Message>);
    /// Replaces the state with a snapshot.
    fn install_snapshot(&mut self, snapshot: &Snapshot) -> Result<()>;
    /// Persists new entries (replacing any conflicting tail) and the hard state in one
    /// atomic write, durable before returning if `sync`.
    fn persist(
        &mut self,
        entries: &[Entry],
        hard_state: Option<&HardState>,
        sync: bool,
    ) -> Result<()>;
    /// Persists a new commit index (no sync needed).
    fn persist_commit(&mut self, commit: u64) -> Result<()>;
    /// Applies committed entries in order.
    fn apply(&mut self, raw: &mut RawNode<S>, entries: Vec<Entry>) -> Result<()>;
    /// Read indexes confirmed by the leader; `leader_term` is the term if this member
    /// leads now.
    fn read_states(&mut self, states: Vec<ReadState>, leader_term: Option<u64>);
}

/// Handles the pending Ready, if any; returns whether there was one.
pub(crate) fn handle_ready<S: Storage, I: ReadyIo<S>>(
    raw: &mut RawNode<S>,
    io: &mut I,
) -> Result<bool> {
    if !raw.has_ready() {
        return Ok(false);
    }
    let mut ready = raw.ready();
    if let Some(soft) = ready.ss() {
        io.on_soft_state(soft.leader_id, soft.raft_state, raw.raft.term);
    }
    io.send(ready.take_messages());
    if !ready.snapshot().is_empty() {
        io.install_snapshot(ready.snapshot())?;
    }
    io.persist(ready.entries(), ready.hs(), ready.must_sync())?;
    // A follower's append responses go before the apply: the leader's commit waits for
    // them, not for this member's apply.
    io.send(ready.take_persisted_messages());
    io.apply(raw, ready.take_committed_entries())?;
    let leader_term = (raw.raft.state == StateRole::Leader).then_some(raw.raft.term);
    io.read_states(ready.take_read_states(), leader_term);

    let mut light = raw.advance(ready);
    if let Some(commit) = light.commit_index() {
        io.persist_commit(commit)?;
    }
    io.send(light.take_messages());
    io.apply(raw, light.take_committed_entries())?;
    raw.advance_apply();
    Ok(true)
}
