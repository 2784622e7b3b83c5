//! Watch: one task per client stream owns that stream's watchers.
//!
//! The task reads create/cancel/progress requests, writes control responses straight to
//! the client, and forwards what the store's watch hub sends for its watchers. A new
//! watcher's `created` response is written before the watcher is activated in the hub,
//! so it always precedes the watcher's events.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ballast_proto::etcdserverpb::watch_request::RequestUnion;
use ballast_proto::etcdserverpb::watch_server::Watch;
use ballast_proto::etcdserverpb::{WatchCreateRequest, WatchRequest, WatchResponse};
use ballast_store::watch::{
    Filter, SinkError, StreamId, WatchMessage, WatchSink, WatcherId, WATCH_RESPONSE_BYTES_MAX,
};
use ballast_store::KeyRange;
use prost::Message as _;
use tokio::sync::mpsc;
use tokio::time::{interval_at, Instant, MissedTickBehavior};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt as _;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status, Streaming};

use super::status::{go_code_name, DUPLICATE_WATCH_ID};
use crate::error::Error;
use crate::limits::GRPC_OVERHEAD_BYTES;
use crate::node::Node;

/// Hub messages queued for one stream (etcd's per-stream channel holds 128). When it is
/// full the hub moves the stream's watchers aside and catches them up later.
pub const WATCH_STREAM_EVENTS_CAPACITY: usize = 128;
/// Responses queued towards the client's connection.
pub const WATCH_STREAM_OUTPUT_CAPACITY: usize = 16;
/// Bytes of events one stream holds at most on their way from the hub to the client's
/// connection (queued, being forwarded, queued for the connection). Past it the hub finds
/// the stream full: its watchers fall behind and catch up from history once the client
/// reads again, so a client that never reads costs this much, not its watchers' events.
pub const WATCH_STREAM_BYTES_MAX: usize = 2 << 20;
// A stream with room takes at least one whole catch-up message.
const _: () = assert!(WATCH_STREAM_BYTES_MAX >= 2 * WATCH_RESPONSE_BYTES_MAX);
/// Watchers one stream may hold.
pub const WATCHERS_PER_STREAM_MAX: usize = 100_000;
/// Activations (catch-ups from history) one stream runs at once; the stream goes on
/// reading requests meanwhile, so a client creating watchers back to back is read as
/// fast as it writes (h2 ends a connection whose small frames pile up unread).
const ACTIVATIONS_IN_FLIGHT_MAX: usize = 16;
/// Requests read from the client ahead of the session, in bytes (each counted at least
/// `WATCH_REQUEST_BYTES_MIN`): h2 ends a connection whose small frames pile up unread
/// (ENHANCE_YOUR_CALM), so a client creating watchers back to back is read as fast as
/// it writes, up to this much ahead.
const WATCH_REQUESTS_AHEAD_BYTES: usize = 1 << 20;
/// What a request counts for at least against `WATCH_REQUESTS_AHEAD_BYTES`: its decoded
/// form takes more than its few encoded bytes.
const WATCH_REQUEST_BYTES_MIN: usize = 128;
/// Why a create with a negative watch id is refused: -1 means "every watcher of the
/// stream" in progress responses, and ids are otherwise positive.
const NEGATIVE_WATCH_ID: &str = "etcdserver: watch id must not be negative";
/// How often a progress request that could not be answered yet is retried.
const PROGRESS_RETRY_INTERVAL: Duration = Duration::from_millis(100);
/// Watch id meaning "every watcher of the stream" in progress responses and failures.
const ALL_WATCHERS: i64 = -1;

/// The Watch service.
#[derive(Debug, Clone)]
pub struct WatchService {
    node: Arc<Node>,
}

impl WatchService {
    pub fn new(node: Arc<Node>) -> Self {
        WatchService { node }
    }
}

/// Bytes of events on their way to one client, against `WATCH_STREAM_BYTES_MAX`.
#[derive(Debug, Default)]
struct InFlight(AtomicUsize);

impl InFlight {
    /// Charges `bytes` if they fit, or if nothing is in flight: one message larger than
    /// the whole budget still goes, alone.
    fn charge(self: &Arc<Self>, bytes: usize) -> Option<Charge> {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                (held == 0 || held + bytes <= WATCH_STREAM_BYTES_MAX).then_some(held + bytes)
            })
            .ok()?;
        Some(Charge {
            in_flight: self.clone(),
            bytes,
        })
    }

    /// Room for a whole catch-up message: a stream the syncer reads history for must
    /// take what it reads, or it would hold back the others read with it.
    fn has_room(&self) -> bool {
        let held = self.0.load(Ordering::Acquire);
        held == 0 || held + WATCH_RESPONSE_BYTES_MAX <= WATCH_STREAM_BYTES_MAX
    }
}

/// A message's bytes, given back when its response is taken by the connection (or when
/// it is dropped on the way).
#[derive(Debug)]
struct Charge {
    in_flight: Arc<InFlight>,
    bytes: usize,
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.in_flight.0.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// A response on its way to the connection, with the bytes it holds of the budget.
type Outgoing = (Result<WatchResponse, Status>, Option<Charge>);

/// The hub's view of a stream: a bounded queue it may only `try_send` into, bounded in
/// messages and in bytes.
struct ChannelSink {
    queue: mpsc::Sender<(WatchMessage, Charge)>,
    in_flight: Arc<InFlight>,
}

impl WatchSink for ChannelSink {
    fn try_send(&self, message: WatchMessage) -> Result<(), SinkError> {
        if self.queue.is_closed() {
            return Err(SinkError::Closed);
        }
        let Some(charge) = self.in_flight.charge(message.bytes()) else {
            return Err(SinkError::Full);
        };
        self.queue
            .try_send((message, charge))
            .map_err(|err| match err {
                mpsc::error::TrySendError::Full(_) => SinkError::Full,
                mpsc::error::TrySendError::Closed(_) => SinkError::Closed,
            })
    }

    fn has_room(&self) -> bool {
        self.queue.capacity() > 0 && self.in_flight.has_room()
    }
}

/// `hasleader=true` metadata (clientv3.WithRequireLeader): refuse without a leader.
pub fn requires_leader(metadata: &tonic::metadata::MetadataMap) -> bool {
    metadata
        .get("hasleader")
        .is_some_and(|v| v.as_bytes() == b"true")
}

#[tonic::async_trait]
impl Watch for WatchService {
    async fn watch(
        &self,
        request: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<BoxStream<WatchResponse>>, Status> {
        if requires_leader(request.metadata()) && !self.node.raft.status().has_leader() {
            return Err(Error::NoLeader.into());
        }
        let (metadata, extensions, inbound) = request.into_parts();
        let (out, out_rx) = mpsc::channel::<Outgoing>(WATCH_STREAM_OUTPUT_CAPACITY);
        let (events_tx, events) = mpsc::channel(WATCH_STREAM_EVENTS_CAPACITY);
        let stream = self
            .node
            .store
            .watch_hub()
            .open_stream(Arc::new(ChannelSink {
                queue: events_tx,
                in_flight: Arc::default(),
            }));
        let session = Session {
            node: self.node.clone(),
            stream,
            watchers: HashMap::new(),
            next_id: 0,
            out,
            progress_pending: false,
            metadata,
            extensions,
            activations: Arc::new(tokio::sync::Semaphore::new(ACTIVATIONS_IN_FLIGHT_MAX)),
        };
        let (ahead, requests) = mpsc::channel(WATCH_REQUESTS_AHEAD_BYTES / WATCH_REQUEST_BYTES_MIN);
        self.node
            .tasks
            .spawn(read_ahead(inbound, ahead, self.node.shutdown.clone()));
        self.node.tasks.spawn(session.run(requests, events));
        // The connection taking a response gives its bytes back to the budget.
        let responses = ReceiverStream::new(out_rx).map(|(response, _charge)| response);
        Ok(Response::new(Box::pin(responses)))
    }
}

/// A request from the client, holding its share of the read-ahead budget until done.
type Ahead = (
    Result<WatchRequest, Status>,
    Option<tokio::sync::OwnedSemaphorePermit>,
);

/// Reads the client's requests as they come, up to `WATCH_REQUESTS_AHEAD_BYTES` ahead
/// of the session; ends with the client's stream (after passing on its error, if any).
async fn read_ahead(
    mut inbound: Streaming<WatchRequest>,
    ahead: mpsc::Sender<Ahead>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let budget = Arc::new(tokio::sync::Semaphore::new(WATCH_REQUESTS_AHEAD_BYTES));
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ahead.closed() => return,
            next = inbound.message() => next,
        };
        let item = match next {
            Ok(Some(request)) => {
                let bytes = request
                    .encoded_len()
                    .clamp(WATCH_REQUEST_BYTES_MIN, WATCH_REQUESTS_AHEAD_BYTES);
                let permit = tokio::select! {
                    _ = ahead.closed() => return,
                    permit = budget.clone().acquire_many_owned(bytes as u32) => permit.ok(),
                };
                (Ok(request), permit)
            }
            Ok(None) => {
                // As in etcd, a client that half-closes its side keeps its watches:
                // events go on until it goes away.
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = ahead.closed() => {}
                }
                return;
            }
            Err(status) => (Err(status), None),
        };
        let failed = item.0.is_err();
        if ahead.send(item).await.is_err() || failed {
            return;
        }
    }
}

struct WatcherState {
    hub_id: WatcherId,
    progress_notify: bool,
    fragment: bool,
}

struct Session {
    node: Arc<Node>,
    stream: StreamId,
    watchers: HashMap<i64, WatcherState>,
    next_id: i64,
    out: mpsc::Sender<Outgoing>,
    progress_pending: bool,
    /// The stream's token and certificate name: each create is checked with them.
    metadata: tonic::metadata::MetadataMap,
    extensions: http::Extensions,
    /// Permits for activations running on blocking threads.
    activations: Arc<tokio::sync::Semaphore>,
}

/// The client is gone; the session ends.
struct Closed;

impl Session {
    async fn run(
        mut self,
        mut requests: mpsc::Receiver<Ahead>,
        mut events: mpsc::Receiver<(WatchMessage, Charge)>,
    ) {
        let shutdown = self.node.shutdown.clone();
        let every = self.node.config.experimental_watch_progress_notify_interval;
        let mut progress = interval_at(Instant::now() + every, every);
        progress.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut retry = interval_at(Instant::now(), PROGRESS_RETRY_INTERVAL);
        retry.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let step = tokio::select! {
                _ = shutdown.cancelled() => Err(Closed),
                request = requests.recv() => match request {
                    // The permit goes back once the request is handled.
                    Some((Ok(request), _permit)) => self.on_request(request).await,
                    None => Err(Closed),
                    Some((Err(status), _)) => {
                        let _ = self.out.send((Err(status), None)).await;
                        Err(Closed)
                    }
                },
                Some((message, charge)) = events.recv() => self.forward(message, charge).await,
                // The client went away (it may have half-closed long before).
                _ = self.out.closed() => Err(Closed),
                _ = progress.tick() => {
                    self.notify_progress();
                    Ok(())
                }
                _ = retry.tick(), if self.progress_pending => {
                    self.progress_pending = !self.node.store.watch_hub().request_progress(self.stream);
                    Ok(())
                }
            };
            if step.is_err() {
                break;
            }
        }
        self.node.store.watch_hub().close_stream(self.stream);
    }

    async fn send(&self, response: WatchResponse) -> Result<(), Closed> {
        self.send_charged(response, None).await
    }

    async fn send_charged(
        &self,
        response: WatchResponse,
        charge: Option<Charge>,
    ) -> Result<(), Closed> {
        self.out
            .send((Ok(response), charge))
            .await
            .map_err(|_| Closed)
    }

    async fn on_request(&mut self, request: WatchRequest) -> Result<(), Closed> {
        match request.request_union {
            Some(RequestUnion::CreateRequest(create)) => self.create(create).await,
            Some(RequestUnion::CancelRequest(cancel)) => {
                // An unknown id gets no response, as in etcd.
                if let Some(watcher) = self.watchers.remove(&cancel.watch_id) {
                    self.node.store.watch_hub().cancel(watcher.hub_id);
                    let revision = self.node.store.watch_hub().published();
                    self.send(WatchResponse {
                        header: Some(self.node.header(revision)),
                        watch_id: cancel.watch_id,
                        canceled: true,
                        ..Default::default()
                    })
                    .await?;
                }
                Ok(())
            }
            Some(RequestUnion::ProgressRequest(_)) => {
                if !self.node.store.watch_hub().request_progress(self.stream) {
                    self.progress_pending = true;
                }
                Ok(())
            }
            None => Ok(()),
        }
    }

    async fn refuse(&self, reason: String) -> Result<(), Closed> {
        self.send(WatchResponse {
            header: Some(self.node.header(self.node.revision())),
            watch_id: ALL_WATCHERS,
            created: true,
            canceled: true,
            cancel_reason: reason,
            ..Default::default()
        })
        .await
    }

    async fn create(&mut self, create: WatchCreateRequest) -> Result<(), Closed> {
        if create.watch_id < 0 {
            return self.refuse(NEGATIVE_WATCH_ID.to_string()).await;
        }
        let watch_id = if create.watch_id != 0 {
            if self.watchers.contains_key(&create.watch_id) {
                return self.refuse(DUPLICATE_WATCH_ID.to_string()).await;
            }
            create.watch_id
        } else {
            while self.watchers.contains_key(&self.next_id) {
                self.next_id += 1;
            }
            self.next_id += 1;
            self.next_id - 1
        };
        if self.watchers.len() >= WATCHERS_PER_STREAM_MAX {
            return self
                .refuse("etcdserver: too many watchers on the stream".into())
                .await;
        }
        let permitted = match self
            .node
            .authorize_parts(&self.metadata, &self.extensions)
            .await
        {
            Ok(who) => who.watch(&create.key, &create.range_end),
            Err(err) => Err(err),
        };
        if let Err(err) = permitted {
            // etcd's reason is the text of the gRPC error the check returned.
            let status = Status::from(err);
            let reason = format!(
                "rpc error: code = {} desc = {}",
                go_code_name(status.code()),
                status.message()
            );
            return self.refuse(reason).await;
        }
        if create.start_revision < 0 {
            let status = Status::from(Error::Store(ballast_store::Error::Compacted));
            return self.refuse(status.message().to_string()).await;
        }
        let filters = create.filters();
        let mut no_put = false;
        let mut no_delete = false;
        for filter in filters {
            use ballast_proto::etcdserverpb::watch_create_request::FilterType;
            match filter {
                FilterType::Noput => no_put = true,
                FilterType::Nodelete => no_delete = true,
            }
        }
        let filter = Filter {
            range: KeyRange::new(create.key, create.range_end),
            no_put,
            no_delete,
            prev_kv: create.prev_kv,
        };
        let hub = self.node.store.watch_hub();
        let (hub_id, published) = hub.watch(self.stream, watch_id, filter, create.start_revision);
        self.watchers.insert(
            watch_id,
            WatcherState {
                hub_id,
                progress_notify: create.progress_notify,
                fragment: create.fragment,
            },
        );
        self.send(WatchResponse {
            header: Some(self.node.header(published)),
            watch_id,
            created: true,
            ..Default::default()
        })
        .await?;
        // Catching up from history reads the store: off the async workers, and not
        // awaited, so the next request is read meanwhile.
        let Ok(permit) = self.activations.clone().acquire_owned().await else {
            return Err(Closed);
        };
        let store = self.node.store.clone();
        tokio::task::spawn_blocking(move || {
            store.watch_activate(hub_id);
            drop(permit);
        });
        Ok(())
    }

    async fn forward(&mut self, message: WatchMessage, charge: Charge) -> Result<(), Closed> {
        match message {
            WatchMessage::Events {
                watch_id,
                revision,
                events,
            } => {
                let Some(watcher) = self.watchers.get(&watch_id) else {
                    return Ok(()); // canceled meanwhile
                };
                let response = WatchResponse {
                    header: Some(self.node.header(revision)),
                    watch_id,
                    events,
                    ..Default::default()
                };
                if watcher.fragment {
                    let limit = self.node.config.max_request_bytes as usize + GRPC_OVERHEAD_BYTES;
                    let mut parts = fragments(response, limit);
                    let last = parts.pop().expect("at least one part");
                    for part in parts {
                        self.send(part).await?;
                    }
                    self.send_charged(last, Some(charge)).await
                } else {
                    self.send_charged(response, Some(charge)).await
                }
            }
            WatchMessage::Compacted {
                watch_id,
                compact_revision,
            } => {
                if self.watchers.remove(&watch_id).is_none() {
                    return Ok(());
                }
                self.send(WatchResponse {
                    header: Some(self.node.header(0)),
                    watch_id,
                    canceled: true,
                    compact_revision,
                    ..Default::default()
                })
                .await
            }
            WatchMessage::Progress { watch_id, revision } => {
                if watch_id != ALL_WATCHERS && !self.watchers.contains_key(&watch_id) {
                    return Ok(());
                }
                self.send(WatchResponse {
                    header: Some(self.node.header(revision)),
                    watch_id,
                    ..Default::default()
                })
                .await
            }
        }
    }

    fn notify_progress(&self) {
        let ids: Vec<WatcherId> = self
            .watchers
            .values()
            .filter(|w| w.progress_notify)
            .map(|w| w.hub_id)
            .collect();
        if !ids.is_empty() {
            self.node
                .store
                .watch_hub()
                .notify_progress(self.stream, &ids);
        }
    }
}

/// Splits a response that is at least `limit` bytes into fragments of whole events,
/// all but the last marked `fragment` (etcd's sendFragments).
pub fn fragments(response: WatchResponse, limit: usize) -> Vec<WatchResponse> {
    if response.encoded_len() < limit || response.events.len() < 2 {
        return vec![response];
    }
    let mut base = response.clone();
    base.events = Vec::new();
    let mut parts = Vec::new();
    let mut current = base.clone();
    for event in response.events {
        current.events.push(event);
        if current.events.len() > 1 && current.encoded_len() >= limit {
            let overflow = current.events.pop().expect("just pushed");
            current.fragment = true;
            parts.push(std::mem::replace(&mut current, base.clone()));
            current.events.push(overflow);
        }
    }
    current.fragment = false;
    parts.push(current);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use ballast_proto::mvccpb::{Event, KeyValue};

    #[test]
    fn fragments_split_on_whole_events() {
        let event = |n: u8| Event {
            kv: Some(KeyValue {
                key: vec![n].into(),
                value: vec![0; 100].into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let response = WatchResponse {
            watch_id: 3,
            events: (0..5).map(event).collect(),
            ..Default::default()
        };
        let parts = fragments(response.clone(), 250);
        assert!(parts.len() > 1);
        assert!(parts[..parts.len() - 1].iter().all(|p| p.fragment));
        assert!(!parts.last().unwrap().fragment);
        let rejoined: Vec<Event> = parts.into_iter().flat_map(|p| p.events).collect();
        assert_eq!(rejoined, response.events);
        assert_eq!(fragments(response.clone(), 1 << 20).len(), 1);
    }
}
