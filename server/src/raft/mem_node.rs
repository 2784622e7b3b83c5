//! For unit tests: a raft-rs node over memory, one of three voters (1, 2, 3), with a
//! short election timeout and no log output.

use raft::eraftpb::{ConfState, Message};
use raft::storage::MemStorage;
use raft::{RawNode, ReadState};

pub(crate) fn mem_node(id: u64) -> RawNode<MemStorage> {
    let storage = MemStorage::new_with_conf_state(ConfState::from((vec![1, 2, 3], vec![])));
    let config = raft::Config {
        id,
        election_tick: 10,
        heartbeat_tick: 1,
        ..Default::default()
    };
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    RawNode::new(&config, storage, &logger).unwrap()
}

/// Persists and applies a node's pending Ready, in raft-rs's order; the messages to send
/// and the read states it confirmed.
pub(crate) fn ready(raw: &mut RawNode<MemStorage>) -> (Vec<Message>, Vec<ReadState>) {
    if !raw.has_ready() {
        return (Vec::new(), Vec::new());
    }
    let mut ready = raw.ready();
    let mut mail = ready.take_messages();
    if !ready.snapshot().is_empty() {
        let snapshot = ready.snapshot().clone();
        raw.store().wl().apply_snapshot(snapshot).unwrap();
    }
    raw.store().wl().append(ready.entries()).unwrap();
    if let Some(state) = ready.hs() {
        raw.store().wl().set_hardstate(state.clone());
    }
    let read_states = ready.take_read_states();
    mail.extend(ready.take_persisted_messages());
    let mut light = raw.advance(ready);
    if let Some(commit) = light.commit_index() {
        raw.store().wl().mut_hard_state().set_commit(commit);
    }
    mail.extend(light.take_messages());
    raw.advance_apply();
    (mail, read_states)
}
