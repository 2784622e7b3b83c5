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
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use crate::error::{Error, Result};
use crate::kv::Span;
use crate::types::{Event, Header};

/// Responses buffered per watcher before the stream stops reading from the server.
pub const WATCH_EVENTS_QUEUE_CAPACITY: usize = 64;
/// Requests (create, cancel, progress) queued towards the server.
const WATCH_REQUEST_QUEUE_CAPACITY: usize = 64;
/// Commands queued towards the multiplexer task.
const WATCH_COMMAND_QUEUE_CAPACITY: usize = 64;
/// The server's watch id for "every watcher of the stream".
const ALL_WATCHERS: i64 = -1;

/// Options of [`crate::Client::watch`].
#[derive(Debug, Clone, Default)]
pub struct WatchOptions {
    span: Span,
    req: pb::WatchCreateRequest,
}

impl WatchOptions {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn with_prefix(mut self) -> Self {
        self.span = Span::Prefix;
        self
    }
    pub fn with_from_key(mut self) -> Self {
        self.span = Span::FromKey;
        self
    }
    pub fn with_range(mut self, end: impl AsRef<[u8]>) -> Self {
        self.span = Span::End(Bytes::copy_from_slice(end.as_ref()));
        self
    }
    pub fn with_all_keys(mut self) -> Self {
        self.span = Span::All;
        self
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
    pub header: Header,
    pub watch_id: i64,
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

/// Starts the multiplexer task on a new gRPC watch stream.
pub(crate) fn spawn_mux(client: WatchClient<Channel>) -> mpsc::Sender<Command> {
    let (commands, inbox) = mpsc::channel(WATCH_COMMAND_QUEUE_CAPACITY);
    tokio::spawn(Mux::default().run(client, inbox));
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
    created: Option<oneshot::Sender<Result<Header>>>,
    /// Events of a fragmented response being reassembled.
    partial: Vec<Event>,
}

#[derive(Default)]
struct Mux {
    slots: HashMap<i64, Slot>,
}

impl Mux {
    async fn run(mut self, mut client: WatchClient<Channel>, mut inbox: mpsc::Receiver<Command>) {
        let (requests, outbound) = mpsc::channel(WATCH_REQUEST_QUEUE_CAPACITY);
        let mut inbound = match client.watch(ReceiverStream::new(outbound)).await {
            Ok(response) => response.into_inner(),
            Err(status) => {
                self.fail_pending(&mut inbox, Error::from(status));
                return;
            }
        };
        let failure = loop {
            tokio::select! {
                command = inbox.recv() => {
                    let Some(command) = command else { return };
                    if let Some(request) = self.on_command(command) {
                        if requests.send(request).await.is_err() {
                            break Error::StreamClosed;
                        }
                    }
                }
                message = inbound.message() => match message {
                    Ok(Some(response)) => {
                        for watch_id in self.route(response).await {
                            // The caller dropped its stream: stop the watch on the server.
                            let cancel = pb::WatchRequest {
                                request_union: Some(RequestUnion::CancelRequest(pb::WatchCancelRequest { watch_id })),
                            };
                            let _ = requests.send(cancel).await;
                        }
                    }
                    Ok(None) => break Error::StreamClosed,
                    Err(status) => break Error::from(status),
                },
            }
        };
        // Close our half of the stream before anything else, so the server can finish it.
        drop(requests);
        drop(inbound);
        self.fail_all(failure).await;
        self.fail_pending(&mut inbox, Error::StreamClosed);
    }

    fn on_command(&mut self, command: Command) -> Option<pb::WatchRequest> {
        let union = match command {
            Command::Create {
                request,
                events,
                created,
            } => {
                self.slots.insert(
                    request.watch_id,
                    Slot {
                        events,
                        created: Some(created),
                        partial: Vec::new(),
                    },
                );
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

    /// Delivers one server response; returns ids of watchers whose caller went away.
    async fn route(&mut self, response: pb::WatchResponse) -> Vec<i64> {
        let header = Header::from(response.header);
        if response.watch_id == ALL_WATCHERS {
            if response.created || response.canceled {
                tracing::warn!(reason = %response.cancel_reason, "watch create refused");
                return Vec::new();
            }
            let mut gone = Vec::new();
            for (&watch_id, slot) in &self.slots {
                if slot.created.is_some() {
                    continue;
                }
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
                let _ = slot.events.send(Err(error)).await;
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
        let delivery = WatchResponse {
            header,
            watch_id,
            events: std::mem::take(&mut slot.partial),
        };
        if slot.events.send(Ok(delivery)).await.is_err() {
            self.slots.remove(&watch_id);
            return vec![watch_id];
        }
        Vec::new()
    }

    async fn fail_all(&mut self, error: Error) {
        for (_, slot) in self.slots.drain() {
            let message = match &error {
                Error::Status { code, message } => Error::Status {
                    code: *code,
                    message: message.clone(),
                },
                _ => Error::StreamClosed,
            };
            match slot.created {
                Some(created) => {
                    let _ = created.send(Err(message));
                }
                None => {
                    let _ = slot.events.send(Err(message)).await;
                }
            }
        }
    }

    /// Refuses every queued command; later sends fail, so the next watch starts a new
    /// stream.
    fn fail_pending(&mut self, inbox: &mut mpsc::Receiver<Command>, error: Error) {
        inbox.close();
        let mut error = Some(error);
        while let Ok(command) = inbox.try_recv() {
            if let Command::Create { created, .. } = command {
                let _ = created.send(Err(error.take().unwrap_or(Error::StreamClosed)));
            }
        }
    }
}
