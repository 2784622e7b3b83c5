//! The raft driver loop: the one thread that owns `RawNode` and applies to the store.
//!
//! Each turn: drain the mailbox (so one Ready covers every proposal that arrived: one
//! fsync for all of them, the group commit), tick when due, then handle the Ready in
//! this order (raft-rs's rules; see design §2 and the raft reference):
//!
//! 1. messages a leader may send before persisting;
//! 2. new entries and the hard state in one WriteBatch, synced if raft says so;
//! 3. committed entries applied to the store (only after step 2, so the applied index
//!    can never pass the persisted commit index);
//! 4. messages that must follow persistence (votes, append responses);
//! 5. read states; then `advance`, the light ready's commit index and entries.

use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ballast_proto::ballast::internal::raft_request::Request;
use ballast_proto::ballast::internal::RaftRequest;
use ballast_store::{Error as StoreError, LogStore, Response, Store};
use prost::Message as _;
use raft::eraftpb::{Entry, EntryType, Message as RaftMessage};
use raft::{RawNode, StateRole};
use tokio::sync::watch;

use super::reads::ReadQueue;
use super::wait::WaitRegistry;
use super::{Msg, NodeConfig, RaftStatus};
use crate::error::{Error, Result};
use crate::lessor::Lessor;

/// Mailbox messages handled per turn at most, so ticks are never starved by a flood.
const MAILBOX_DRAIN_MAX: usize = 1024;
/// Applied entries kept in the log after truncation, for followers slightly behind
/// (etcd's SnapshotCatchUpEntries).
const LOG_CATCH_UP_ENTRIES: u64 = 5000;

pub(super) struct Driver {
    raw: RawNode<LogStore>,
    log: LogStore,
    store: Arc<Store>,
    lessor: Arc<Lessor>,
    waits: Arc<WaitRegistry>,
    inbox: Receiver<Msg>,
    status: watch::Sender<RaftStatus>,
    tick_interval: Duration,
    election_ticks: u64,
    ticks: u64,
    reads: ReadQueue,
    snapshot_count: u64,
    role: StateRole,
}

impl Driver {
    pub(super) fn new(
        config: &NodeConfig,
        store: Arc<Store>,
        log: LogStore,
        lessor: Arc<Lessor>,
        waits: Arc<WaitRegistry>,
        inbox: Receiver<Msg>,
        status: watch::Sender<RaftStatus>,
    ) -> Result<Driver> {
        let raft_config = raft::Config {
            id: config.id,
            election_tick: config.election_ticks,
            heartbeat_tick: 1,
            applied: store.applied_index(),
            pre_vote: true,
            check_quorum: true,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            ..Default::default()
        };
        raft_config
            .validate()
            .map_err(|e| Error::Config(format!("raft: {e}")))?;
        let voters = log.conf_state().voters;
        let mut raw = RawNode::new(&raft_config, log.clone(), &super::logger::raft_logger())
            .map_err(|e| Error::Fatal(format!("raft: {e}")))?;
        if voters == [config.id] {
            // Alone in the group: lead at once instead of after an election timeout.
            raw.campaign()
                .map_err(|e| Error::Fatal(format!("raft campaign: {e}")))?;
        }
        Ok(Driver {
            raw,
            log,
            store,
            lessor,
            waits,
            inbox,
            status,
            tick_interval: config.heartbeat_interval,
            election_ticks: config.election_ticks as u64,
            ticks: 0,
            reads: ReadQueue::default(),
            snapshot_count: config.snapshot_count,
            role: StateRole::Follower,
        })
    }

    pub(super) fn run(mut self) -> Result<()> {
        let result = self.turns();
        self.waits.fail_all(|| Error::Stopped);
        self.reads.fail_all();
        self.lessor.demote();
        result
    }

    fn turns(&mut self) -> Result<()> {
        let mut next_tick = Instant::now() + self.tick_interval;
        // A lone member campaigned in `new`: become leader now, not after the first tick.
        self.on_ready()?;
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            match self.inbox.recv_timeout(wait) {
                Ok(msg) => {
                    if !self.handle(msg) {
                        return Ok(());
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
            for _ in 0..MAILBOX_DRAIN_MAX {
                match self.inbox.try_recv() {
                    Ok(msg) => {
                        if !self.handle(msg) {
                            return Ok(());
                        }
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return Ok(()),
                }
            }
            let now = Instant::now();
            if now >= next_tick {
                self.raw.tick();
                self.ticks += 1;
                self.reads.retry_stale(self.ticks, self.election_ticks);
                next_tick += self.tick_interval;
                if next_tick < now {
                    // We fell behind (a long apply); do not burst ticks to catch up.
                    next_tick = now + self.tick_interval;
                }
            }
            self.reads.issue(&mut self.raw, self.ticks);
            self.on_ready()?;
        }
    }

    /// Handles one mailbox message; false means stop.
    fn handle(&mut self, msg: Msg) -> bool {
        match msg {
            Msg::Propose { id, data } => {
                if let Err(err) = self.raw.propose(Vec::new(), data) {
                    let error = match err {
                        raft::Error::ProposalDropped
                            if self.raw.raft.leader_id == raft::INVALID_ID =>
                        {
                            Error::NoLeader
                        }
                        raft::Error::ProposalDropped => Error::LeaderChanged,
                        other => Error::Fatal(format!("raft propose: {other}")),
                    };
                    self.waits.trigger(id, Err(error));
                }
            }
            Msg::Read { reply } => self.reads.push(reply),
            Msg::Stop => return false,
        }
        true
    }

    fn on_ready(&mut self) -> Result<()> {
        if !self.raw.has_ready() {
            return Ok(());
        }
        let mut ready = self.raw.ready();
        if let Some(soft) = ready.ss() {
            self.on_role(soft.raft_state);
        }
        self.send(ready.take_messages());
        if !ready.snapshot().is_empty() {
            return Err(Error::Fatal(
                "received a raft snapshot; installing snapshots needs replication support".into(),
            ));
        }
        self.log
            .persist(ready.entries(), ready.hs(), ready.must_sync())
            .map_err(fatal)?;
        self.apply(ready.take_committed_entries())?;
        self.send(ready.take_persisted_messages());
        self.reads.confirm(ready.take_read_states());

        let mut light = self.raw.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.log.set_commit(commit).map_err(fatal)?;
        }
        self.send(light.take_messages());
        self.apply(light.take_committed_entries())?;
        self.raw.advance_apply();

        self.reads.release(self.store.applied_index());
        self.truncate_log()?;
        self.publish_status();
        Ok(())
    }

    /// Sends raft messages to peers. A single-member group has none; the peer transport
    /// arrives with replication.
    fn send(&mut self, messages: Vec<RaftMessage>) {
        for message in messages {
            tracing::warn!(
                to = message.to,
                "no transport to peer; raft message dropped"
            );
        }
    }

    fn on_role(&mut self, role: StateRole) {
        if role == self.role {
            return;
        }
        tracing::info!(?role, term = self.raw.raft.term, "raft role changed");
        if role == StateRole::Leader {
            self.lessor.promote();
        } else if self.role == StateRole::Leader {
            self.lessor.demote();
        }
        self.role = role;
    }

    fn apply(&mut self, entries: Vec<Entry>) -> Result<()> {
        for entry in entries {
            if entry.index <= self.store.applied_index() {
                continue;
            }
            match entry.get_entry_type() {
                EntryType::EntryNormal if !entry.data.is_empty() => {
                    self.apply_request(entry.index, &entry.data)?
                }
                // A new leader's empty entry; membership changes arrive with replication.
                _ => self.store.record_applied(entry.index).map_err(fatal)?,
            }
        }
        Ok(())
    }

    fn apply_request(&mut self, index: u64, data: &[u8]) -> Result<()> {
        let request = RaftRequest::decode(data)
            .map_err(|e| Error::Fatal(format!("raft entry {index} does not decode: {e}")))?;
        let applied = self.store.apply(index, &request).map_err(fatal)?;
        match (&request.request, &applied.response) {
            (Some(Request::LeaseGrant(_)), Ok(Response::LeaseGrant(granted))) => {
                self.lessor.granted(granted.id, granted.ttl)
            }
            (Some(Request::LeaseRevoke(revoke)), Ok(_) | Err(StoreError::LeaseNotFound)) => {
                self.lessor.revoked(revoke.id)
            }
            _ => {}
        }
        self.waits
            .trigger(request.id, applied.response.map_err(Error::Store));
        Ok(())
    }

    /// Drops applied entries from the log once more than `snapshot_count` accumulate.
    /// Only while this member is alone: followers that fall behind the truncation point
    /// need state-machine snapshots, which arrive with replication.
    fn truncate_log(&mut self) -> Result<()> {
        let conf = self.log.conf_state();
        if conf.voters.len() != 1 || !conf.learners.is_empty() {
            return Ok(());
        }
        let applied = self.store.applied_index();
        let first = self.log.first_index();
        if applied < first + self.snapshot_count + LOG_CATCH_UP_ENTRIES {
            return Ok(());
        }
        let to = applied - LOG_CATCH_UP_ENTRIES;
        self.log.truncate(to).map_err(fatal)?;
        tracing::debug!(to, "raft log truncated");
        Ok(())
    }

    fn publish_status(&mut self) {
        let raft = &self.raw.raft;
        let status = RaftStatus {
            id: raft.id,
            leader: raft.leader_id,
            term: raft.term,
            commit: raft.raft_log.committed,
            applied: self.store.applied_index(),
        };
        self.status.send_if_modified(|current| {
            if *current == status {
                false
            } else {
                *current = status;
                true
            }
        });
    }
}

fn fatal(err: StoreError) -> Error {
    Error::Fatal(err.to_string())
}
