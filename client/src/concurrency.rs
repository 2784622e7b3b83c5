//! etcd's concurrency recipes over KV, Lease and Watch: sessions, mutexes and elections.
//!
//! Keys are laid out exactly as etcd's Go client (`clientv3/concurrency`) lays them
//! out, so these interoperate with `etcdctl lock` and `etcdctl elect` and with any Go
//! program using the same names: a waiter or candidate writes `<name>/<lease id in hex>`
//! under its session lease; the key with the lowest create revision holds the lock or
//! leads. Each waits only for the key just before its own to go away.
//!
//! A lock is only as safe as its lease: a holder that stalls past the TTL loses it while
//! still believing it holds it. Fence writes with [`Mutex::is_owner`] (a compare on the
//! owner key's create revision) inside the same transaction.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::kv::{DeleteOptions, GetOptions, PutOptions, SortOrder, SortTarget};
use crate::lease::{KeepAlive, LeaseState};
use crate::txn::{Compare, CompareOp, Txn, TxnOp, TxnOpResponse};
use crate::types::{EventKind, Header, KeyValue};
use crate::watch::WatchOptions;

/// The TTL of a session's lease when none is given, in seconds (as etcd's Go client).
pub const SESSION_TTL_DEFAULT: i64 = 60;
/// Leader changes buffered for an observer.
const OBSERVE_QUEUE_CAPACITY: usize = 16;

/// A lease kept alive in the background: what locks and campaigns hang on. When the
/// session ends (dropped, closed, or its lease lost) its locks and leadership end too.
#[derive(Debug)]
pub struct Session {
    client: Client,
    keep_alive: KeepAlive,
}

impl Session {
    /// Grants a lease of `ttl` seconds and keeps it alive.
    pub async fn new(client: &Client, ttl: i64) -> Result<Session> {
        let lease = client.lease_grant(ttl, 0).await?;
        let keep_alive = client.lease_keep_alive(lease.id).await?;
        Ok(Session {
            client: client.clone(),
            keep_alive,
        })
    }

    /// The session's lease id.
    pub fn lease(&self) -> i64 {
        self.keep_alive.id()
    }

    /// The client the session uses.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// False once the lease is known to be lost.
    pub fn is_alive(&self) -> bool {
        self.keep_alive.state() != LeaseState::Lost
    }

    /// Ends the session: revokes its lease, which releases its locks and leadership.
    pub async fn close(self) -> Result<()> {
        let lease = self.lease();
        drop(self.keep_alive);
        self.client.lease_revoke(lease).await.map(|_| ())
    }
}

/// `<prefix><lease id in lowercase hex>`, as Go's `fmt.Sprintf("%s%x", ...)`.
fn own_key(prefix: &[u8], lease: i64) -> Bytes {
    let mut key = prefix.to_vec();
    key.extend_from_slice(format!("{lease:x}").as_bytes());
    Bytes::from(key)
}

fn prefix_of(name: impl AsRef<[u8]>) -> Bytes {
    let mut prefix = name.as_ref().to_vec();
    prefix.push(b'/');
    Bytes::from(prefix)
}

/// The oldest key under `prefix`: the lock holder or the leader.
fn first_created() -> GetOptions {
    GetOptions::new()
        .with_prefix()
        .with_sort(SortTarget::Create, SortOrder::Ascend)
        .with_limit(1)
}

/// Waits until no key under `prefix` created at or below `max_create_revision` remains:
/// everyone ahead of us has gone.
async fn wait_deletes(client: &Client, prefix: &[u8], max_create_revision: i64) -> Result<Header> {
    loop {
        let newest_ahead = client
            .get(
                prefix,
                GetOptions::new()
                    .with_prefix()
                    .with_sort(SortTarget::Create, SortOrder::Descend)
                    .with_limit(1)
                    .with_max_create_revision(max_create_revision),
            )
            .await?;
        let Some(ahead) = newest_ahead.kvs.first() else {
            return Ok(newest_ahead.header);
        };
        wait_delete(client, &ahead.key, newest_ahead.header.revision).await?;
    }
}

/// Waits for `key` to be deleted, looking from `revision` on.
async fn wait_delete(client: &Client, key: &[u8], revision: i64) -> Result<()> {
    let (_watcher, mut events) = client
        .watch(key, WatchOptions::new().with_start_revision(revision))
        .await?;
    while let Some(response) = events.message().await? {
        if response.events.iter().any(|e| e.kind == EventKind::Delete) {
            return Ok(());
        }
    }
    Err(Error::StreamClosed)
}

/// A distributed lock (etcd's `concurrency.Mutex`).
#[derive(Debug, Clone)]
pub struct Mutex {
    client: Client,
    lease: i64,
    prefix: Bytes,
    key: Bytes,
    revision: i64,
}

impl Mutex {
    /// The lock called `name`, held through `session`.
    pub fn new(session: &Session, name: impl AsRef<[u8]>) -> Mutex {
        let prefix = prefix_of(name);
        Mutex {
            client: session.client.clone(),
            lease: session.lease(),
            key: own_key(&prefix, session.lease()),
            prefix,
            revision: 0,
        }
    }

    /// Queues for the lock (or finds this session already queued); returns whether it
    /// is held now.
    async fn enqueue(&mut self) -> Result<bool> {
        let response = self
            .client
            .txn(
                Txn::new()
                    .when([Compare::create_revision(&self.key, CompareOp::Equal, 0)])
                    .and_then([
                        TxnOp::put(&self.key, "", PutOptions::new().with_lease(self.lease)),
                        TxnOp::get(&self.prefix, first_created()),
                    ])
                    .or_else([
                        TxnOp::get(&self.key, GetOptions::new()),
                        TxnOp::get(&self.prefix, first_created()),
                    ]),
            )
            .await?;
        self.revision = response.header.revision;
        if !response.succeeded {
            if let Some(TxnOpResponse::Get(own)) = response.responses.first() {
                self.revision = own
                    .kvs
                    .first()
                    .map_or(self.revision, |kv| kv.create_revision);
            }
        }
        let holder = match response.responses.get(1) {
            Some(TxnOpResponse::Get(owner)) => owner.kvs.first().map(|kv| kv.create_revision),
            _ => None,
        };
        Ok(holder.is_none_or(|revision| revision == self.revision))
    }

    /// Takes the lock, waiting as long as it takes. Fails if the session's lease is lost
    /// meanwhile.
    pub async fn lock(&mut self) -> Result<()> {
        if self.enqueue().await? {
            return Ok(());
        }
        if let Err(err) = wait_deletes(&self.client, &self.prefix, self.revision - 1).await {
            let _ = self.unlock().await;
            return Err(err);
        }
        // The session may have expired while we waited: then our key is gone.
        let own = self.client.get(&self.key, GetOptions::new()).await?;
        if own.kvs.is_empty() {
            return Err(Error::SessionExpired);
        }
        Ok(())
    }

    /// Takes the lock if it is free; false (and no place in the queue) if it is held.
    pub async fn try_lock(&mut self) -> Result<bool> {
        if self.enqueue().await? {
            return Ok(true);
        }
        self.unlock().await?;
        Ok(false)
    }

    /// Releases the lock (or leaves the queue). [`Mutex::is_owner`] fails from then on:
    /// the key it compares is gone.
    pub async fn unlock(&mut self) -> Result<()> {
        self.client.delete(&self.key, DeleteOptions::new()).await?;
        Ok(())
    }

    /// The key that exists while this session holds or waits for the lock.
    pub fn key(&self) -> &Bytes {
        &self.key
    }

    /// The fencing revision: the create revision of [`Mutex::key`]. It only grows from
    /// one holder to the next.
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// A compare that holds only while this session holds the lock, to guard writes.
    /// Never true before the first [`Mutex::lock`].
    pub fn is_owner(&self) -> Compare {
        // Revision -1 matches nothing, not even a missing key (which compares as 0).
        let revision = if self.revision == 0 {
            -1
        } else {
            self.revision
        };
        Compare::create_revision(&self.key, CompareOp::Equal, revision)
    }
}

/// Proof of leadership in an election: compare on `key`'s create revision to fence
/// writes on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderKey {
    /// The election's name.
    pub name: Bytes,
    /// The leader's key, `<name>/<lease hex>`.
    pub key: Bytes,
    /// The create revision of `key`.
    pub revision: i64,
    /// The leader's lease.
    pub lease: i64,
}

/// A leader election (etcd's `concurrency.Election`).
#[derive(Debug, Clone)]
pub struct Election {
    client: Client,
    lease: i64,
    name: Bytes,
    prefix: Bytes,
    leader: Option<LeaderKey>,
}

impl Election {
    /// The election called `name`, campaigned for through `session`.
    pub fn new(session: &Session, name: impl AsRef<[u8]>) -> Election {
        Election {
            client: session.client.clone(),
            lease: session.lease(),
            name: Bytes::copy_from_slice(name.as_ref()),
            prefix: prefix_of(name),
            leader: None,
        }
    }

    /// Becomes leader with `value`, waiting for every earlier candidate to go.
    pub async fn campaign(&mut self, value: impl AsRef<[u8]>) -> Result<LeaderKey> {
        let key = own_key(&self.prefix, self.lease);
        let response = self
            .client
            .txn(
                Txn::new()
                    .when([Compare::create_revision(&key, CompareOp::Equal, 0)])
                    .and_then([TxnOp::put(
                        &key,
                        &value,
                        PutOptions::new().with_lease(self.lease),
                    )])
                    .or_else([TxnOp::get(&key, GetOptions::new())]),
            )
            .await?;
        let mut revision = response.header.revision;
        let mut stale_value = false;
        if !response.succeeded {
            if let Some(TxnOpResponse::Get(existing)) = response.responses.first() {
                if let Some(kv) = existing.kvs.first() {
                    revision = kv.create_revision;
                    stale_value = kv.value[..] != *value.as_ref();
                }
            }
        }
        self.leader = Some(LeaderKey {
            name: self.name.clone(),
            key,
            revision,
            lease: self.lease,
        });
        if stale_value {
            if let Err(err) = self.proclaim(&value).await {
                let _ = self.resign().await;
                return Err(err);
            }
        }
        if let Err(err) = wait_deletes(&self.client, &self.prefix, revision - 1).await {
            let _ = self.resign().await;
            return Err(err);
        }
        Ok(self.leader.clone().expect("set above"))
    }

    /// Replaces the leader's value; fails with [`Error::NotLeader`] if this is not the
    /// leader any more.
    pub async fn proclaim(&mut self, value: impl AsRef<[u8]>) -> Result<()> {
        let Some(leader) = &self.leader else {
            return Err(Error::NotLeader);
        };
        let response = self
            .client
            .txn(
                Txn::new()
                    .when([Compare::create_revision(
                        &leader.key,
                        CompareOp::Equal,
                        leader.revision,
                    )])
                    .and_then([TxnOp::put(
                        &leader.key,
                        value,
                        PutOptions::new().with_lease(leader.lease),
                    )]),
            )
            .await?;
        if !response.succeeded {
            self.leader = None;
            return Err(Error::NotLeader);
        }
        Ok(())
    }

    /// Gives up leadership (or candidacy).
    pub async fn resign(&mut self) -> Result<()> {
        let Some(leader) = self.leader.take() else {
            return Ok(());
        };
        self.client
            .txn(
                Txn::new()
                    .when([Compare::create_revision(
                        &leader.key,
                        CompareOp::Equal,
                        leader.revision,
                    )])
                    .and_then([TxnOp::delete(&leader.key, DeleteOptions::new())]),
            )
            .await?;
        Ok(())
    }

    /// The current leader's key and value, if there is a leader.
    pub async fn leader(&self) -> Result<Option<KeyValue>> {
        let response = self.client.get(&self.prefix, first_created()).await?;
        Ok(response.kvs.into_iter().next())
    }

    /// Every proclamation of every leader, in order, as they happen.
    pub fn observe(&self) -> Observer {
        let (tx, rx) = mpsc::channel(OBSERVE_QUEUE_CAPACITY);
        let task = tokio::spawn(observe(self.client.clone(), self.prefix.clone(), tx));
        Observer { rx, task }
    }
}

/// The stream of an election's leaders and their values; see [`Election::observe`].
#[derive(Debug)]
pub struct Observer {
    rx: mpsc::Receiver<Result<KeyValue>>,
    task: JoinHandle<()>,
}

impl Stream for Observer {
    type Item = Result<KeyValue>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn observe(client: Client, prefix: Bytes, tx: mpsc::Sender<Result<KeyValue>>) {
    if let Err(err) = observe_leaders(&client, &prefix, &tx).await {
        let _ = tx.send(Err(err)).await;
    }
}

async fn observe_leaders(
    client: &Client,
    prefix: &Bytes,
    tx: &mpsc::Sender<Result<KeyValue>>,
) -> Result<()> {
    loop {
        let current = client.get(prefix, first_created()).await?;
        let (leader, revision) = match current.kvs.into_iter().next() {
            Some(kv) => (kv, current.header.revision),
            None => {
                // No leader: wait for the first candidate to appear.
                let (_w, mut events) = client
                    .watch(
                        prefix,
                        WatchOptions::new()
                            .with_prefix()
                            .with_start_revision(current.header.revision),
                    )
                    .await?;
                loop {
                    let response = events.message().await?.ok_or(Error::StreamClosed)?;
                    if let Some(put) = response
                        .events
                        .into_iter()
                        .find(|e| e.kind == EventKind::Put)
                    {
                        let revision = put.kv.mod_revision;
                        break (put.kv, revision);
                    }
                }
            }
        };
        if tx.send(Ok(leader.clone())).await.is_err() {
            return Ok(());
        }
        // Follow this leader's proclamations until its key goes.
        let (_w, mut events) = client
            .watch(
                &leader.key,
                WatchOptions::new().with_start_revision(revision + 1),
            )
            .await?;
        'leader: loop {
            let response = events.message().await?.ok_or(Error::StreamClosed)?;
            for event in response.events {
                if event.kind == EventKind::Delete {
                    break 'leader;
                }
                if tx.send(Ok(event.kv)).await.is_err() {
                    return Ok(());
                }
            }
        }
    }
}
