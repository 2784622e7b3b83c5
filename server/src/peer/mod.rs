//! The peer transport: raft messages between members over gRPC.
//!
//! Outgoing, each peer has its own task and a bounded queue. The raft driver only ever
//! `try_send`s into a queue: a full queue drops the message (raft retransmits what
//! matters) and reports the peer unreachable, so a slow or dead peer never blocks the
//! driver or the other peers. The task batches what is queued onto one long-lived
//! stream and reconnects with backoff when it breaks.
//!
//! Incoming messages are the peer gRPC service's (`rpc::peer`), which steps them into
//! the local raft node after checking that they come from the same cluster.

pub(crate) mod admit;
pub(crate) mod snapshot;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ballast_proto::ballast::transport::raft_transport_client::RaftTransportClient;
use ballast_proto::ballast::transport::RaftBatch;
use ballast_proto::etcdserverpb::Member;
use protobuf::Message as _;
use raft::eraftpb::Message as RaftMessage;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use crate::limits::{PEER_BATCH_BYTES_MAX, PEER_MESSAGE_BYTES_MAX};
use crate::metrics::metrics;
use crate::tls::{peer_channel, PeerConnector};

/// Raft messages queued for one peer at most; more are dropped (raft retransmits).
pub const PEER_QUEUE_CAPACITY: usize = 4096;
/// Messages sent in one batch at most.
pub const PEER_BATCH_MESSAGES_MAX: usize = 256;
/// Batches in flight on a peer stream.
const PEER_STREAM_CAPACITY: usize = 16;
/// Wait before reconnecting to a peer; doubled up to the max.
const PEER_RECONNECT_MIN: Duration = Duration::from_millis(50);
const PEER_RECONNECT_MAX: Duration = Duration::from_secs(1);
/// Time to establish a peer connection.
const PEER_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// What a member answers a removed member's messages with; the removed member stops.
pub const MEMBER_REMOVED: &str = "the member has been permanently removed from the cluster";

struct Peer {
    urls: Vec<String>,
    queue: mpsc::Sender<Vec<u8>>,
    task: JoinHandle<()>,
    channel: Channel,
}

/// Outgoing raft traffic to every other member.
pub struct PeerTransport {
    /// TLS towards peers, when peer TLS is on.
    tls: Option<PeerConnector>,
    local_id: u64,
    cluster_id: u64,
    runtime: tokio::runtime::Handle,
    peers: Mutex<HashMap<u64, Peer>>,
    /// Peers whose messages could not be delivered; the driver tells raft.
    unreachable: Arc<Mutex<Vec<u64>>>,
    /// Test hook: peers whose traffic is dropped both ways (a simulated partition).
    blocked: Arc<Mutex<Vec<u64>>>,
    /// Snapshot deliveries finished since the driver last looked: (peer, delivered).
    snapshot_reports: Arc<Mutex<Vec<(u64, bool)>>>,
    /// Set when a peer refused our messages because we were removed from the cluster.
    removed: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for PeerTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let peers: Vec<u64> = self.lock().keys().copied().collect();
        f.debug_struct("PeerTransport")
            .field("peers", &peers)
            .finish()
    }
}

impl PeerTransport {
    pub fn new(
        local_id: u64,
        cluster_id: u64,
        runtime: tokio::runtime::Handle,
        tls: Option<PeerConnector>,
    ) -> Arc<PeerTransport> {
        Arc::new(PeerTransport {
            tls,
            local_id,
            cluster_id,
            runtime,
            peers: Mutex::new(HashMap::new()),
            unreachable: Arc::new(Mutex::new(Vec::new())),
            blocked: Arc::new(Mutex::new(Vec::new())),
            snapshot_reports: Arc::new(Mutex::new(Vec::new())),
            removed: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Peer>> {
        self.peers.lock().expect("peer map lock poisoned")
    }

    /// Starts, restarts or stops peer tasks to match `members`.
    pub fn update(&self, members: &[Member]) {
        // Channels start background tasks: enter the runtime, wherever the caller runs.
        let _runtime = self.runtime.enter();
        let mut peers = self.lock();
        peers.retain(|id, peer| {
            let keep = members
                .iter()
                .any(|m| m.id == *id && m.peer_urls == peer.urls);
            if !keep {
                peer.task.abort();
            }
            keep
        });
        for member in members.iter().filter(|m| m.id != self.local_id) {
            if peers.contains_key(&member.id) {
                continue;
            }
            let Some(channel) =
                peer_channel(&member.peer_urls, self.tls.as_ref(), PEER_CONNECT_TIMEOUT)
            else {
                tracing::warn!(member = member.id, urls = ?member.peer_urls, "member has no usable peer URL");
                continue;
            };
            let (queue, inbox) = mpsc::channel(PEER_QUEUE_CAPACITY);
            let sender = Sender {
                to: member.id,
                from: self.local_id,
                cluster_id: self.cluster_id,
                client: RaftTransportClient::new(channel.clone())
                    .max_encoding_message_size(PEER_MESSAGE_BYTES_MAX)
                    .max_decoding_message_size(PEER_MESSAGE_BYTES_MAX),
                unreachable: self.unreachable.clone(),
                removed: self.removed.clone(),
            };
            let task = self.runtime.spawn(sender.run(inbox));
            peers.insert(
                member.id,
                Peer {
                    urls: member.peer_urls.clone(),
                    queue,
                    task,
                    channel,
                },
            );
        }
    }

    /// Queues raft messages for their peers; never blocks.
    pub fn send(&self, messages: Vec<RaftMessage>) {
        if messages.is_empty() {
            return;
        }
        let blocked = self.blocked.lock().expect("blocked lock poisoned").clone();
        let peers = self.lock();
        for message in messages {
            let to = message.to;
            if blocked.contains(&to) {
                continue;
            }
            let Some(peer) = peers.get(&to) else {
                tracing::debug!(to, "raft message to an unknown peer dropped");
                continue;
            };
            let bytes = match message.write_to_bytes() {
                Ok(bytes) => bytes,
                Err(err) => {
                    tracing::error!(%err, "cannot encode a raft message");
                    continue;
                }
            };
            if peer.queue.try_send(bytes).is_err() {
                self.report_unreachable(to);
            }
        }
    }

    fn report_unreachable(&self, peer: u64) {
        let mut unreachable = self.unreachable.lock().expect("unreachable lock poisoned");
        if !unreachable.contains(&peer) {
            unreachable.push(peer);
        }
    }

    /// True once a peer said this member was removed from the cluster.
    pub fn told_removed(&self) -> bool {
        self.removed.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Peers found unreachable since the last call.
    pub fn take_unreachable(&self) -> Vec<u64> {
        std::mem::take(&mut *self.unreachable.lock().expect("unreachable lock poisoned"))
    }

    /// Streams the snapshot of a MsgSnapshot to its peer in the background; the outcome
    /// shows up in [`PeerTransport::take_snapshot_reports`].
    pub fn send_snapshot(&self, message: RaftMessage, snap_dir: std::path::PathBuf) {
        let to = message.to;
        let reports = self.snapshot_reports.clone();
        if self
            .blocked
            .lock()
            .expect("blocked lock poisoned")
            .contains(&to)
        {
            reports
                .lock()
                .expect("reports lock poisoned")
                .push((to, false));
            return;
        }
        let Some(client) = self.client(to) else {
            reports
                .lock()
                .expect("reports lock poisoned")
                .push((to, false));
            return;
        };
        let (from, cluster_id) = (self.local_id, self.cluster_id);
        self.runtime.spawn(async move {
            let delivered = snapshot::send(client, from, cluster_id, message, snap_dir).await;
            if let Err(err) = &delivered {
                tracing::warn!(peer = format!("{to:x}"), %err, "sending a snapshot failed");
            } else {
                tracing::info!(peer = format!("{to:x}"), "snapshot sent");
            }
            reports
                .lock()
                .expect("reports lock poisoned")
                .push((to, delivered.is_ok()));
        });
    }

    /// Snapshot deliveries finished since the last call: (peer, delivered).
    pub fn take_snapshot_reports(&self) -> Vec<(u64, bool)> {
        std::mem::take(&mut *self.snapshot_reports.lock().expect("reports lock poisoned"))
    }

    /// A client for calls to one peer (lease forwarding, snapshots).
    pub fn client(&self, peer: u64) -> Option<RaftTransportClient<Channel>> {
        self.lock().get(&peer).map(|p| {
            RaftTransportClient::new(p.channel.clone())
                .max_encoding_message_size(PEER_MESSAGE_BYTES_MAX)
                .max_decoding_message_size(PEER_MESSAGE_BYTES_MAX)
        })
    }

    /// Test hook: drop all traffic to and from `peer` while `on`.
    pub fn set_blocked(&self, peer: u64, on: bool) {
        let mut blocked = self.blocked.lock().expect("blocked lock poisoned");
        blocked.retain(|p| *p != peer);
        if on {
            blocked.push(peer);
        }
    }

    /// True if traffic from `peer` must be dropped (test hook).
    pub fn is_blocked(&self, peer: u64) -> bool {
        self.blocked
            .lock()
            .expect("blocked lock poisoned")
            .contains(&peer)
    }

    /// Stops every peer task.
    pub fn close(&self) {
        for (_, peer) in self.lock().drain() {
            peer.task.abort();
        }
    }
}

/// The task that feeds one peer.
struct Sender {
    to: u64,
    from: u64,
    cluster_id: u64,
    client: RaftTransportClient<Channel>,
    unreachable: Arc<Mutex<Vec<u64>>>,
    removed: Arc<std::sync::atomic::AtomicBool>,
}

impl Sender {
    async fn run(self, mut queue: mpsc::Receiver<Vec<u8>>) {
        let mut backoff = PEER_RECONNECT_MIN;
        loop {
            let (stream, outbound) = mpsc::channel(PEER_STREAM_CAPACITY);
            let mut client = self.client.clone();
            let call = client.send(ReceiverStream::new(outbound));
            tokio::pin!(call);
            let mut delivered = false;
            loop {
                tokio::select! {
                    ended = &mut call => {
                        if let Err(status) = ended {
                            if status.message() == MEMBER_REMOVED {
                                self.removed.store(true, std::sync::atomic::Ordering::Release);
                            }
                            tracing::debug!(peer = self.to, %status, "peer stream ended");
                        }
                        break;
                    }
                    first = queue.recv() => {
                        let Some(first) = first else { return };
                        let batch = self.batch(first, &mut queue);
                        if stream.send(batch).await.is_err() {
                            break;
                        }
                        delivered = true;
                    }
                }
            }
            self.unreachable
                .lock()
                .expect("unreachable lock poisoned")
                .push(self.to);
            if delivered {
                backoff = PEER_RECONNECT_MIN;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(PEER_RECONNECT_MAX);
        }
    }

    /// `first` and whatever else is queued, within the batch limits.
    fn batch(&self, first: Vec<u8>, queue: &mut mpsc::Receiver<Vec<u8>>) -> RaftBatch {
        let mut bytes = first.len();
        let mut messages = vec![first.into()];
        while messages.len() < PEER_BATCH_MESSAGES_MAX && bytes < PEER_BATCH_BYTES_MAX {
            match queue.try_recv() {
                Ok(next) => {
                    bytes += next.len();
                    messages.push(next.into());
                }
                Err(_) => break,
            }
        }
        metrics()
            .peer_sent
            .with_label_values(&[format!("{:x}", self.to).as_str()])
            .inc_by(bytes as u64);
        RaftBatch {
            from: self.from,
            cluster_id: self.cluster_id,
            messages,
        }
    }
}
