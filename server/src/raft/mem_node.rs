//! For unit tests: a raft-rs node over memory, one of three voters (1, 2, 3), with a
//! short election timeout and no log output.

use raft::eraftpb::{ConfState, Entry, HardState, Message, Snapshot};
use raft::storage::MemStorage;
use raft::{RawNode, ReadState, StateRole};

use super::ready::{handle_ready, ReadyIo};
use crate::error::Result;

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

/// Persists into a node's memory storage and records what the node sends and reads.
struct MemIo {
    storage: MemStorage,
    sent: Vec<Message>,
    read_states: Vec<ReadState>,
}

impl ReadyIo<MemStorage> for MemIo {
    fn on_soft_state(&mut self, _leader: u64, _role: StateRole, _term: u64) {}

    fn send(&mut self, messages: Vec<Message>) {
        self.sent.extend(messages);
    }

    fn install_snapshot(&mut self, snapshot: &Snapshot) -> Result<()> {
        self.storage.wl().apply_snapshot(snapshot.clone()).unwrap();
        Ok(())
    }

    fn persist(&mut self, entries: &[Entry], hs: Option<&HardState>, _: bool) -> Result<()> {
        self.storage.wl().append(entries).unwrap();
        if let Some(hs) = hs {
            self.storage.wl().set_hardstate(hs.clone());
        }
        Ok(())
    }

    fn persist_commit(&mut self, commit: u64) -> Result<()> {
        self.storage.wl().mut_hard_state().set_commit(commit);
        Ok(())
    }

    fn apply(&mut self, _raw: &mut RawNode<MemStorage>, _entries: Vec<Entry>) -> Result<()> {
        Ok(())
    }

    fn read_states(&mut self, states: Vec<ReadState>, _leader_term: Option<u64>) {
        self.read_states.extend(states);
    }
}

/// Handles a node's pending Ready as the node does (`ready::handle_ready`), into memory;
/// the messages to send and the read states it confirmed.
pub(crate) fn ready(raw: &mut RawNode<MemStorage>) -> (Vec<Message>, Vec<ReadState>) {
    let mut io = MemIo {
        storage: raw.store().clone(),
        sent: Vec::new(),
        read_states: Vec::new(),
    };
    handle_ready(raw, &mut io).unwrap();
    (io.sent, io.read_states)
}
