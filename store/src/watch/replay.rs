//! Reading past events from the history (`rev` column family) for watchers that start
//! in the past or fell behind.

use ballast_proto::mvccpb::{event::EventType, Event, KeyValue};

use crate::backend::Cf;
use crate::error::{Error, Result};
use crate::keys::{rev_key, split_rev_key};
use crate::mvcc::read::{KvRead, ReadView};
use crate::record::{Change, ChangeKind, Version};
use crate::watch::{Filter, WATCH_RESPONSE_BYTES_MAX};

/// What an event weighs in a response, near enough: its keys and values.
pub(crate) fn event_bytes(event: &Event) -> usize {
    let kv_bytes =
        |kv: &Option<KeyValue>| kv.as_ref().map_or(0, |kv| kv.key.len() + kv.value.len());
    kv_bytes(&event.kv) + kv_bytes(&event.prev_kv) + EVENT_OVERHEAD_BYTES
}

/// What an event adds to a response past its keys and values (revisions, versions, tags).
const EVENT_OVERHEAD_BYTES: usize = 48;

/// Events of revisions `from..=to` that pass `filter`, in commit order, stopping after the
/// revision at which `events_max` events or `WATCH_RESPONSE_BYTES_MAX` bytes are reached
/// (a revision is never split). Returns the events and the last revision read.
pub(crate) fn read_events(
    view: &ReadView<'_>,
    filter: &Filter,
    from: i64,
    to: i64,
    events_max: usize,
) -> Result<(Vec<Event>, i64)> {
    read_changes(
        view,
        &|change| filter.wants(change),
        filter.prev_kv,
        from,
        to,
        events_max,
    )
}

/// As [`read_events`], for the changes `wants` accepts, with previous versions if
/// `with_prev`: one read of the history serves a whole group of watchers.
pub(crate) fn read_changes(
    view: &ReadView<'_>,
    wants: &dyn Fn(&Change) -> bool,
    with_prev: bool,
    from: i64,
    to: i64,
    events_max: usize,
) -> Result<(Vec<Event>, i64)> {
    assert!(from <= to, "empty replay {from}..={to}");
    if from < view.compacted() {
        return Err(Error::Compacted);
    }
    let upper = rev_key(to + 1, 0).to_vec();
    let mut iter = view.iterator(Cf::Rev, None, Some(upper));
    iter.seek(rev_key(from, 0));
    let mut events = Vec::new();
    let mut bytes = 0;
    let mut last = to;
    while let (Some(key), Some(value)) = (iter.key(), iter.value()) {
        let (revision, _) = split_rev_key(key);
        if (events.len() >= events_max || bytes >= WATCH_RESPONSE_BYTES_MAX)
            && events
                .last()
                .is_some_and(|e: &Event| mod_revision(e) != revision)
        {
            last = revision - 1;
            break;
        }
        let change = Change::decode(value)?;
        if wants(&change) {
            let event = load_event(view, &change, revision, with_prev)?;
            bytes += event_bytes(&event);
            events.push(event);
        }
        iter.next();
    }
    iter.status()?;
    Ok((events, last))
}

pub(crate) fn mod_revision(event: &Event) -> i64 {
    event.kv.as_ref().map_or(0, |kv| kv.mod_revision)
}

fn load_event(
    view: &ReadView<'_>,
    change: &Change,
    revision: i64,
    with_prev: bool,
) -> Result<Event> {
    let prev_kv = if with_prev && revision > view.compacted() {
        view.get(&change.key, revision - 1)?
    } else {
        None
    };
    let (kind, kv) = match change.kind {
        ChangeKind::Put => {
            let version = view.version_at(&change.key, revision)?;
            let Some(Version::Put {
                create_revision,
                version,
                lease,
                value,
            }) = version
            else {
                return Err(Error::Corrupt(format!(
                    "history names a put of {:?} at {revision} that is not stored",
                    change.key
                )));
            };
            let kv = KeyValue {
                key: change.key.clone(),
                create_revision,
                mod_revision: revision,
                version,
                value,
                lease,
            };
            (EventType::Put, kv)
        }
        ChangeKind::Delete => {
            let kv = KeyValue {
                key: change.key.clone(),
                mod_revision: revision,
                ..Default::default()
            };
            (EventType::Delete, kv)
        }
    };
    Ok(Event {
        r#type: kind as i32,
        kv: Some(kv),
        prev_kv,
    })
}
