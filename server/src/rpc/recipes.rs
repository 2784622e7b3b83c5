//! What the Lock and Election services share: etcd's concurrency recipes run inside the
//! member, with the caller's permissions. A waiter or candidate owns the key
//! `<name>/<lease in hex>` under its lease; the key with the lowest create revision holds
//! the lock or leads, and each waits for the keys created before its own to be deleted
//! (etcd's `waitDeletes`), watching only the one just before it.

use std::sync::Arc;

use ballast_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use ballast_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use ballast_proto::etcdserverpb::request_op::Request as Op;
use ballast_proto::etcdserverpb::response_op::Response as OpResponse;
use ballast_proto::etcdserverpb::{
    Compare, DeleteRangeRequest, DeleteRangeResponse, RangeRequest, RangeResponse, RequestOp,
    ResponseHeader, TxnRequest, TxnResponse,
};
use ballast_proto::mvccpb::{event::EventType, KeyValue};
use ballast_store::mvcc::txn::{check_range, check_txn};
use ballast_store::watch::{Filter, SinkError, WatchMessage, WatchSink};
use ballast_store::{KeyRange, Store};
use bytes::Bytes;
use tokio::sync::mpsc;
use tonic::Status;

use crate::auth::Authorized;
use crate::error::Error;
use crate::node::Node;

/// Watch messages queued for one wait; a full queue makes the hub catch the wait up
/// from history later, so nothing is lost.
const WAIT_QUEUE_CAPACITY: usize = 16;

/// `<name>/<lease in lowercase hex>`, as etcd's Go client names it.
pub(crate) fn own_key(name: &[u8], lease: i64) -> Bytes {
    let mut key = name.to_vec();
    key.push(b'/');
    key.extend_from_slice(format!("{lease:x}").as_bytes());
    Bytes::from(key)
}

/// `<name>/`: the prefix every key of a lock or an election starts with.
pub(crate) fn prefix(name: &[u8]) -> Bytes {
    let mut prefix = name.to_vec();
    prefix.push(b'/');
    Bytes::from(prefix)
}

/// The end of the range of keys starting with `prefix`.
pub(crate) fn prefix_end(prefix: &[u8]) -> Bytes {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Bytes::from(end);
        }
    }
    Bytes::from_static(b"\0")
}

pub(crate) fn put_op(key: Bytes, value: Bytes, lease: i64) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestPut(ballast_proto::etcdserverpb::PutRequest {
            key,
            value,
            lease,
            ..Default::default()
        })),
    }
}

pub(crate) fn get_op(key: Bytes) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestRange(RangeRequest {
            key,
            ..Default::default()
        })),
    }
}

/// A compare of `key`'s create revision with `revision` (0: the key does not exist).
pub(crate) fn created_at(key: Bytes, revision: i64) -> Compare {
    Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Create as i32,
        key,
        target_union: Some(TargetUnion::CreateRevision(revision)),
        ..Default::default()
    }
}

/// The first key created under `prefix` (the holder or leader), as a range request.
pub(crate) fn first_created(prefix: Bytes) -> RangeRequest {
    RangeRequest {
        range_end: prefix_end(&prefix),
        key: prefix,
        limit: 1,
        sort_order: SortOrder::Ascend as i32,
        sort_target: SortTarget::Create as i32,
        ..Default::default()
    }
}

/// The kvs of a txn's `i`th response, if it is a range.
pub(crate) fn range_kvs(resp: &TxnResponse, i: usize) -> &[KeyValue] {
    match resp.responses.get(i).and_then(|r| r.response.as_ref()) {
        Some(OpResponse::ResponseRange(range)) => &range.kvs,
        _ => &[],
    }
}

/// The KV operations of a recipe, made as the caller with the caller's permissions.
pub(crate) struct Recipe<'a> {
    pub(crate) node: &'a Arc<Node>,
    pub(crate) who: &'a Authorized,
}

impl Recipe<'_> {
    pub(crate) async fn txn(&self, req: TxnRequest) -> Result<TxnResponse, Status> {
        check_txn(&req, self.node.config.max_txn_ops).map_err(Error::Store)?;
        self.who.txn(&req, &self.node.store)?;
        let mut resp = self.node.raft.propose_checked(req, self.who.stamp).await?;
        self.node.complete(&mut resp.header);
        Ok(resp)
    }

    /// A linearizable range.
    pub(crate) async fn range(&self, req: RangeRequest) -> Result<RangeResponse, Status> {
        check_range(&req).map_err(Error::Store)?;
        self.who.range(&req)?;
        self.node.raft.read_barrier().await?;
        let mut resp = self.node.store.range(&req).map_err(Error::Store)?;
        self.node.complete(&mut resp.header);
        Ok(resp)
    }

    pub(crate) async fn delete(&self, key: Bytes) -> Result<DeleteRangeResponse, Status> {
        let req = DeleteRangeRequest {
            key,
            ..Default::default()
        };
        self.who.delete(&req)?;
        let mut resp = self.node.raft.propose_checked(req, self.who.stamp).await?;
        self.node.complete(&mut resp.header);
        Ok(resp)
    }

    /// Waits until no key under `prefix` created at or before `max_create` is left:
    /// each time for the last of them to be deleted (etcd's `waitDeletes`).
    pub(crate) async fn wait_deletes(
        &self,
        prefix: Bytes,
        max_create: i64,
    ) -> Result<ResponseHeader, Status> {
        loop {
            let resp = self
                .range(RangeRequest {
                    range_end: prefix_end(&prefix),
                    key: prefix.clone(),
                    limit: 1,
                    sort_order: SortOrder::Descend as i32,
                    sort_target: SortTarget::Create as i32,
                    max_create_revision: max_create,
                    ..Default::default()
                })
                .await?;
            let header = resp.header.unwrap_or_default();
            let Some(last) = resp.kvs.first() else {
                return Ok(header);
            };
            let range = KeyRange::single(last.key.clone());
            self.who.watch(&last.key, &[])?;
            wait_for(self.node, range, header.revision, |event| {
                event.r#type == EventType::Delete as i32
            })
            .await?;
        }
    }
}

/// A key a waiter or candidate holds while it waits: if the wait ends without success
/// (the caller went away, an error), the key is removed, as etcd's recipes do on a
/// cancelled context. The removal is the member's own proposal: the caller is gone.
pub(crate) struct Abandoned {
    node: Option<Arc<Node>>,
    key: Bytes,
    /// Removed only if still created at this revision (0: whatever it is).
    created: i64,
}

impl Abandoned {
    pub(crate) fn delete(node: Arc<Node>, key: Bytes) -> Abandoned {
        Abandoned::delete_if_created(node, key, 0)
    }

    pub(crate) fn delete_if_created(node: Arc<Node>, key: Bytes, created: i64) -> Abandoned {
        Abandoned {
            node: Some(node),
            key,
            created,
        }
    }

    /// The wait succeeded: the key stays.
    pub(crate) fn disarm(mut self) {
        self.node = None;
    }
}

impl Drop for Abandoned {
    fn drop(&mut self) {
        let Some(node) = self.node.take() else {
            return;
        };
        let delete = RequestOp {
            request: Some(Op::RequestDeleteRange(DeleteRangeRequest {
                key: self.key.clone(),
                ..Default::default()
            })),
        };
        let txn = TxnRequest {
            compare: if self.created > 0 {
                vec![created_at(self.key.clone(), self.created)]
            } else {
                Vec::new()
            },
            success: vec![delete],
            failure: Vec::new(),
        };
        let tasks = node.tasks.clone();
        tasks.spawn(async move {
            if let Err(err) = node.raft.propose(txn).await {
                tracing::debug!(%err, "removing an abandoned lock or campaign key failed");
            }
        });
    }
}

/// Waits for the first event at or after `from` in `range` that `wanted` accepts.
pub(crate) async fn wait_for(
    node: &Node,
    range: KeyRange,
    from: i64,
    wanted: impl Fn(&ballast_proto::mvccpb::Event) -> bool,
) -> Result<(), Status> {
    let mut events = Waiter::open(&node.store, range, from).await;
    loop {
        let message = tokio::select! {
            _ = node.shutdown.cancelled() => return Err(Error::Stopped.into()),
            message = events.queue.recv() => message,
        };
        match message {
            Some(WatchMessage::Events { events, .. }) if events.iter().any(&wanted) => {
                return Ok(())
            }
            Some(WatchMessage::Compacted { .. }) => {
                return Err(Error::Store(ballast_store::Error::Compacted).into())
            }
            Some(_) => {}
            None => return Err(Error::Stopped.into()),
        }
    }
}

/// A watch inside the member: one hub stream with one watcher, closed when dropped.
pub(crate) struct Waiter {
    store: Arc<Store>,
    stream: ballast_store::watch::StreamId,
    pub(crate) queue: mpsc::Receiver<WatchMessage>,
}

struct QueueSink(mpsc::Sender<WatchMessage>);

impl WatchSink for QueueSink {
    fn try_send(&self, message: WatchMessage) -> Result<(), SinkError> {
        self.0.try_send(message).map_err(|err| match err {
            mpsc::error::TrySendError::Full(_) => SinkError::Full,
            mpsc::error::TrySendError::Closed(_) => SinkError::Closed,
        })
    }

    fn has_room(&self) -> bool {
        self.0.capacity() > 0
    }
}

impl Waiter {
    /// Watches `range` from revision `from` on.
    pub(crate) async fn open(store: &Arc<Store>, range: KeyRange, from: i64) -> Waiter {
        let (sender, queue) = mpsc::channel(WAIT_QUEUE_CAPACITY);
        let hub = store.watch_hub();
        let stream = hub.open_stream(Arc::new(QueueSink(sender)));
        let filter = Filter {
            range,
            no_put: false,
            no_delete: false,
            prev_kv: false,
        };
        let (watcher, _) = hub.watch(stream, 1, filter, from);
        let activating = store.clone();
        // Catching up from history reads the store: off the async workers.
        let _ = tokio::task::spawn_blocking(move || activating.watch_activate(watcher)).await;
        Waiter {
            store: store.clone(),
            stream,
            queue,
        }
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        self.store.watch_hub().close_stream(self.stream);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_as_etcds_go_client_names_them() {
        assert_eq!(
            own_key(b"mylock", 0x2e6a21e15b7e6f5),
            "mylock/2e6a21e15b7e6f5"
        );
        assert_eq!(prefix(b"e"), "e/");
        assert_eq!(prefix_end(b"e/"), "e0");
        assert_eq!(prefix_end(b"a\xff"), "b");
        assert_eq!(prefix_end(b"\xff"), "\0");
    }
}
