//! For unit tests: a raft-rs node over memory, one of three voters (1, 2, 3), with a
//! short election timeout and no log output.

use raft::eraftpb::ConfState;
use raft::storage::MemStorage;
use raft::RawNode;

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
