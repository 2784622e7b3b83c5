//! The raft node: one task owns raft-rs's `RawNode` and the write path of the store.
//!
//! Clients reach it through the [`Raft`] handle: a proposal is registered in the wait
//! registry by request id, handed to the driver through a bounded mailbox, committed
//! through raft, applied to the store by the driver, and its outcome handed back by id.
//! A follower's proposals travel to the leader inside raft and are answered when the
//! follower applies them. A linearizable read waits in the read inbox for the driver's
//! next ReadIndex round and reads locally once the store has applied up to the round's
//! index; followers serve them too.
//!
//! The driver is a task on the server's runtime, not a thread of its own: every hand-off
//! to it (a proposal, a peer's messages, a read) and from it (an answer, a peer's queue)
//! is then a task wake-up, often on the worker already running, where a thread of its
//! own made each one a futex wake and a context switch (members' CPU per linearizable
//! read fell by about a sixth, docs/performance.md). Its writes and fsync block the
//! worker they run on while the other workers take the rest of the work, as Go's
//! scheduler does for etcd's raft goroutine. That is safe only because nothing the driver
//! calls waits for another task: it must never block on a channel, lock or result that a
//! task fills, or a runtime with one worker would stop.

mod batch;
mod driver;
mod logger;
#[cfg(test)]
pub(crate) mod mem_node;
mod read_inbox;
mod reads;
mod ready;
#[cfg(test)]
mod sim;
mod superseded;
pub mod wait;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ballast_proto::ballast::internal::{MemberChange, RaftRequest};
use ballast_proto::etcdserverpb::Member;
use ballast_store::{LogStore, Proposal, Response, Store};
use prost::Message as _;
use raft::eraftpb::{ConfChangeType, ConfChangeV2, Message as RaftMessage};
use tokio::sync::mpsc::{channel, error::TrySendError, Sender};
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::idgen::IdGenerator;
use crate::lessor::Lessor;
use crate::metrics::metrics;
use crate::peer::PeerTransport;
use read_inbox::{Pushed, ReadInbox};
use wait::WaitRegistry;

/// Messages the driver's mailbox holds at most. A full mailbox refuses new requests with
/// etcd's "too many requests" instead of queueing without bound.
pub const RAFT_MAILBOX_CAPACITY: usize = 4096;

/// Ticks between a leader's heartbeats: one tick is one `--heartbeat-interval`, as in etcd.
pub const RAFT_HEARTBEAT_TICKS: usize = 1;
/// Appends sent to one follower and not yet acknowledged, at most (etcd's
/// maxInflightMsgs): enough to keep a follower busy over a slow link, bounded so a follower
/// that stopped answering costs a bounded queue.
pub const RAFT_INFLIGHT_APPENDS_MAX: usize = 256;

/// What the node needs to know from the configuration.
#[derive(Debug, Clone)]
pub struct RaftConfig {
    pub id: u64,
    pub heartbeat_interval: Duration,
    pub election_ticks: usize,
    pub request_timeout: Duration,
    pub max_request_bytes: usize,
    /// Applied entries kept in the raft log before it is truncated.
    pub snapshot_count: u64,
    /// Applied entries kept after a truncation, for followers slightly behind.
    pub catch_up_entries: u64,
    /// A leader answers linearizable reads alone while it holds a lease
    /// (`reads::lease_for`); a member refuses votes for an election timeout after start.
    pub leader_lease_reads: bool,
}

/// The raft state the rest of the server reports and reacts to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RaftStatus {
    pub id: u64,
    /// 0 when there is no leader.
    pub leader: u64,
    pub term: u64,
    pub commit: u64,
    pub applied: u64,
}

impl RaftStatus {
    pub fn is_leader(&self) -> bool {
        self.leader == self.id && self.id != 0
    }

    pub fn has_leader(&self) -> bool {
        self.leader != 0
    }
}

enum Msg {
    Propose {
        id: u64,
        data: Vec<u8>,
    },
    ConfChange {
        id: u64,
        change: ConfChangeV2,
        context: Vec<u8>,
    },
    /// Reads wait in the read inbox.
    ReadsWaiting,
    /// One peer batch's messages, in order: one hand-off (and at most one wake-up of
    /// the driver) per batch rather than per message.
    Raft(Vec<RaftMessage>),
    TransferLeader(u64),
    Progress {
        reply: oneshot::Sender<HashMap<u64, u64>>,
    },
    Stop,
}

/// Handle to the raft node.
pub struct Raft {
    config: RaftConfig,
    mailbox: Sender<Msg>,
    reads: Arc<ReadInbox>,
    waits: Arc<WaitRegistry>,
    ids: IdGenerator,
    status: watch::Receiver<RaftStatus>,
    /// Leadership epoch: bumped by the driver at every leader change.
    epoch: Arc<AtomicU64>,
    /// The driver's result, sent once when it ends; taken by [`Raft::stop`].
    finished: Mutex<Option<std::sync::mpsc::Receiver<Result<()>>>>,
}

impl std::fmt::Debug for Raft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Raft")
            .field("config", &self.config)
            .field("status", &*self.status.borrow())
            .finish()
    }
}

/// What the driver works with besides raft itself.
#[derive(Debug)]
pub struct RaftParts {
    pub store: Arc<Store>,
    pub log: LogStore,
    pub lessor: Arc<Lessor>,
    pub tokens: Arc<crate::tokens::Tokens>,
    pub cluster: Arc<Cluster>,
    pub transport: Arc<PeerTransport>,
}

/// Puts a peer batch's messages in the driver's mailbox as one item: under reads a batch
/// carries several (heartbeats, their answers, read indexes), and each item that finds
/// the driver asleep wakes it (futex calls per read fell from about 2.0 to 1.6).
fn hand_off(mailbox: &Sender<Msg>, messages: Vec<RaftMessage>) {
    if !messages.is_empty() {
        let _ = mailbox.try_send(Msg::Raft(messages));
    }
}

impl Raft {
    /// Starts the driver task on the current runtime. If the driver fails, or this member
    /// is removed from the cluster, it cancels `stop` so the server shuts down instead of
    /// serving from a store that stopped applying.
    pub fn start(
        config: RaftConfig,
        parts: RaftParts,
        stop: CancellationToken,
    ) -> Result<Arc<Raft>> {
        let (mailbox, inbox) = channel(RAFT_MAILBOX_CAPACITY);
        let reads = Arc::new(ReadInbox::new());
        let waits = Arc::new(WaitRegistry::default());
        let epoch = Arc::new(AtomicU64::new(0));
        let (status_tx, status) = watch::channel(RaftStatus {
            id: config.id,
            ..Default::default()
        });
        let driver = driver::Driver::new(
            &config,
            parts,
            waits.clone(),
            epoch.clone(),
            inbox,
            reads.clone(),
            status_tx,
        )?;
        let (done, finished) = std::sync::mpsc::sync_channel(1);
        let task = tokio::spawn(driver.run());
        tokio::spawn(async move {
            // A panic is a bug; whatever happens, the server must not serve on
            // without a driver applying entries.
            let result = task
                .await
                .unwrap_or_else(|_| Err(Error::Fatal("the raft driver panicked".into())));
            match &result {
                Err(err) => tracing::error!(%err, "raft driver failed; shutting down"),
                Ok(()) => tracing::info!("raft driver stopped"),
            }
            stop.cancel();
            let _ = done.send(result);
        });
        Ok(Arc::new(Raft {
            ids: IdGenerator::new(config.id),
            config,
            mailbox,
            reads,
            waits,
            status,
            epoch,
            finished: Mutex::new(Some(finished)),
        }))
    }

    pub fn status(&self) -> RaftStatus {
        self.status.borrow().clone()
    }

    /// A receiver that sees every status change (leader, term, indexes).
    pub fn watch_status(&self) -> watch::Receiver<RaftStatus> {
        self.status.clone()
    }

    /// Proposals waiting to be applied.
    pub fn pending_proposals(&self) -> usize {
        self.waits.len()
    }

    pub fn ids(&self) -> &IdGenerator {
        &self.ids
    }

    /// Hands a raft message from a peer to the driver; dropped if the mailbox is full
    /// (raft retransmits).
    pub fn step(&self, message: RaftMessage) {
        self.step_all(vec![message]);
    }

    /// Hands the messages of one peer batch to the driver, to be stepped in order; all
    /// dropped if the mailbox is full (raft retransmits).
    pub fn step_all(&self, messages: Vec<RaftMessage>) {
        hand_off(&self.mailbox, messages);
    }

    /// Waits for the outcome registered under `id`, within the request timeout.
    async fn wait(&self, id: u64, outcome: oneshot::Receiver<wait::Outcome>) -> Result<Response> {
        match tokio::time::timeout(self.config.request_timeout, outcome).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(Error::Stopped),
            Err(_) => {
                self.waits.cancel(id);
                Err(self.timeout_error())
            }
        }
    }

    /// Proposes a request of this member's own (no client's permissions involved) and
    /// waits until it is applied; returns its response, of the kind the request's
    /// [`Proposal`] impl names.
    pub async fn propose<P: Proposal>(&self, proposal: P) -> Result<P::Response> {
        self.propose_checked(proposal, 0).await
    }

    /// Proposes a client's request whose permissions were checked at auth revision
    /// `auth_revision` (`crate::auth::Authorized::stamp`).
    pub async fn propose_checked<P: Proposal>(
        &self,
        proposal: P,
        auth_revision: u64,
    ) -> Result<P::Response> {
        let id = self.ids.next();
        let data = RaftRequest {
            id,
            request: Some(proposal.into_request()),
            auth_revision,
        }
        .encode_to_vec();
        if data.len() > self.config.max_request_bytes {
            return Err(Error::RequestTooLarge);
        }
        let outcome = self.waits.register(id, self.epoch.load(Ordering::Acquire));
        if let Err(err) = self.mailbox.try_send(Msg::Propose { id, data }) {
            self.waits.cancel(id);
            return Err(mailbox_error(err));
        }
        let response = self.wait(id, outcome).await.inspect_err(|err| {
            if !matches!(err, Error::Store(_)) {
                metrics().proposals_failed.inc();
            }
        })?;
        Ok(P::unwrap(response)
            .expect("the apply dispatch answers each request with its own response kind"))
    }

    /// Proposes a raft configuration change for `member`; returns the members after it.
    pub async fn propose_conf_change(
        &self,
        kind: ConfChangeType,
        member: Member,
    ) -> Result<Vec<Member>> {
        let id = self.ids.next();
        let node_id = member.id;
        let context = MemberChange {
            id,
            member: Some(member),
        }
        .encode_to_vec();
        let mut change = ConfChangeV2::default();
        let mut single = raft::eraftpb::ConfChangeSingle::default();
        single.set_change_type(kind);
        single.node_id = node_id;
        change.mut_changes().push(single);
        let outcome = self.waits.register(id, wait::ANY_EPOCH);
        if let Err(err) = self.mailbox.try_send(Msg::ConfChange {
            id,
            change,
            context,
        }) {
            self.waits.cancel(id);
            return Err(mailbox_error(err));
        }
        match self.wait(id, outcome).await? {
            Response::Members(members) => Ok(members),
            other => unreachable!("a conf change is answered with members, not {other:?}"),
        }
    }

    /// Waits until this member has applied everything committed when the call was made
    /// (a ReadIndex round), so a local read after it is linearizable.
    pub async fn read_barrier(&self) -> Result<()> {
        let (reply, done) = oneshot::channel();
        match self.reads.push(reply) {
            Pushed::Queued => {}
            // A full mailbox means the driver has a turn coming: it takes the read then.
            Pushed::Wake => match self.mailbox.try_send(Msg::ReadsWaiting) {
                Ok(()) | Err(TrySendError::Full(_)) => {}
                Err(TrySendError::Closed(_)) => return Err(Error::Stopped),
            },
            Pushed::Full => return Err(Error::TooManyRequests),
            Pushed::Closed => return Err(Error::Stopped),
        }
        match tokio::time::timeout(self.config.request_timeout, done).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(Error::Stopped),
            Err(_) => Err(self.timeout_error()),
        }
    }

    /// Asks the leader (this member) to hand leadership to `target` and waits until it
    /// has.
    pub async fn transfer_leader(&self, target: u64) -> Result<()> {
        self.mailbox
            .try_send(Msg::TransferLeader(target))
            .map_err(mailbox_error)?;
        let mut status = self.watch_status();
        let moved = tokio::time::timeout(
            self.config.request_timeout,
            status.wait_for(|s| s.leader == target),
        )
        .await
        .map(|waited| waited.map(|_| ()));
        match moved {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Error::Stopped),
            Err(_) => Err(Error::Timeout),
        }
    }

    /// The leader's view of how far each member's log matches its own (empty on a
    /// follower).
    pub async fn progress(&self) -> Result<HashMap<u64, u64>> {
        let (reply, done) = oneshot::channel();
        self.mailbox
            .try_send(Msg::Progress { reply })
            .map_err(mailbox_error)?;
        done.await.map_err(|_| Error::Stopped)
    }

    fn timeout_error(&self) -> Error {
        if self.status().has_leader() {
            Error::Timeout
        } else {
            Error::NoLeader
        }
    }

    /// Stops the driver and waits for it; pending requests fail with "server stopped".
    /// It blocks, so it runs outside the runtime's workers (`spawn_blocking`).
    pub fn stop(&self) -> Result<()> {
        let Some(finished) = self.finished.lock().expect("node lock poisoned").take() else {
            return Ok(());
        };
        // A full mailbox still drains; block until the stop message fits.
        let _ = self.mailbox.blocking_send(Msg::Stop);
        match finished.recv() {
            Ok(result) => result,
            Err(_) => Err(Error::Fatal(
                "the raft driver ended without a result".into(),
            )),
        }
    }
}

fn mailbox_error<T>(err: TrySendError<T>) -> Error {
    match err {
        TrySendError::Full(_) => Error::TooManyRequests,
        TrySendError::Closed(_) => Error::Stopped,
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::mpsc::error::TryRecvError;

    use super::*;

    #[test]
    fn a_peer_batch_reaches_the_driver_as_one_mailbox_item_in_order() {
        let (mailbox, mut inbox) = channel(RAFT_MAILBOX_CAPACITY);
        let batch: Vec<RaftMessage> = (1..=3)
            .map(|index| RaftMessage {
                index,
                ..Default::default()
            })
            .collect();
        hand_off(&mailbox, batch);
        hand_off(&mailbox, Vec::new());
        let Ok(Msg::Raft(messages)) = inbox.try_recv() else {
            panic!("the batch is not in the mailbox");
        };
        let indexes: Vec<u64> = messages.iter().map(|m| m.index).collect();
        assert_eq!(indexes, [1, 2, 3]);
        assert!(matches!(inbox.try_recv(), Err(TryRecvError::Empty)));
    }
}
