//! Watch: many watchers multiplexed on one gRPC stream per client.
//!
//! A background task owns the stream. Each watcher gets its id from the client (etcd
//! 3.4+ accepts explicit ids), so responses are routed by id, never by arrival order.
//! Fragmented responses are reassembled before delivery.

use std::collections::HashMap;
use std::pin::Pin;
use std::task::{Context, Poll};

use ballast_proto::etcdserverpb as pb;
use ballast_proto::etcdserverpb::watch_client::WatchClient;
use ballast_proto::etcdserverpb::watch_create_request::FilterType;
use ballast_proto::etcdserverpb::watch_request::RequestUnion;
use bytes::Bytes;
use futures::Stream;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;

use crate::error::{Error, Result};
use crate::kv::Span;
use crate::transport::{Service, Transport, CALL_ATTEMPTS_MAX};
use crate::types::{Event, Header};

/// Responses buffered per watcher before the stream stops reading from the server.
pub const WATCH_EVENTS_QUEUE_CAPACITY: usize = 64;
/// Requests (create, cancel, progress) queued towards the server.
const WATCH_REQUEST_QUEUE_CAPACITY: usize = 64;
/// Commands queued towards the multiplexer task.
const WATCH_COMMAND_QUEUE_CAPACITY: usize = 64;
/// The server's watch id for "every watcher of the stream".
const ALL_WATCHERS: i64 = -1;

crate::kv::span_options!(WatchOptions);

/// Options of [`crate::Client::watch`].
#[derive(Debug, Clone, Default)]
pub struct WatchOptions {
    span: Span,
    req: pb::WatchCreateRequest,
}

impl WatchOptions {
    /// Default options.
    pub fn new() -> Self {
        Self::default()
    }
    /// Deliver events from this revision on (inclusive); default: from the next one.
    pub fn with_start_revision(mut self, revision: i64) -> Self {
        self.req.start_revision = revision;
        self
    }
    /// Include each key's previous value in its events.
    pub fn with_prev_kv(mut self) -> Self {
        self.req.prev_kv = true;
        self
    }
    /// Ask for periodic progress notifications while nothing happens.
    pub fn with_progress_notify(mut self) -> Self {
        self.req.progress_notify = true;
        self
    }
    /// Leave out put events.
    pub fn with_no_put(mut self) -> Self {
        self.req.filters.push(FilterType::Noput as i32);
        self
    }
    /// Leave out delete events.
    pub fn with_no_delete(mut self) -> Self {
        self.req.filters.push(FilterType::Nodelete as i32);
        self
    }
    /// Let the server split very large revisions; the client reassembles them.
    pub fn with_fragment(mut self) -> Self {
        self.req.fragment = true;
        self
    }

    fn request(self, key: Bytes, watch_id: i64) -> pb::WatchCreateRequest {
        let (key, range_end) = self.span.resolve(key);
        pb::WatchCreateRequest {
            key,
            range_end,
            watch_id,
            ..self.req
        }
    }
}

/// One delivery to a watcher: the events of one or more revisions, or a progress
/// notification (no events: everything up to `header.revision` has been delivered).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchResponse {
    /// The responding member and the store revision.
    pub header: Header,
    /// The watch the response belongs to.
    pub watch_id: i64,
    /// The events, in revision order; empty for a progress notification.
    pub events: Vec<Event>,
}

impl WatchResponse {
    /// True for a progress notification.
    pub fn is_progress_notify(&self) -> bool {
        self.events.is_empty()
    }
}

pub(crate) enum Command {
    Create {
        request: pb::WatchCreateRequest,
        events: mpsc::Sender<Result<WatchResponse>>,
        created: oneshot::Sender<Result<Header>>,
    },
    Cancel {
        watch_id: i64,
    },
    Progress,
}

/// Handle of one watcher: cancel it or ask for progress.
#[derive(Debug, Clone)]
pub struct Watcher {
    watch_id: i64,
    header: Header,
    commands: mpsc::Sender<Command>,
}

impl Watcher {
    /// The watch's id on the stream.
    pub fn watch_id(&self) -> i64 {
        self.watch_id
    }

    /// The header of the server's `created` response: its revision is the store revision
    /// when the watch started.
    pub fn header(&self) -> Header {
        self.header
    }

    /// Cancels the watch; its stream ends after the server confirms.
    pub async fn cancel(&self) -> Result<()> {
        self.commands
            .send(Command::Cancel {
                watch_id: self.watch_id,
            })
            .await
            .map_err(|_| Error::StreamClosed)
    }

    /// Asks the server for a progress notification on every watcher of this stream.
    pub async fn request_progress(&self) -> Result<()> {
        self.commands
            .send(Command::Progress)
            .await
            .map_err(|_| Error::StreamClosed)
    }
}

/// The responses of one watcher. Ends after a cancel; a server-side cancel (e.g.
/// compaction) arrives as an error first.
#[derive(Debug)]
pub struct WatchStream {
    events: mpsc::Receiver<Result<WatchResponse>>,
}

impl WatchStream {
    /// The next response, or None once the watch is over.
    pub async fn message(&mut self) -> Result<Option<WatchResponse>> {
        self.events.recv().await.transpose()
    }
}

impl Stream for WatchStream {
    type Item = Result<WatchResponse>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.events.poll_recv(cx)
    }
}

/// Starts the multiplexer task; it opens the gRPC watch stream and keeps it open.
pub(crate) fn spawn_mux(transport: Arc<Transport>) -> mpsc::Sender<Command> {
    let (commands, inbox) = mpsc::channel(WATCH_COMMAND_QUEUE_CAPACITY);
    tokio::spawn(Mux::default().run(transport, inbox));
    commands
}

/// Creates a watcher through the multiplexer.
pub(crate) async fn create(
    commands: &mpsc::Sender<Command>,
    watch_id: i64,
    key: Bytes,
    options: WatchOptions,
) -> Result<(Watcher, WatchStream)> {
    let (events_tx, events) = mpsc::channel(WATCH_EVENTS_QUEUE_CAPACITY);
    let (created_tx, created) = oneshot::channel();
    commands
        .send(Command::Create {
            request: options.request(key, watch_id),
            events: events_tx,
            created: created_tx,
        })
        .await
        .map_err(|_| Error::StreamClosed)?;
    let header = created.await.map_err(|_| Error::StreamClosed)??;
    Ok((
        Watcher {
            watch_id,
            header,
            commands: commands.clone(),
        },
        WatchStream { events },
    ))
}

struct Slot {
    events: mpsc::Sender<Result<WatchResponse>>,
    /// Present until the server confirmed the watch.
    created: Option<oneshot::Sender<Result<Header>>>,
    /// Events of a fragmented response being reassembled.
    partial: Vec<Event>,
    /// The create request, to send again on a new stream.
    request: pb::WatchCreateRequest,
    /// The first revision not delivered yet; 0 until the watch is created.
    next_revision: i64,
}

impl Slot {
    /// The create request that resumes this watch where it left off.
    fn resume_request(&self) -> pb::WatchRequest {
        let mut request = self.request.clone();
        if self.next_revision > 0 {
            request.start_revision = self.next_revision;
        }
        pb::WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(request)),
        }
    }
}

/// Why a stream ended.
enum End {
    /// Every handle is gone: stop.
    Done,
    /// The stream broke: reconnect and resume.
    Broken(Error),
}

#[derive(Default)]
struct Mux {
    slots: HashMap<i64, Slot>,
}

impl Mux {
    async fn run(mut self, transport: Arc<Transport>, mut inbox: mpsc::Receiver<Command>) {
        let mut failures: u32 = 0;
        loop {
            let (index, service) = transport.current();
            let outcome = self.serve_stream(service, &mut inbox).await;
            let error = match outcome {
                (End::Done, _) => return,
                (End::Broken(error), delivered) => {
                    if delivered {
                        failures = 0;
                    }
                    error
                }
            };
            failures += 1;
            tracing::debug!(%error, failures, "watch stream broke; resuming");
            for slot in self.slots.values_mut() {
                slot.partial.clear();
            }
            if failures as usize >= CALL_ATTEMPTS_MAX {
                // Watches not yet created give up; created ones keep waiting for the
                // cluster to come back.
                let pending: Vec<i64> = self
                    .slots
                    .iter()
                    .filter(|(_, s)| s.created.is_some())
                    .map(|(&id, _)| id)
                    .collect();
                for id in pending {
                    if let Some(created) = self.slots.remove(&id).and_then(|s| s.created) {
                        let _ = created.send(Err(copy_error(&error)));
                    }
                }
            }
            let backoff = transport.stream_backoff(index, failures);
            tokio::pin!(backoff);
            loop {
                tokio::select! {
                    _ = &mut backoff => break,
                    command = inbox.recv() => match command {
                        None => return,
                        Some(command) => self.on_command_offline(command),
                    }
                }
            }
        }
    }

    /// Runs one gRPC stream until it ends; also says whether anything was delivered.
    async fn serve_stream(
        &mut self,
        service: Service,
        inbox: &mut mpsc::Receiver<Command>,
    ) -> (End, bool) {
        let mut client =
            WatchClient::new(service).max_decoding_message_size(crate::RESPONSE_BYTES_MAX);
        let (requests, outbound) = mpsc::channel(WATCH_REQUEST_QUEUE_CAPACITY);
        // The call runs on its own: a server may hold its response headers back until
        // it has a first request to answer (etcd does), so requests must flow while the
        // call is still waiting for them.
        let mut call =
            tokio::spawn(async move { client.watch(ReceiverStream::new(outbound)).await });
        // Resume every watch on the new stream.
        for slot in self.slots.values() {
            if requests.send(slot.resume_request()).await.is_err() {
                call.abort();
                return (End::Broken(Error::StreamClosed), false);
            }
        }
        let mut inbound = loop {
            tokio::select! {
                joined = &mut call => match joined {
                    Ok(Ok(response)) => break response.into_inner(),
                    Ok(Err(status)) => return (End::Broken(status.into()), false),
                    Err(_) => return (End::Broken(Error::StreamClosed), false),
                },
                command = inbox.recv() => {
                    let Some(command) = command else {
                        call.abort();
                        return (End::Done, false);
                    };
                    if let Some(request) = self.on_command(command) {
                        if requests.send(request).await.is_err() {
                            call.abort();
                            return (End::Broken(Error::StreamClosed), false);
                        }
                    }
                }
            }
        };
        let mut delivered = false;
        loop {
            tokio::select! {
                command = inbox.recv() => {
                    let Some(command) = command else { return (End::Done, delivered) };
                    if let Some(request) = self.on_command(command) {
                        if requests.send(request).await.is_err() {
                            return (End::Broken(Error::StreamClosed), delivered);
                        }
                    }
                }
                message = inbound.message() => match message {
                    Ok(Some(response)) => {
                        delivered = true;
                        for watch_id in self.route(response).await {
                            // The caller dropped its stream: stop the watch on the server.
                            let cancel = pb::WatchRequest {
                                request_union: Some(RequestUnion::CancelRequest(pb::WatchCancelRequest { watch_id })),
                            };
                            let _ = requests.send(cancel).await;
                        }
                    }
                    Ok(None) => return (End::Broken(Error::StreamClosed), delivered),
                    Err(status) => return (End::Broken(status.into()), delivered),
                },
            }
        }
    }

    fn insert(
        &mut self,
        request: pb::WatchCreateRequest,
        events: mpsc::Sender<Result<WatchResponse>>,
        created: oneshot::Sender<Result<Header>>,
    ) {
        self.slots.insert(
            request.watch_id,
            Slot {
                events,
                created: Some(created),
                partial: Vec::new(),
                request,
                next_revision: 0,
            },
        );
    }

    /// A command while connected: returns the request to send.
    fn on_command(&mut self, command: Command) -> Option<pb::WatchRequest> {
        let union = match command {
            Command::Create {
                request,
                events,
                created,
            } => {
                self.insert(request.clone(), events, created);
                RequestUnion::CreateRequest(request)
            }
            Command::Cancel { watch_id } => {
                if !self.slots.contains_key(&watch_id) {
                    return None;
                }
                RequestUnion::CancelRequest(pb::WatchCancelRequest { watch_id })
            }
            Command::Progress => RequestUnion::ProgressRequest(pb::WatchProgressRequest {}),
        };
        Some(pb::WatchRequest {
            request_union: Some(union),
        })
    }

    /// A command while reconnecting: creates wait for the stream, cancels take effect now.
    fn on_command_offline(&mut self, command: Command) {
        match command {
            Command::Create {
                request,
                events,
                created,
            } => self.insert(request, events, created),
            Command::Cancel { watch_id } => {
                self.slots.remove(&watch_id);
            }
            Command::Progress => {}
        }
    }

    /// Delivers one server response; returns ids of watchers whose caller went away.
    async fn route(&mut self, response: pb::WatchResponse) -> Vec<i64> {
        let header = Header::from(response.header);
        if response.watch_id == ALL_WATCHERS {
            if response.created || response.canceled {
                tracing::warn!(reason = %response.cancel_reason, "watch create refused");
                return Vec::new();
            }
            let mut gone = Vec::new();
            for (&watch_id, slot) in &mut self.slots {
                if slot.created.is_some() {
                    continue;
                }
                slot.next_revision = slot.next_revision.max(header.revision + 1);
                let progress = WatchResponse {
                    header,
                    watch_id,
                    events: Vec::new(),
                };
                if slot.events.send(Ok(progress)).await.is_err() {
                    gone.push(watch_id);
                }
            }
            return gone;
        }
        let watch_id = response.watch_id;
        let Some(slot) = self.slots.get_mut(&watch_id) else {
            return Vec::new();
        };
        if response.created {
            if slot.next_revision == 0 {
                slot.next_revision = if slot.request.start_revision > 0 {
                    slot.request.start_revision
                } else {
                    header.revision + 1
                };
            }
            if let Some(created) = slot.created.take() {
                let _ = created.send(Ok(header));
            }
        }
        if response.canceled {
            let slot = self.slots.remove(&watch_id).expect("present");
            let error = if response.compact_revision != 0 {
                Some(Error::Compacted {
                    compact_revision: response.compact_revision,
                })
            } else if !response.cancel_reason.is_empty() {
                Some(Error::WatchCanceled(response.cancel_reason))
            } else {
                None
            };
            if let Some(error) = error {
                match slot.created {
                    Some(created) => {
                        let _ = created.send(Err(error));
                    }
                    None => {
                        let _ = slot.events.send(Err(error)).await;
                    }
                }
            }
            return Vec::new();
        }
        if response.created && response.events.is_empty() {
            return Vec::new();
        }
        slot.partial
            .extend(response.events.into_iter().map(Event::from));
        if response.fragment {
            return Vec::new();
        }
        let events = std::mem::take(&mut slot.partial);
        match events.last() {
            Some(last) => slot.next_revision = last.kv.mod_revision + 1,
            // A progress notification: everything up to the header has been delivered.
            None => slot.next_revision = slot.next_revision.max(header.revision + 1),
        }
        let delivery = WatchResponse {
            header,
            watch_id,
            events,
        };
        if slot.events.send(Ok(delivery)).await.is_err() {
            self.slots.remove(&watch_id);
            return vec![watch_id];
        }
        Vec::new()
    }
}

fn copy_error(error: &Error) -> Error {
    match error {
        Error::Status { code, message } => Error::Status {
            code: *code,
            message: message.clone(),
        },
        _ => Error::StreamClosed,
    }
}
