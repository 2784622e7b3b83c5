//! The raft driver loop: the one task that owns `RawNode` and applies to the store.
//!
//! Each turn: drain the mailbox (so one Ready covers every proposal that arrived: one
//! fsync for all of them, the group commit), tick when due, then handle the Ready in
//! this order (raft-rs's rules; see design §2 and the raft reference):
//!
//! 1. messages a leader may send before persisting;
//! 2. a snapshot, if raft hands one over: installed before anything else;
//! 3. new entries and the hard state in one WriteBatch, synced if raft says so;
//! 4. messages that must follow persistence (votes, append responses), before the
//!    apply so the leader's commit does not wait for it;
//! 5. committed entries applied to the store (only after step 3, so the applied index
//!    can never pass the persisted commit index);
//! 6. read states; then `advance`, the light ready's commit index and entries.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ballast_proto::ballast::internal::{MemberChange, RaftRequest};
use ballast_store::{Effect, Error as StoreError, LogStore, Response, Store};
use prost::Message as _;
use protobuf::Message as _;
use raft::eraftpb::{
    ConfChangeType, ConfChangeV2, Entry, EntryType, HardState, Message as RaftMessage, MessageType,
    Snapshot,
};
use raft::{RawNode, ReadState, SnapshotStatus, StateRole};
use tokio::sync::mpsc::{error::TryRecvError, Receiver};
use tokio::sync::watch;

use super::batch::ProposalBatch;
use super::read_inbox::ReadInbox;
use super::reads::{lease_for, ReadQueue};
use super::ready::{self, ReadyIo};
use super::wait::WaitRegistry;
use super::{
    Msg, RaftConfig, RaftParts, RaftStatus, RAFT_HEARTBEAT_TICKS, RAFT_INFLIGHT_APPENDS_MAX,
};
use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::lessor::Lessor;
use crate::limits::RAFT_MESSAGE_BYTES_MAX;
use crate::metrics::metrics;
use crate::peer::admit::{check_against_log, log_refused};
use crate::peer::PeerTransport;
use crate::tokens::Tokens;

/// Mailbox messages handled per turn at most, so ticks are never starved by a flood.
const MAILBOX_DRAIN_MAX: usize = 1024;

/// How long a member keeps driving raft after applying its own removal (etcd waits the
/// same). A leader that removed itself has committed the removal, but its followers learn
/// that only from its next messages; stopping at once would leave the entry for the next
/// leader to commit, and the members that proposed it would see "leader changed". Peers
/// refuse a removed member's messages once they apply the removal, which stops it sooner.
const REMOVED_STOP_DELAY: Duration = Duration::from_secs(1);

pub(super) struct Driver {
    raw: RawNode<LogStore>,
    io: Io,
    /// This turn's proposals: stepped together at the end of the drain, or sooner when
    /// the batch is full or a conf change or leader transfer must follow them.
    proposals: ProposalBatch,
}

/// Everything the driver touches besides raft itself: what a Ready acts on.
struct Io {
    log: LogStore,
    store: Arc<Store>,
    lessor: Arc<Lessor>,
    tokens: Arc<Tokens>,
    cluster: Arc<Cluster>,
    transport: Arc<PeerTransport>,
    waits: Arc<WaitRegistry>,
    epoch: Arc<AtomicU64>,
    inbox: Receiver<Msg>,
    read_inbox: Arc<ReadInbox>,
    status: watch::Sender<RaftStatus>,
    tick_interval: Duration,
    election_ticks: u64,
    ticks: u64,
    /// With leader leases, votes are refused until this tick: a restarted member has
    /// forgotten the promise a lease counts on (`reads::lease_for`).
    votes_refused_until_tick: u64,
    reads: ReadQueue,
    snapshot_count: u64,
    catch_up_entries: u64,
    role: StateRole,
    leader: u64,
    /// Set when this member applied its own removal: when the driver stops.
    stop_at: Option<Instant>,
    /// The request id of a removal of this member proposed here and not yet applied.
    self_removal: Option<u64>,
}

impl Driver {
    pub(super) fn new(
        config: &RaftConfig,
        parts: RaftParts,
        waits: Arc<WaitRegistry>,
        epoch: Arc<AtomicU64>,
        inbox: Receiver<Msg>,
        read_inbox: Arc<ReadInbox>,
        status: watch::Sender<RaftStatus>,
    ) -> Result<Driver> {
        let RaftParts {
            store,
            log,
            lessor,
            tokens,
            cluster,
            transport,
        } = parts;
        let raft_config = raft::Config {
            id: config.id,
            election_tick: config.election_ticks,
            heartbeat_tick: RAFT_HEARTBEAT_TICKS,
            applied: store.applied_index(),
            pre_vote: true,
            check_quorum: true,
            max_size_per_msg: RAFT_MESSAGE_BYTES_MAX as u64,
            max_inflight_msgs: RAFT_INFLIGHT_APPENDS_MAX,
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
        transport.update(&cluster.members());
        Ok(Driver {
            raw,
            proposals: ProposalBatch::default(),
            io: Io {
                log,
                store,
                lessor,
                tokens,
                cluster,
                transport,
                waits,
                epoch,
                inbox,
                read_inbox,
                status,
                tick_interval: config.heartbeat_interval,
                election_ticks: config.election_ticks as u64,
                ticks: 0,
                votes_refused_until_tick: if config.leader_lease_reads {
                    config.election_ticks as u64
                } else {
                    0
                },
                reads: ReadQueue::new(
                    config.id,
                    config.leader_lease_reads.then(|| {
                        lease_for(config.heartbeat_interval, config.election_ticks as u64)
                    }),
                ),
                snapshot_count: config.snapshot_count,
                catch_up_entries: config.catch_up_entries,
                role: StateRole::Follower,
                leader: raft::INVALID_ID,
                stop_at: None,
                self_removal: None,
            },
        })
    }

    pub(super) async fn run(mut self) -> Result<()> {
        let result = self.turns().await;
        self.io.waits.fail_all(|| Error::Stopped);
        for waiter in self.io.read_inbox.close() {
            self.io.reads.push(waiter);
        }
        self.io.reads.fail_all();
        self.io.lessor.demote();
        self.io.transport.close();
        result
    }

    async fn turns(&mut self) -> Result<()> {
        let mut next_tick = Instant::now() + self.io.tick_interval;
        // A lone member campaigned in `new`: become leader now, not after the first tick.
        self.on_ready()?;
        // Reads wait that this thread must take without waiting for a message.
        let mut reads_now = false;
        while self.io.stop_at.is_none_or(|at| Instant::now() < at) {
            let wait = if reads_now {
                Duration::ZERO
            } else {
                next_tick.saturating_duration_since(Instant::now())
            };
            let received = if wait.is_zero() {
                match self.io.inbox.try_recv() {
                    Ok(msg) => Some(msg),
                    Err(TryRecvError::Empty) => {
                        // Reads wait for a round: let the handlers that are ready run
                        // first, so their reads join this round rather than the next
                        // (each round is a heartbeat to every follower and back).
                        tokio::task::yield_now().await;
                        None
                    }
                    Err(TryRecvError::Disconnected) => return Ok(()),
                }
            } else {
                match tokio::time::timeout(wait, self.io.inbox.recv()).await {
                    Ok(Some(msg)) => Some(msg),
                    Ok(None) => return Ok(()),
                    Err(_) => None,
                }
            };
            if let Some(msg) = received {
                if !self.handle(msg) {
                    return Ok(());
                }
            }
            for _ in 0..MAILBOX_DRAIN_MAX {
                match self.io.inbox.try_recv() {
                    Ok(msg) => {
                        if !self.handle(msg) {
                            return Ok(());
                        }
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return Ok(()),
                }
            }
            self.step_proposals();
            if self.io.transport.told_removed() {
                // Peers refuse this member once they applied its removal: nothing it
                // sends would be heard. The removal is committed, so a client that asked
                // this member for it gets its answer rather than "server stopped".
                if let Some(id) = self.io.self_removal.take() {
                    let mut members = self.io.cluster.members();
                    members.retain(|m| m.id != self.raw.raft.id);
                    self.io.waits.trigger(id, Ok(Response::Members(members)));
                }
                break;
            }
            for peer in self.io.transport.take_unreachable() {
                self.raw.report_unreachable(peer);
            }
            for (peer, delivered) in self.io.transport.take_snapshot_reports() {
                let status = if delivered {
                    SnapshotStatus::Finish
                } else {
                    SnapshotStatus::Failure
                };
                self.raw.report_snapshot(peer, status);
            }
            let now = Instant::now();
            if now >= next_tick {
                self.raw.tick();
                self.io.ticks += 1;
                self.io
                    .reads
                    .retry_stale(self.io.ticks, self.io.election_ticks);
                next_tick += self.io.tick_interval;
                if next_tick < now {
                    // We fell behind (a long apply); do not burst ticks to catch up.
                    next_tick = now + self.io.tick_interval;
                }
            }
            for waiter in self.io.read_inbox.take() {
                self.io.reads.push(waiter);
            }
            self.io
                .reads
                .issue(&mut self.raw, self.io.ticks, Instant::now());
            self.on_ready()?;
            // A confirmed round lets the reads that waited for it start the next.
            reads_now = self.io.read_inbox.arm(self.io.reads.wants_wake())
                || self.io.reads.issuable(&self.raw);
        }
        tracing::warn!("this member was removed from the cluster; stopping");
        Ok(())
    }

    /// Handles one mailbox message; false means stop.
    fn handle(&mut self, msg: Msg) -> bool {
        match msg {
            Msg::Propose { id, data } => {
                if self.proposals.push(id, data) {
                    self.step_proposals();
                }
            }
            Msg::ConfChange {
                id,
                change,
                context,
            } => {
                // After the proposals that came before it, as it would have been alone.
                self.step_proposals();
                if self.raw.raft.has_pending_conf() {
                    // raft-rs would silently turn it into an empty entry.
                    self.io.waits.trigger(id, Err(Error::Unhealthy));
                } else {
                    let removes_self = change.get_changes().iter().any(|c| {
                        c.get_change_type() == ConfChangeType::RemoveNode
                            && c.node_id == self.raw.raft.id
                    });
                    match self.raw.propose_conf_change(context, change) {
                        Ok(()) if removes_self => self.io.self_removal = Some(id),
                        Ok(()) => {}
                        Err(err) => self.io.waits.trigger(id, Err(self.proposal_error(&err))),
                    }
                }
            }
            Msg::ReadsWaiting => {}
            Msg::Raft(messages) => {
                for message in messages {
                    self.step_peer(message);
                }
            }
            Msg::TransferLeader(target) => {
                // Proposals that came first go to this leader, not the next.
                self.step_proposals();
                self.raw.transfer_leader(target)
            }
            Msg::Progress { reply } => {
                let mut matched = HashMap::new();
                if self.raw.raft.state == StateRole::Leader {
                    for (id, progress) in self.raw.raft.prs().iter() {
                        matched.insert(*id, progress.matched);
                    }
                }
                let _ = reply.send(matched);
            }
            Msg::Stop => return false,
        }
        true
    }

    /// Steps one message from a peer, unless the log or a recent start refuses it.
    fn step_peer(&mut self, message: RaftMessage) {
        let last_index = self.raw.raft.raft_log.last_index();
        let leader = self.raw.raft.state == StateRole::Leader;
        if let Err(why) = check_against_log(&message, last_index, leader) {
            log_refused(&message, why);
            return;
        }
        if refuses_vote(
            &message,
            self.raw.raft.term,
            self.io.ticks,
            self.io.votes_refused_until_tick,
        ) {
            tracing::debug!(
                from = message.from,
                "vote refused: started less than an election timeout ago"
            );
            return;
        }
        let stepped = if message.get_msg_type() == MessageType::MsgReadIndex {
            self.io
                .reads
                .step_read_index(&mut self.raw, message, Instant::now())
        } else {
            self.raw.step(message)
        };
        if let Err(err) = stepped {
            tracing::debug!(%err, "raft message not stepped");
        }
    }

    /// Steps the batched proposals into raft as one MsgProp; if raft drops it, every
    /// proposal in it fails alike.
    fn step_proposals(&mut self) {
        if self.proposals.is_empty() {
            return;
        }
        let (ids, message) = self.proposals.take(self.raw.raft.id);
        if let Err(err) = self.raw.step(message) {
            for id in ids {
                self.io.waits.trigger(id, Err(self.proposal_error(&err)));
            }
        }
    }

    fn proposal_error(&self, err: &raft::Error) -> Error {
        match err {
            raft::Error::ProposalDropped if self.raw.raft.leader_id == raft::INVALID_ID => {
                Error::NoLeader
            }
            raft::Error::ProposalDropped => Error::LeaderChanged,
            other => Error::Fatal(format!("raft propose: {other}")),
        }
    }

    fn on_ready(&mut self) -> Result<()> {
        if !ready::handle_ready(&mut self.raw, &mut self.io)? {
            return Ok(());
        }
        self.io.reads.release(self.io.store.applied_index());
        self.io.truncate_log()?;
        self.io.publish_status(&self.raw);
        Ok(())
    }
}

impl Io {
    /// Hands raft messages to the transport; snapshots go their own way, streamed ahead
    /// of the message that refers to them.
    fn send_all(&mut self, messages: Vec<RaftMessage>) {
        let (snapshots, others): (Vec<_>, Vec<_>) = messages
            .into_iter()
            .partition(|m| m.get_msg_type() == MessageType::MsgSnapshot);
        self.transport.send(others);
        for message in snapshots {
            self.transport
                .send_snapshot(message, self.store.snap_dir().to_path_buf());
        }
    }

    fn note_soft_state(&mut self, leader: u64, role: StateRole, term: u64) {
        if leader != self.leader {
            if leader != raft::INVALID_ID {
                metrics().leader_changes.inc();
            }
            tracing::info!(
                leader = format!("{leader:x}"),
                term = term,
                "leader changed"
            );
            self.leader = leader;
            let epoch = self.epoch.fetch_add(1, Ordering::AcqRel) + 1;
            self.waits.fail_before(epoch, || Error::LeaderChanged);
        }
        if role == self.role {
            return;
        }
        tracing::info!(?role, term = term, "raft role changed");
        if role == StateRole::Leader {
            self.lessor.promote();
        } else if self.role == StateRole::Leader {
            self.lessor.demote();
        }
        self.role = role;
    }

    fn restore(&mut self, snapshot: &Snapshot) -> Result<()> {
        let name = String::from_utf8(snapshot.data.to_vec())
            .map_err(|_| Error::Fatal("snapshot message names no file".into()))?;
        let path = self.store.snap_dir().join(name);
        let meta = self.store.install_snapshot(&path).map_err(fatal)?;
        let expected = snapshot.get_metadata();
        if meta.index != expected.index || meta.term != expected.term {
            return Err(Error::Fatal(format!(
                "snapshot file holds ({}, {}), raft expected ({}, {})",
                meta.term, meta.index, expected.term, expected.index
            )));
        }
        self.log.reload().map_err(fatal)?;
        let members = self.store.members().map_err(fatal)?;
        self.transport.update(&members);
        self.cluster.set_members(members);
        self.cluster
            .set_removed(self.store.removed_members().map_err(fatal)?);
        self.lessor.reset(&self.store.leases().map_err(fatal)?);
        // Simple tokens name users of the replaced state: they authenticate again.
        self.tokens.revoke(None);
        Ok(())
    }

    /// Applies committed entries in one apply batch; only once it is written are their
    /// proposers answered.
    fn apply_entries(&mut self, raw: &mut RawNode<LogStore>, entries: Vec<Entry>) -> Result<()> {
        let mut replies = Vec::new();
        let store = self.store.clone();
        let mut batch = store.apply_batch();
        for entry in entries {
            let (index, term) = (entry.index, entry.term);
            if index <= self.store.applied_index() {
                continue;
            }
            let (id, applied) = match entry.get_entry_type() {
                // A new leader's empty entry.
                EntryType::EntryNormal if entry.data.is_empty() => {
                    batch.skip(index, term);
                    continue;
                }
                EntryType::EntryNormal => {
                    let request = match RaftRequest::decode(&entry.data[..]) {
                        Ok(request) if request.request.is_some() => request,
                        _ => {
                            refuse_entry(&mut batch, &entry, "a request that does not decode");
                            continue;
                        }
                    };
                    let applied = batch.apply(index, term, &request).map_err(fatal)?;
                    (request.id, applied)
                }
                EntryType::EntryConfChange => {
                    // Ballast only ever proposes ConfChangeV2.
                    refuse_entry(&mut batch, &entry, "a v1 configuration change");
                    continue;
                }
                EntryType::EntryConfChangeV2 => {
                    let decoded = ConfChangeV2::parse_from_bytes(&entry.data)
                        .ok()
                        .zip(MemberChange::decode(&entry.context[..]).ok());
                    let Some((change, context)) = decoded else {
                        refuse_entry(
                            &mut batch,
                            &entry,
                            "a configuration change that does not decode",
                        );
                        continue;
                    };
                    let conf_state = match raw.apply_conf_change(&change) {
                        Ok(conf_state) => conf_state,
                        Err(err) => {
                            tracing::warn!(%err, index, "refused a configuration change");
                            batch.skip(index, term);
                            replies.push((context.id, Err(Error::Unhealthy)));
                            continue;
                        }
                    };
                    tracing::info!(index, voters = ?conf_state.voters, learners = ?conf_state.learners, "membership changed");
                    let member = context.member.unwrap_or_default();
                    let applied = batch
                        .apply_conf_change(index, term, &change, &member, &conf_state)
                        .map_err(fatal)?;
                    self.log.note_conf_state(&conf_state);
                    // A lease counts on the quorum of the configuration it began in.
                    self.reads.end_lease();
                    if self.self_removal == Some(context.id) {
                        self.self_removal = None;
                    }
                    (context.id, applied)
                }
            };
            self.follow_up(raw.raft.id, &applied.effect)?;
            replies.push((id, applied.response.map_err(Error::Store)));
        }
        let started = Instant::now();
        batch.write().map_err(fatal)?;
        metrics()
            .backend_commit
            .observe(started.elapsed().as_secs_f64());
        for (id, outcome) in replies {
            self.waits.trigger(id, outcome);
        }
        Ok(())
    }

    /// Brings the state the store does not hold in line with an applied entry.
    fn follow_up(&mut self, local: u64, effect: &Effect) -> Result<()> {
        match effect {
            Effect::None => {}
            Effect::LeaseGranted { id, ttl } => self.lessor.granted(*id, *ttl),
            Effect::LeaseRevoked(id) => self.lessor.revoked(*id),
            Effect::Authenticated(issued) => self.tokens.issued(issued),
            Effect::TokensRevoked(user) => self.tokens.revoke(user.as_deref()),
            Effect::Members { members, removed } => {
                if let Some(removed) = removed {
                    self.cluster
                        .set_removed(self.store.removed_members().map_err(fatal)?);
                    if *removed == local {
                        self.stop_at = Some(Instant::now() + REMOVED_STOP_DELAY);
                    }
                }
                self.transport.update(members);
                self.cluster.set_members(members.clone());
            }
        }
        Ok(())
    }

    /// Drops applied entries from the log once more than `snapshot_count` accumulate.
    /// A follower that falls behind the truncation point gets a snapshot instead.
    fn truncate_log(&mut self) -> Result<()> {
        let applied = self.store.applied_index();
        let first = self.log.first_index();
        if applied < first + self.snapshot_count + self.catch_up_entries {
            return Ok(());
        }
        let to = applied - self.catch_up_entries;
        self.log.truncate(to).map_err(fatal)?;
        tracing::debug!(to, "raft log truncated");
        Ok(())
    }

    fn publish_status(&mut self, raw: &RawNode<LogStore>) {
        let raft = &raw.raft;
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

impl ReadyIo<LogStore> for Io {
    fn on_soft_state(&mut self, leader: u64, role: StateRole, term: u64) {
        self.note_soft_state(leader, role, term);
    }

    fn send(&mut self, messages: Vec<RaftMessage>) {
        self.send_all(messages);
    }

    fn install_snapshot(&mut self, snapshot: &Snapshot) -> Result<()> {
        self.restore(snapshot)
    }

    fn persist(
        &mut self,
        entries: &[Entry],
        hard_state: Option<&HardState>,
        sync: bool,
    ) -> Result<()> {
        let started = Instant::now();
        self.log.persist(entries, hard_state, sync).map_err(fatal)?;
        if sync {
            metrics().wal_fsync.observe(started.elapsed().as_secs_f64());
        }
        Ok(())
    }

    fn persist_commit(&mut self, commit: u64) -> Result<()> {
        self.log.set_commit(commit).map_err(fatal)
    }

    fn apply(&mut self, raw: &mut RawNode<LogStore>, entries: Vec<Entry>) -> Result<()> {
        self.apply_entries(raw, entries)
    }

    fn read_states(&mut self, states: Vec<ReadState>, leader_term: Option<u64>) {
        let answers = self.reads.confirm(states, leader_term);
        self.send_all(answers);
    }
}

/// Whether a member at `ticks` since it started refuses `message`: until
/// `refused_until_tick`, every vote or pre-vote for a new term that is not a leadership
/// transfer's (those are granted whatever the promise).
fn refuses_vote(message: &RaftMessage, term: u64, ticks: u64, refused_until_tick: u64) -> bool {
    ticks < refused_until_tick
        && matches!(
            message.get_msg_type(),
            MessageType::MsgRequestVote | MessageType::MsgRequestPreVote
        )
        && message.term > term
        && message.context != raft::CAMPAIGN_TRANSFER
}

fn fatal(err: StoreError) -> Error {
    Error::Fatal(err.to_string())
}

/// Applies a committed entry that no member's proposer could have made (the peer port
/// refuses such proposals; this is the last line) as a no-op: every member skips it
/// alike, so they stay in step, and none stops over it.
fn refuse_entry(batch: &mut ballast_store::ApplyBatch<'_>, entry: &Entry, what: &str) {
    tracing::error!(
        index = entry.index,
        term = entry.term,
        bytes = entry.data.len(),
        "committed entry refused: {what}; applied as a no-op"
    );
    batch.skip(entry.index, entry.term);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: MessageType, term: u64, context: &[u8]) -> RaftMessage {
        let mut message = RaftMessage::default();
        message.set_msg_type(kind);
        message.term = term;
        message.context = context.to_vec().into();
        message
    }

    #[test]
    fn a_restarted_member_refuses_votes_for_new_terms_until_its_promise_has_run_out() {
        let (term, until) = (5, 10);
        for kind in [MessageType::MsgRequestVote, MessageType::MsgRequestPreVote] {
            let ask = message(kind, term + 1, b"");
            assert!(refuses_vote(&ask, term, 0, until));
            assert!(refuses_vote(&ask, term, until - 1, until));
            assert!(!refuses_vote(&ask, term, until, until));
            // Without leases nothing is refused.
            assert!(!refuses_vote(&ask, term, 0, 0));
            // A transfer's campaign and a vote in the member's own term go through.
            let transfer = message(kind, term + 1, raft::CAMPAIGN_TRANSFER);
            assert!(!refuses_vote(&transfer, term, 0, until));
            assert!(!refuses_vote(&message(kind, term, b""), term, 0, until));
        }
        let append = message(MessageType::MsgAppend, term + 1, b"");
        assert!(!refuses_vote(&append, term, 0, until));
    }
}
