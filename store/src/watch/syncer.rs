//! The syncer: catches unsynced watchers up from the store's history, then hands them
//! back to the hub. It runs on its own thread (woken by the hub when a watcher falls
//! behind, and on a timer) and, for a new watcher that starts in the past, on the thread
//! that activates it.
//!
//! It reads the store only through [`History`], and changes a watcher's phase only
//! through the hub's methods, so the phase machine has one owner.

use std::sync::Arc;

use ballast_proto::mvccpb::Event;

use super::{
    replay, CatchUp, SinkError, WatchHub, WatchMessage, WatchSink, WatcherId,
    WATCH_EVENTS_PER_RESPONSE_MAX, WATCH_SYNC_EVENTS_MAX, WATCH_SYNC_INTERVAL,
    WATCH_SYNC_MESSAGES_PER_TURN, WATCH_SYNC_RETRY_INTERVAL,
};
use crate::error::Error;
use crate::mvcc::read::ReadView;

/// What the syncer reads: consistent views of the history, and the compaction point.
pub trait History {
    fn view(&self) -> ReadView<'_>;
    fn compacted(&self) -> i64;
}

/// Catches watchers of one hub up from one history; see the module docs.
pub struct Syncer<'a, H: History + ?Sized> {
    hub: &'a WatchHub,
    history: &'a H,
}

impl<H: History + ?Sized> std::fmt::Debug for Syncer<'_, H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Syncer").field("hub", self.hub).finish()
    }
}

/// What a group catch-up did for one watcher.
enum Delivery {
    /// The watcher's next revision after the round.
    Kept(i64),
    /// Its stream is gone.
    Closed,
}

impl CatchUp {
    /// Sends this watcher its part of `events` (the history up to `last`, read from a
    /// revision at or below its own `next`).
    fn deliver(&self, events: &[Event], last: i64) -> Delivery {
        if self.next > last {
            return Delivery::Kept(self.next);
        }
        let mine: Vec<Event> = events
            .iter()
            .filter(|e| replay::mod_revision(e) >= self.next && self.filter.wants_event(e))
            .map(|e| self.filter.shape(e))
            .collect();
        let Some(revision) = mine.last().map(replay::mod_revision) else {
            return Delivery::Kept(last + 1);
        };
        match self.sink.try_send(WatchMessage::Events {
            watch_id: self.watch_id,
            revision,
            events: mine,
        }) {
            Ok(()) => Delivery::Kept(last + 1),
            Err(SinkError::Full) => Delivery::Kept(self.next),
            Err(SinkError::Closed) => Delivery::Closed,
        }
    }
}

impl<'a, H: History + ?Sized> Syncer<'a, H> {
    pub fn new(hub: &'a WatchHub, history: &'a H) -> Self {
        Syncer { hub, history }
    }

    /// Lets a new watcher receive events, catching it up from history first if it starts
    /// in the past.
    pub fn activate(&self, watcher: WatcherId) {
        if self.hub.activate(watcher) {
            self.sync_watcher(watcher.0);
        }
    }

    /// The syncer thread: catches up unsynced watchers until the hub stops.
    pub fn run(&self) {
        let mut wait = WATCH_SYNC_INTERVAL;
        while let Some(mut unsynced) = self.hub.wait_for_unsynced(wait) {
            // Rounds until everyone is caught up or no one took anything.
            for _ in 0..WATCH_SYNC_MESSAGES_PER_TURN {
                if unsynced.is_empty() || !self.sync_group(&unsynced) {
                    break;
                }
                self.hub.retain_unsynced(&mut unsynced);
            }
            wait = if unsynced.is_empty() {
                WATCH_SYNC_INTERVAL
            } else {
                WATCH_SYNC_RETRY_INTERVAL
            };
        }
    }

    /// Catches one unsynced watcher up, as far as its sink takes messages.
    fn sync_watcher(&self, id: u64) {
        for _ in 0..WATCH_SYNC_MESSAGES_PER_TURN {
            let Some(catch_up) = self.hub.begin_catch_up(id) else {
                return;
            };
            let from = catch_up.next;
            let outcome = replay::read_events(
                &self.history.view(),
                &catch_up.filter,
                from,
                catch_up.to,
                WATCH_EVENTS_PER_RESPONSE_MAX,
            );
            let sink: &Arc<dyn WatchSink> = &catch_up.sink;
            let watch_id = catch_up.watch_id;
            let (next, delivered) = match outcome {
                Ok((events, last)) if events.is_empty() => (last + 1, true),
                Ok((events, last)) => {
                    let revision = events
                        .last()
                        .and_then(|e| e.kv.as_ref())
                        .map_or(last, |kv| kv.mod_revision);
                    match sink.try_send(WatchMessage::Events {
                        watch_id,
                        revision,
                        events,
                    }) {
                        Ok(()) => (last + 1, true),
                        Err(SinkError::Full) => (from, false),
                        Err(SinkError::Closed) => {
                            self.hub.cancel(WatcherId(id));
                            return;
                        }
                    }
                }
                Err(Error::Compacted) => {
                    let compact_revision = self.history.compacted();
                    match sink.try_send(WatchMessage::Compacted {
                        watch_id,
                        compact_revision,
                    }) {
                        // Retried on the next turn: the cancel must reach the client.
                        Err(SinkError::Full) => (from, false),
                        Ok(()) | Err(SinkError::Closed) => {
                            self.hub.cancel(WatcherId(id));
                            return;
                        }
                    }
                }
                Err(err) => {
                    tracing::error!(%err, "watch catch-up failed; will retry");
                    (from, false)
                }
            };
            self.hub.end_catch_up(id, next);
            if !delivered {
                return;
            }
        }
    }

    /// Catches up many unsynced watchers with one read of the history, as etcd's
    /// syncWatchers does: thousands of watchers that fell behind together cost one read,
    /// not one each. Watchers behind the compaction point go one by one (each is told).
    /// Returns whether any watcher moved forward.
    fn sync_group(&self, ids: &[u64]) -> bool {
        let (group, alone) = self.hub.begin_group_catch_up(ids, self.history.compacted());
        for id in alone {
            self.sync_watcher(id);
        }
        let Some(from) = group.iter().map(|c| c.next).min() else {
            return false;
        };
        let to = group.iter().map(|c| c.to).max().unwrap_or(from);
        let read = replay::read_changes(
            &self.history.view(),
            &|change| group.iter().any(|c| c.filter.wants(change)),
            group.iter().any(|c| c.filter.prev_kv),
            from,
            to,
            WATCH_SYNC_EVENTS_MAX,
        );
        let outcomes: Vec<(u64, Delivery)> = match read {
            Ok((events, last)) => group
                .iter()
                .map(|c| (c.id, c.deliver(&events, last)))
                .collect(),
            Err(err) => {
                // A compaction raced the read: the next round sends these one by one.
                tracing::debug!(%err, "group catch-up failed; will retry");
                group
                    .iter()
                    .map(|c| (c.id, Delivery::Kept(c.next)))
                    .collect()
            }
        };
        let mut kept = Vec::with_capacity(outcomes.len());
        for (id, delivery) in outcomes {
            match delivery {
                Delivery::Closed => {
                    self.hub.cancel(WatcherId(id));
                }
                Delivery::Kept(next) => kept.push((id, next)),
            }
        }
        self.hub.end_catch_ups(&kept)
    }
}
