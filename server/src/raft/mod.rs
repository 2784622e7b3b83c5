//! The raft node: one thread owns raft-rs's `RawNode` and the write path of the store.
//!
//! Clients reach it through the [`Node`] handle: a proposal is registered in the wait
//! registry by request id, handed to the driver through a bounded mailbox, committed
//! through raft, applied to the store by the driver, and its outcome handed back by id.
//! A linearizable read asks the driver for a ReadIndex barrier and reads locally once
//! the store has applied up to it.

mod driver;
mod logger;
mod reads;
pub mod wait;

use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use ballast_proto::ballast::internal::raft_request::Request;
use ballast_proto::ballast::internal::RaftRequest;
use ballast_store::{LogStore, Response, Store};
use prost::Message as _;
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::idgen::IdGenerator;
use crate::lessor::Lessor;
use wait::WaitRegistry;

/// Messages the driver's mailbox holds at most. A full mailbox refuses new requests with
/// etcd's "too many requests" instead of queueing without bound.
pub const RAFT_MAILBOX_CAPACITY: usize = 4096;

/// What the node needs to know from the configuration.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub id: u64,
    pub heartbeat_interval: Duration,
    pub election_ticks: usize,
    pub request_timeout: Duration,
    pub max_request_bytes: usize,
    /// Applied entries kept in the raft log before it is truncated.
    pub snapshot_count: u64,
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
    Propose { id: u64, data: Vec<u8> },
    Read { reply: oneshot::Sender<Result<()>> },
    Stop,
}

/// Handle to the raft node.
pub struct Node {
    config: NodeConfig,
    mailbox: SyncSender<Msg>,
    waits: Arc<WaitRegistry>,
    ids: IdGenerator,
    status: watch::Receiver<RaftStatus>,
    thread: Mutex<Option<JoinHandle<Result<()>>>>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("config", &self.config)
            .field("status", &*self.status.borrow())
            .finish()
    }
}

impl Node {
    /// Starts the driver thread. If the driver fails, it cancels `fatal` so the server
    /// shuts down instead of serving from a store that stopped applying.
    pub fn start(
        config: NodeConfig,
        store: Arc<Store>,
        log: LogStore,
        lessor: Arc<Lessor>,
        fatal: CancellationToken,
    ) -> Result<Arc<Node>> {
        let (mailbox, inbox) = sync_channel(RAFT_MAILBOX_CAPACITY);
        let waits = Arc::new(WaitRegistry::default());
        let (status_tx, status) = watch::channel(RaftStatus {
            id: config.id,
            ..Default::default()
        });
        let driver =
            driver::Driver::new(&config, store, log, lessor, waits.clone(), inbox, status_tx)?;
        let thread = std::thread::Builder::new()
            .name("raft".into())
            .spawn(move || {
                let result = driver.run();
                if let Err(err) = &result {
                    tracing::error!(%err, "raft driver failed; shutting down");
                    fatal.cancel();
                }
                result
            })?;
        Ok(Arc::new(Node {
            ids: IdGenerator::new(config.id),
            config,
            mailbox,
            waits,
            status,
            thread: Mutex::new(Some(thread)),
        }))
    }

    pub fn id(&self) -> u64 {
        self.config.id
    }

    pub fn status(&self) -> RaftStatus {
        self.status.borrow().clone()
    }

    /// A receiver that sees every status change (leader, term, indexes).
    pub fn watch_status(&self) -> watch::Receiver<RaftStatus> {
        self.status.clone()
    }

    pub fn ids(&self) -> &IdGenerator {
        &self.ids
    }

    /// Proposes a request and waits until it is applied; returns the outcome.
    pub async fn propose(&self, request: Request) -> Result<Response> {
        let id = self.ids.next();
        let data = RaftRequest {
            id,
            request: Some(request),
        }
        .encode_to_vec();
        if data.len() > self.config.max_request_bytes {
            return Err(Error::RequestTooLarge);
        }
        let outcome = self.waits.register(id);
        if let Err(err) = self.mailbox.try_send(Msg::Propose { id, data }) {
            self.waits.cancel(id);
            return Err(mailbox_error(err));
        }
        match tokio::time::timeout(self.config.request_timeout, outcome).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(Error::Stopped),
            Err(_) => {
                self.waits.cancel(id);
                Err(self.timeout_error())
            }
        }
    }

    /// Waits until this member has applied everything committed when the call was made
    /// (a ReadIndex round), so a local read after it is linearizable.
    pub async fn read_barrier(&self) -> Result<()> {
        let (reply, done) = oneshot::channel();
        self.mailbox
            .try_send(Msg::Read { reply })
            .map_err(mailbox_error)?;
        match tokio::time::timeout(self.config.request_timeout, done).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(Error::Stopped),
            Err(_) => Err(self.timeout_error()),
        }
    }

    fn timeout_error(&self) -> Error {
        if self.status().has_leader() {
            Error::Timeout
        } else {
            Error::NoLeader
        }
    }

    /// Stops the driver and waits for it; pending requests fail with "server stopped".
    pub fn stop(&self) -> Result<()> {
        let Some(thread) = self.thread.lock().expect("node lock poisoned").take() else {
            return Ok(());
        };
        // A full mailbox still drains; block until the stop message fits.
        let _ = self.mailbox.send(Msg::Stop);
        match thread.join() {
            Ok(result) => result,
            Err(_) => Err(Error::Fatal("raft driver panicked".into())),
        }
    }
}

fn mailbox_error<T>(err: TrySendError<T>) -> Error {
    match err {
        TrySendError::Full(_) => Error::TooManyRequests,
        TrySendError::Disconnected(_) => Error::Stopped,
    }
}
