//! The watch hub: hands every committed event to the watchers that want it, in order,
//! without ever dropping one.
//!
//! A watcher is *synced* when it has received everything up to the last published
//! revision; `publish` feeds synced watchers directly. A watcher whose sink is full, or
//! that starts in the past, is *unsynced*: it is caught up from the history in the store
//! (by the syncer thread, or at once when it is created) and rejoins the synced set when
//! it reaches the published revision. So a slow consumer costs its own catch-up reads,
//! never a lost event and never a delay for the others.
//!
//! Phases: Pending (created, its `created` response not yet sent) -> Unsynced <-> Syncing
//! (being caught up, hub lock released) -> Synced -> Unsynced (sink full) ... The hub
//! alone moves a watcher between phases; the syncer (`syncer.rs`) asks it to, and reads
//! history through [`History`], so the hub knows nothing of the store.

mod index;
mod replay;
mod syncer;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use ballast_proto::mvccpb::{event::EventType, Event};

use crate::range::KeyRange;
use crate::record::{Change, ChangeKind};
use index::WatcherIndex;

pub use syncer::{History, Syncer};

/// How often the syncer looks at unsynced watchers even when nobody woke it.
pub const WATCH_SYNC_INTERVAL: Duration = Duration::from_millis(100);
/// How soon the syncer tries again while watchers wait for room on their stream (etcd
/// retries its "victims" as often): nothing wakes it when a stream drains, and a watcher
/// is only as late as this retry.
pub const WATCH_SYNC_RETRY_INTERVAL: Duration = Duration::from_millis(10);
/// Events one catch-up message carries at most (a revision is never split, so a single
/// large revision may exceed it).
pub const WATCH_EVENTS_PER_RESPONSE_MAX: usize = 1000;
/// Bytes of events one catch-up message carries at most, past which the read stops at
/// the end of a revision (so one large revision may exceed it): with prev_kv and large
/// values a thousand events could otherwise make one message of gigabytes.
pub const WATCH_RESPONSE_BYTES_MAX: usize = 1 << 20;
/// Catch-up messages sent to one watcher per turn before the syncer moves on to the next.
const WATCH_SYNC_MESSAGES_PER_TURN: usize = 16;
/// Events the syncer reads from history in one round for all unsynced watchers together
/// (a revision is never split). Each watcher gets at most this many in one message.
const WATCH_SYNC_EVENTS_MAX: usize = WATCH_EVENTS_PER_RESPONSE_MAX;

/// What a watcher wants.
#[derive(Debug, Clone)]
pub struct Filter {
    pub range: KeyRange,
    pub no_put: bool,
    pub no_delete: bool,
    pub prev_kv: bool,
}

impl Filter {
    fn wants(&self, change: &Change) -> bool {
        match change.kind {
            ChangeKind::Put if self.no_put => false,
            ChangeKind::Delete if self.no_delete => false,
            _ => self.range.contains(&change.key),
        }
    }

    fn wants_event(&self, event: &Event) -> bool {
        let kind = if event.r#type == EventType::Delete as i32 {
            ChangeKind::Delete
        } else {
            ChangeKind::Put
        };
        match kind {
            ChangeKind::Put if self.no_put => false,
            ChangeKind::Delete if self.no_delete => false,
            _ => event
                .kv
                .as_ref()
                .is_some_and(|kv| self.range.contains(&kv.key)),
        }
    }

    /// The events of one revision this watcher wants, shaped for it.
    fn select(&self, events: &[Event]) -> Vec<Event> {
        events
            .iter()
            .filter(|e| self.wants_event(e))
            .map(|e| self.shape(e))
            .collect()
    }

    /// An event as this watcher gets it: without the previous version unless asked.
    fn shape(&self, event: &Event) -> Event {
        let mut event = event.clone();
        if !self.prev_kv {
            event.prev_kv = None;
        }
        event
    }
}

/// A message from the hub to a watch stream.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchMessage {
    /// Events for one watcher; `revision` is the revision of the last of them.
    Events {
        watch_id: i64,
        revision: i64,
        events: Vec<Event>,
    },
    /// The watcher fell behind the compaction point and is canceled.
    Compacted {
        watch_id: i64,
        compact_revision: i64,
    },
    /// Everything up to `revision` has been delivered (watch_id -1: to every watcher of
    /// the stream).
    Progress { watch_id: i64, revision: i64 },
}

impl WatchMessage {
    /// Roughly what the message weighs in a response: its events' keys and values.
    pub fn bytes(&self) -> usize {
        match self {
            WatchMessage::Events { events, .. } => events.iter().map(replay::event_bytes).sum(),
            WatchMessage::Compacted { .. } | WatchMessage::Progress { .. } => 0,
        }
    }
}

/// Why a sink refused a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkError {
    /// No room now; the hub catches the watcher up later.
    Full,
    /// The stream is gone; its watchers are dropped.
    Closed,
}

/// Where a watch stream receives messages; a bounded queue in the server.
pub trait WatchSink: Send + Sync {
    fn try_send(&self, message: WatchMessage) -> Result<(), SinkError>;
    /// False when a message sent now would find the sink full: the syncer skips its
    /// watchers this turn instead of reading history for them.
    fn has_room(&self) -> bool {
        true
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Pending,
    Synced,
    Unsynced,
    Syncing,
}

struct Watcher {
    stream: u64,
    watch_id: i64,
    filter: Filter,
    /// The first revision this watcher has not yet been sent.
    next: i64,
    phase: Phase,
}

struct Stream {
    sink: Arc<dyn WatchSink>,
    watchers: HashSet<u64>,
}

struct HubState {
    /// The last revision whose events were handed to the synced watchers.
    published: i64,
    next_stream: u64,
    next_watcher: u64,
    streams: HashMap<u64, Stream>,
    /// A synced watcher's `next` may lag: revisions whose events it does not want pass it
    /// by (publish visits only the watchers `index` names). It has everything up to
    /// `published` all the same.
    watchers: HashMap<u64, Watcher>,
    index: WatcherIndex,
    stopped: bool,
}

impl HubState {
    fn remove_watcher(&mut self, id: u64) -> Option<Watcher> {
        let w = self.watchers.remove(&id)?;
        self.index.remove(id, &w.filter.range);
        Some(w)
    }
}

/// The registry of watchers; see the module docs.
pub struct WatchHub {
    state: Mutex<HubState>,
    wake: Condvar,
}

impl std::fmt::Debug for WatchHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("WatchHub")
            .field("published", &state.published)
            .field("watchers", &state.watchers.len())
            .finish()
    }
}

/// Handle of a watcher inside the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WatcherId(u64);

/// Handle of a watch stream inside the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamId(u64);

impl WatchHub {
    pub(crate) fn new(published: i64) -> Self {
        WatchHub {
            state: Mutex::new(HubState {
                published,
                next_stream: 0,
                next_watcher: 0,
                streams: HashMap::new(),
                watchers: HashMap::new(),
                index: WatcherIndex::default(),
                stopped: false,
            }),
            wake: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HubState> {
        self.state.lock().expect("watch hub lock poisoned")
    }

    /// Registers a stream; its watchers' messages go to `sink`.
    pub fn open_stream(&self, sink: Arc<dyn WatchSink>) -> StreamId {
        let mut state = self.lock();
        let id = state.next_stream;
        state.next_stream += 1;
        state.streams.insert(
            id,
            Stream {
                sink,
                watchers: HashSet::new(),
            },
        );
        StreamId(id)
    }

    /// Drops a stream and all its watchers.
    pub fn close_stream(&self, stream: StreamId) {
        let mut state = self.lock();
        if let Some(s) = state.streams.remove(&stream.0) {
            for w in s.watchers {
                state.remove_watcher(w);
            }
        }
    }

    /// Creates a watcher that receives events from `start` (0 = the next revision).
    /// Returns it with the published revision, for the `created` response. The watcher
    /// receives nothing until it is activated ([`Syncer::activate`]), so the caller can send
    /// its `created` response first.
    pub fn watch(
        &self,
        stream: StreamId,
        watch_id: i64,
        filter: Filter,
        start: i64,
    ) -> (WatcherId, i64) {
        let mut state = self.lock();
        let published = state.published;
        let id = state.next_watcher;
        state.next_watcher += 1;
        let next = if start <= 0 { published + 1 } else { start };
        state.index.insert(id, &filter.range);
        state.watchers.insert(
            id,
            Watcher {
                stream: stream.0,
                watch_id,
                filter,
                next,
                phase: Phase::Pending,
            },
        );
        if let Some(s) = state.streams.get_mut(&stream.0) {
            s.watchers.insert(id);
        }
        (WatcherId(id), published)
    }

    /// Removes a watcher; no message for it is produced after this returns, though one
    /// already queued may still arrive.
    pub fn cancel(&self, watcher: WatcherId) -> bool {
        let mut state = self.lock();
        let Some(w) = state.remove_watcher(watcher.0) else {
            return false;
        };
        if let Some(s) = state.streams.get_mut(&w.stream) {
            s.watchers.remove(&watcher.0);
        }
        true
    }

    /// How many watchers exist (etcd's `etcd_debugging_mvcc_watcher_total`).
    pub fn watcher_count(&self) -> usize {
        self.lock().watchers.len()
    }

    /// The last published revision.
    pub fn published(&self) -> i64 {
        self.lock().published
    }

    /// Sends a progress message (watch_id -1) to the stream if every watcher on it has
    /// received everything published. Returns false if it could not be sent yet.
    pub fn request_progress(&self, stream: StreamId) -> bool {
        let state = self.lock();
        let Some(s) = state.streams.get(&stream.0) else {
            return false;
        };
        let all_synced = s.watchers.iter().all(|w| {
            state
                .watchers
                .get(w)
                .is_some_and(|w| w.phase == Phase::Synced)
        });
        all_synced
            && s.sink
                .try_send(WatchMessage::Progress {
                    watch_id: -1,
                    revision: state.published,
                })
                .is_ok()
    }

    /// Sends a progress message to each synced watcher of the stream that asked for
    /// progress notifications (`ids`), skipping any that are behind.
    pub fn notify_progress(&self, stream: StreamId, ids: &[WatcherId]) {
        let state = self.lock();
        let Some(s) = state.streams.get(&stream.0) else {
            return;
        };
        for id in ids {
            if let Some(w) = state.watchers.get(&id.0) {
                if w.phase == Phase::Synced {
                    let _ = s.sink.try_send(WatchMessage::Progress {
                        watch_id: w.watch_id,
                        revision: state.published,
                    });
                }
            }
        }
    }

    /// Hands the events of `revision` to the synced watchers. Called by the apply thread
    /// after the revision is written, in revision order.
    pub(crate) fn publish(&self, revision: i64, events: &[Event]) {
        let mut state = self.lock();
        assert!(
            revision > state.published,
            "published revisions only grow: {revision} after {}",
            state.published
        );
        state.published = revision;
        let HubState {
            streams,
            watchers,
            index,
            ..
        } = &mut *state;
        let mut closed = Vec::new();
        let mut behind = false;
        for &id in index.concerned(events).into_iter().flatten() {
            let Some(w) = watchers.get_mut(&id) else {
                continue;
            };
            if w.phase != Phase::Synced || w.next > revision {
                continue;
            }
            let selected = w.filter.select(events);
            if selected.is_empty() {
                continue;
            }
            let Some(stream) = streams.get(&w.stream) else {
                closed.push(id);
                continue;
            };
            let message = WatchMessage::Events {
                watch_id: w.watch_id,
                revision,
                events: selected,
            };
            match stream.sink.try_send(message) {
                Ok(()) => w.next = revision + 1,
                Err(SinkError::Full) => {
                    // It has everything before this revision.
                    w.next = revision;
                    w.phase = Phase::Unsynced;
                    behind = true;
                }
                Err(SinkError::Closed) => closed.push(id),
            }
        }
        for id in closed {
            state.remove_watcher(id);
        }
        if behind {
            self.wake.notify_all();
        }
    }

    /// The store jumped to `revision` (a snapshot was installed): every watcher is
    /// caught up from the new history, or told it was compacted.
    pub(crate) fn restart_from(&self, revision: i64) {
        let mut state = self.lock();
        let before = state.published;
        state.published = revision;
        for watcher in state.watchers.values_mut() {
            if watcher.phase != Phase::Synced {
                continue;
            }
            // A synced watcher has everything up to what was published before.
            watcher.next = watcher.next.max(before + 1);
            if watcher.next <= revision {
                watcher.phase = Phase::Unsynced;
            }
        }
        self.wake.notify_all();
    }

    /// Ends the syncer thread.
    pub(crate) fn stop(&self) {
        self.lock().stopped = true;
        self.wake.notify_all();
    }

    /// Pending -> Unsynced: the watcher's `created` response is out. False if it is gone
    /// or was activated before.
    fn activate(&self, watcher: WatcherId) -> bool {
        let mut state = self.lock();
        match state.watchers.get_mut(&watcher.0) {
            Some(w) if w.phase == Phase::Pending => {
                w.phase = Phase::Unsynced;
                true
            }
            _ => false,
        }
    }

    /// Waits until woken or `timeout` passed; the unsynced watchers then, or None once
    /// the hub stopped.
    fn wait_for_unsynced(&self, timeout: Duration) -> Option<Vec<u64>> {
        let state = self.lock();
        let state = self
            .wake
            .wait_timeout(state, timeout)
            .expect("watch hub lock poisoned")
            .0;
        if state.stopped {
            return None;
        }
        Some(
            state
                .watchers
                .iter()
                .filter(|(_, w)| w.phase == Phase::Unsynced)
                .map(|(&id, _)| id)
                .collect(),
        )
    }

    /// Keeps the ids of `ids` that are still unsynced.
    fn retain_unsynced(&self, ids: &mut Vec<u64>) {
        let state = self.lock();
        ids.retain(|id| {
            state
                .watchers
                .get(id)
                .is_some_and(|w| w.phase == Phase::Unsynced)
        });
    }

    /// Unsynced -> Syncing for one watcher behind the published revision; one that has
    /// caught up meanwhile becomes Synced instead (None).
    fn begin_catch_up(&self, id: u64) -> Option<CatchUp> {
        let mut state = self.lock();
        let published = state.published;
        let HubState {
            streams, watchers, ..
        } = &mut *state;
        let w = unsynced_behind(watchers, id, published)?;
        let stream = streams.get(&w.stream)?;
        Some(CatchUp::take(id, w, stream, published))
    }

    /// Unsynced -> Syncing for the watchers of `ids` that are behind, not behind the
    /// compaction point and whose stream has room: one group catch-up. Returns the group
    /// and, apart, those behind `compacted` (each must be told alone).
    fn begin_group_catch_up(&self, ids: &[u64], compacted: i64) -> (Vec<CatchUp>, Vec<u64>) {
        let mut state = self.lock();
        let published = state.published;
        let HubState {
            streams, watchers, ..
        } = &mut *state;
        let mut group = Vec::new();
        let mut alone = Vec::new();
        for &id in ids {
            let Some(w) = unsynced_behind(watchers, id, published) else {
                continue;
            };
            if w.next < compacted {
                alone.push(id);
                continue;
            }
            let Some(stream) = streams.get(&w.stream) else {
                continue;
            };
            if !stream.sink.has_room() {
                continue;
            }
            group.push(CatchUp::take(id, w, stream, published));
        }
        (group, alone)
    }

    /// Syncing -> Unsynced with the watcher's new next revision (it becomes Synced on
    /// its next turn once caught up). Returns whether it moved forward.
    fn end_catch_up(&self, id: u64, next: i64) -> bool {
        self.end_catch_ups(&[(id, next)])
    }

    /// [`WatchHub::end_catch_up`] for a whole group under one lock: a group may be
    /// thousands of watchers. Returns whether any moved forward.
    fn end_catch_ups(&self, ends: &[(u64, i64)]) -> bool {
        let mut state = self.lock();
        let mut moved = false;
        for &(id, next) in ends {
            if let Some(w) = state.watchers.get_mut(&id) {
                moved |= next > w.next;
                w.next = next;
                w.phase = Phase::Unsynced;
            }
        }
        moved
    }
}

/// The watcher `id` if it is unsynced and behind `published`; one that has caught up
/// meanwhile is marked synced instead.
fn unsynced_behind(
    watchers: &mut HashMap<u64, Watcher>,
    id: u64,
    published: i64,
) -> Option<&mut Watcher> {
    let w = watchers.get_mut(&id)?;
    if w.phase != Phase::Unsynced {
        return None;
    }
    if w.next > published {
        w.phase = Phase::Synced;
        return None;
    }
    Some(w)
}

/// A watcher taken out of the hub (phase Syncing) to be caught up from history.
struct CatchUp {
    id: u64,
    watch_id: i64,
    filter: Filter,
    /// The first revision it has not been sent.
    next: i64,
    /// The published revision when it was taken: it is caught up to here at most.
    to: i64,
    sink: Arc<dyn WatchSink>,
}

impl CatchUp {
    /// Takes watcher `id` out for a catch-up up to `published`: Unsynced -> Syncing.
    fn take(id: u64, w: &mut Watcher, stream: &Stream, published: i64) -> CatchUp {
        w.phase = Phase::Syncing;
        CatchUp {
            id,
            watch_id: w.watch_id,
            filter: w.filter.clone(),
            next: w.next,
            to: published,
            sink: stream.sink.clone(),
        }
    }
}
