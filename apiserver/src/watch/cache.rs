//! The watch cache of one resource: the current objects and the recent events, kept up to
//! date by one store watch, fanned out to every HTTP watcher through a bounded queue each.
//! A watcher whose queue is full is ended (kube's cacher does the same), never skipped:
//! its client resumes from the last resourceVersion it saw, which the history covers.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use ballast_client::{EventKind as StoreEventKind, WatchOptions, WatchResponse};
use bytes::Bytes;
use futures::StreamExt as _;
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use crate::object;
use crate::resources::Resource;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::{ApiError, ApiResult};
use crate::storage::{self, Storage};

/// Events of one resource kept for watchers that resume from an older resourceVersion.
pub const HISTORY_EVENTS_MAX: usize = 10_000;
/// Deliveries queued per HTTP watcher; a watcher this far behind is ended.
pub const WATCHER_QUEUE: usize = 1_024;
/// How often watchers that allow bookmarks learn the current resourceVersion.
pub const BOOKMARK_INTERVAL: Duration = Duration::from_secs(60);
/// Objects read per request while the cache fills.
const LIST_PAGE: i64 = 1_000;
/// Wait before the cache re-lists after its store watch failed.
const RELIST_BACKOFF: Duration = Duration::from_millis(500);

/// What happened to an object, as kube's watch names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Created, or entered the watcher's selection.
    Added,
    /// Changed.
    Modified,
    /// Deleted, or left the watcher's selection.
    Deleted,
}

impl EventKind {
    /// The `type` field.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Added => "ADDED",
            EventKind::Modified => "MODIFIED",
            EventKind::Deleted => "DELETED",
        }
    }
}

/// One change of one object.
#[derive(Debug)]
pub struct Event {
    /// What the store saw (Added: created; Modified; Deleted).
    pub kind: EventKind,
    /// The object after the change (for a delete: its last state), resourceVersion set
    /// to the change's revision.
    pub object: Value,
    /// The object before the change, resourceVersion set to the change's revision.
    pub prev: Option<Value>,
    /// The store revision of the change.
    pub revision: i64,
    object_json: OnceLock<Bytes>,
    prev_json: OnceLock<Bytes>,
}

impl Event {
    fn new(kind: EventKind, object: Value, prev: Option<Value>, revision: i64) -> Self {
        Event {
            kind,
            object,
            prev,
            revision,
            object_json: OnceLock::new(),
            prev_json: OnceLock::new(),
        }
    }

    /// The object's JSON, made once for every watcher.
    pub fn json(&self, prev: bool) -> &Bytes {
        let (cell, value) = match (prev, &self.prev) {
            (true, Some(p)) => (&self.prev_json, p),
            _ => (&self.object_json, &self.object),
        };
        cell.get_or_init(|| Bytes::from(serde_json::to_vec(value).expect("JSON serializes")))
    }

    /// The object a delivery shows.
    pub fn shown(&self, prev: bool) -> &Value {
        match (prev, &self.prev) {
            (true, Some(p)) => p,
            _ => &self.object,
        }
    }
}

/// What one watcher receives.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// An event as this watcher sees it: `prev` shows the object before the change (an
    /// object leaving the selection is DELETED as it was).
    Event {
        /// The type the watcher sees.
        kind: EventKind,
        /// The change.
        event: Arc<Event>,
        /// Show the previous state.
        prev: bool,
    },
    /// Everything up to this revision has been delivered.
    Bookmark(i64),
}

/// Which objects a watcher selects.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this namespace's objects.
    pub namespace: Option<String>,
    /// `labelSelector`.
    pub labels: LabelSelector,
    /// `fieldSelector`.
    pub fields: FieldSelector,
}

impl Filter {
    /// True when the object is selected.
    pub fn matches(&self, object: &Value) -> bool {
        if let Some(ns) = &self.namespace {
            if object::meta_str(object, "namespace") != Some(ns.as_str()) {
                return false;
            }
        }
        self.labels.matches(object) && self.fields.matches(object)
    }

    /// How the watcher sees `event`, if at all (kube's cacheWatcher rules).
    fn deliver(&self, event: &Arc<Event>) -> Option<Delivery> {
        let now = event.kind != EventKind::Deleted && self.matches(&event.object);
        let before = match event.kind {
            EventKind::Deleted => self.matches(&event.object),
            _ => event.prev.as_ref().is_some_and(|p| self.matches(p)),
        };
        let (kind, prev) = match (before, now) {
            (true, true) => (event.kind, false),
            (false, true) => (EventKind::Added, false),
            (true, false) if event.kind == EventKind::Deleted => (EventKind::Deleted, false),
            (true, false) => (EventKind::Deleted, true),
            (false, false) => return None,
        };
        Some(Delivery::Event {
            kind,
            event: event.clone(),
            prev,
        })
    }
}

/// Where an HTTP watcher starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// The current objects as ADDED events, then changes.
    Current,
    /// Changes after this revision.
    After(i64),
}

/// A watcher's start: what it is sent first, then its queue.
#[derive(Debug)]
pub struct Subscription {
    /// Deliveries before the live ones (the current state, or replayed history).
    pub initial: Vec<Delivery>,
    /// The cache's revision when the subscription was made.
    pub revision: i64,
    /// Live deliveries; closed when the watcher falls too far behind.
    pub live: mpsc::Receiver<Delivery>,
}

struct Slot {
    filter: Filter,
    /// Events at or below this revision were in what the watcher started from.
    after: i64,
    bookmarks: bool,
    queue: mpsc::Sender<Delivery>,
}

#[derive(Default)]
struct State {
    objects: BTreeMap<String, Value>,
    revision: i64,
    /// History holds every event after this revision.
    oldest: i64,
    history: VecDeque<Arc<Event>>,
    watchers: Vec<Slot>,
}

/// The cache of one resource.
pub struct Cacher {
    resource: &'static Resource,
    /// The store keys of the resource start with this; objects are kept by the rest.
    collection: String,
    state: Mutex<State>,
    ready: watch::Receiver<bool>,
    /// Moves with every change the cache applies (and every re-fill), so readers that
    /// derive state from the cache (the RBAC index) know when to derive it again.
    changes: AtomicU64,
}

impl std::fmt::Debug for Cacher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cacher")
            .field("resource", &self.resource.plural)
            .finish()
    }
}

impl Cacher {
    fn start(storage: Storage, resource: &'static Resource) -> Arc<Cacher> {
        let (ready_tx, ready) = watch::channel(false);
        let cacher = Arc::new(Cacher {
            resource,
            collection: storage.collection(resource, None),
            state: Mutex::new(State::default()),
            ready,
            changes: AtomicU64::new(0),
        });
        let weak = Arc::downgrade(&cacher);
        tokio::spawn(async move {
            loop {
                let Some(cacher) = weak.upgrade() else { return };
                if let Err(error) = cacher.fill_and_follow(&storage, &ready_tx).await {
                    tracing::warn!(resource = cacher.resource.plural, %error, "watch cache re-lists");
                }
                drop(cacher);
                tokio::time::sleep(RELIST_BACKOFF).await;
            }
        });
        cacher
    }

    async fn fill_and_follow(
        &self,
        storage: &Storage,
        ready: &watch::Sender<bool>,
    ) -> ApiResult<()> {
        let collection = &self.collection;
        let mut objects = BTreeMap::new();
        let mut start: Option<String> = None;
        let mut revision = 0;
        loop {
            let page = storage
                .list(
                    self.resource,
                    collection,
                    start.as_deref(),
                    revision,
                    LIST_PAGE,
                )
                .await?;
            revision = page.revision;
            for stored in page.items {
                objects.insert(relative_key(&stored.object, self.resource), stored.object);
            }
            match page.more_after {
                Some(last) => start = Some(last),
                None => break,
            }
        }
        {
            let mut state = self.state.lock().expect("cache lock");
            // Watchers of the previous fill are ended: they resume from their last
            // resourceVersion, or are told it expired.
            state.watchers.clear();
            state.objects = objects;
            state.revision = revision;
            state.oldest = revision;
            state.history.clear();
        }
        self.changes.fetch_add(1, Ordering::Release);
        let _ = ready.send(true);
        let options = WatchOptions::new()
            .with_prefix()
            .with_prev_kv()
            .with_start_revision(revision + 1);
        let (watcher, mut stream) = storage.client().watch(collection, options).await?;
        let mut ticks = tokio::time::interval(BOOKMARK_INTERVAL);
        ticks.tick().await;
        loop {
            tokio::select! {
                message = stream.next() => match message {
                    Some(Ok(response)) => self.apply(response),
                    Some(Err(error)) => return Err(error.into()),
                    None => return Err(ApiError::internal("the store watch ended")),
                },
                _ = ticks.tick() => {
                    let _ = watcher.request_progress().await;
                }
            }
        }
    }

    fn apply(&self, response: WatchResponse) {
        let mut state = self.state.lock().expect("cache lock");
        if response.events.is_empty() {
            state.revision = state.revision.max(response.header.revision);
            let revision = state.revision;
            for slot in state.watchers.iter().filter(|s| s.bookmarks) {
                let _ = slot.queue.try_send(Delivery::Bookmark(revision));
            }
            return;
        }
        for change in response.events {
            let key = String::from_utf8_lossy(&change.kv.key);
            let key = key
                .strip_prefix(self.collection.as_str())
                .unwrap_or(&key)
                .to_string();
            let revision = change.kv.mod_revision;
            let prev = change.prev_kv.as_ref().and_then(|kv| {
                storage::decode(self.resource, &kv.value, revision).map(|s| s.object)
            });
            let event = match change.kind {
                StoreEventKind::Put => {
                    let Some(object) = storage::decode(self.resource, &change.kv.value, revision)
                        .map(|s| s.object)
                    else {
                        continue;
                    };
                    state.objects.insert(key, object.clone());
                    let kind = if change.kv.create_revision == revision {
                        EventKind::Added
                    } else {
                        EventKind::Modified
                    };
                    Event::new(kind, object, prev, revision)
                }
                StoreEventKind::Delete => {
                    let last = state.objects.remove(&key);
                    let Some(mut object) = prev.clone().or(last) else {
                        continue;
                    };
                    object::set_resource_version(&mut object, revision);
                    Event::new(EventKind::Deleted, object, None, revision)
                }
            };
            let event = Arc::new(event);
            self.changes.fetch_add(1, Ordering::Release);
            state.history.push_back(event.clone());
            if state.history.len() > HISTORY_EVENTS_MAX {
                if let Some(old) = state.history.pop_front() {
                    state.oldest = old.revision;
                }
            }
            state
                .watchers
                .retain(|slot| match slot.filter.deliver(&event) {
                    Some(delivery) if revision > slot.after => {
                        slot.queue.try_send(delivery).is_ok()
                    }
                    _ => !slot.queue.is_closed(),
                });
            state.revision = state.revision.max(revision);
        }
        state.revision = state.revision.max(response.header.revision);
    }

    async fn wait_ready(&self) {
        let mut ready = self.ready.clone();
        let _ = ready.wait_for(|r| *r).await;
    }

    /// Starts a watcher.
    pub async fn subscribe(
        &self,
        start: Start,
        filter: Filter,
        bookmarks: bool,
    ) -> ApiResult<Subscription> {
        self.wait_ready().await;
        let (queue, live) = mpsc::channel(WATCHER_QUEUE);
        let mut state = self.state.lock().expect("cache lock");
        let after = match start {
            Start::Current => state.revision,
            Start::After(revision) => revision.max(state.revision),
        };
        let initial = match start {
            Start::Current => state
                .objects
                .values()
                .filter(|o| filter.matches(o))
                .map(|o| Delivery::Event {
                    kind: EventKind::Added,
                    event: Arc::new(Event::new(
                        EventKind::Added,
                        o.clone(),
                        None,
                        revision_of(o),
                    )),
                    prev: false,
                })
                .collect(),
            Start::After(revision) if revision < state.oldest => {
                return Err(ApiError::expired(format!(
                    "too old resource version: {revision} ({})",
                    state.oldest + 1
                )));
            }
            Start::After(revision) => state
                .history
                .iter()
                .filter(|e| e.revision > revision)
                .filter_map(|e| filter.deliver(e))
                .collect(),
        };
        state.watchers.push(Slot {
            filter,
            after,
            bookmarks,
            queue,
        });
        Ok(Subscription {
            initial,
            revision: state.revision,
            live,
        })
    }

    /// The current objects the filter selects, in key order, and the cache's revision:
    /// `resourceVersion=0` lists.
    pub async fn snapshot(&self, filter: &Filter) -> (Vec<Value>, i64) {
        self.wait_ready().await;
        let state = self.state.lock().expect("cache lock");
        let items = state
            .objects
            .values()
            .filter(|o| filter.matches(o))
            .cloned()
            .collect();
        (items, state.revision)
    }

    /// The objects the filter selects and `keep` wants, cloned (others are only looked at).
    pub async fn select(&self, filter: &Filter, keep: impl Fn(&Value) -> bool) -> Vec<Value> {
        self.wait_ready().await;
        let state = self.state.lock().expect("cache lock");
        state
            .objects
            .values()
            .filter(|o| filter.matches(o) && keep(o))
            .cloned()
            .collect()
    }

    /// Visits the objects the filter selects, without copying them (`visit` runs under
    /// the cache's lock: keep it short).
    pub async fn visit(&self, filter: &Filter, mut visit: impl FnMut(&Value)) {
        self.wait_ready().await;
        let state = self.state.lock().expect("cache lock");
        state
            .objects
            .values()
            .filter(|o| filter.matches(o))
            .for_each(&mut visit);
    }

    /// The cached object at `key` (`<namespace>/<name>` or `<name>`), if the cache is
    /// filled and has it.
    pub fn get(&self, key: &str) -> Option<Value> {
        if !*self.ready.borrow() {
            return None;
        }
        self.state
            .lock()
            .expect("cache lock")
            .objects
            .get(key)
            .cloned()
    }

    /// A count that moves with every change applied.
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Acquire)
    }

    /// Waits until the cache is filled.
    pub async fn ready(&self) {
        self.wait_ready().await;
    }
}

fn revision_of(object: &Value) -> i64 {
    object::meta_str(object, "resourceVersion")
        .and_then(|rv| rv.parse().ok())
        .unwrap_or(0)
}

/// The key below the resource's collection: `<namespace>/<name>` or `<name>`, which sorts
/// as the store keys do.
fn relative_key(object: &Value, resource: &Resource) -> String {
    let name = object::meta_str(object, "name").unwrap_or_default();
    match object::meta_str(object, "namespace") {
        Some(ns) if resource.namespaced => format!("{ns}/{name}"),
        _ => name.to_string(),
    }
}

/// The caches of every resource, started on first use.
#[derive(Debug)]
pub struct Caches {
    storage: Storage,
    caches: Mutex<HashMap<(&'static str, &'static str), Arc<Cacher>>>,
}

impl Caches {
    /// No cache yet; each starts when its resource is first watched or listed at "0".
    pub fn new(storage: Storage) -> Self {
        Caches {
            storage,
            caches: Mutex::new(HashMap::new()),
        }
    }

    /// The cache of `resource`.
    pub fn of(&self, resource: &'static Resource) -> Arc<Cacher> {
        let mut caches = self.caches.lock().expect("caches lock");
        caches
            .entry((resource.group, resource.plural))
            .or_insert_with(|| Cacher::start(self.storage.clone(), resource))
            .clone()
    }
}
