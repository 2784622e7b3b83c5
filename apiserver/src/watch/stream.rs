//! One HTTP watch: the deliveries of a cache subscription written as kube's watch stream,
//! one JSON event per line (`{"type":"ADDED","object":{...}}`).

use std::time::Duration;

use bytes::{BufMut as _, Bytes, BytesMut};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::cache::{Delivery, Subscription};
use crate::resources::Resource;
use crate::status::ApiError;
use crate::table::{self, Include};

/// Encoded events queued towards the connection.
pub const STREAM_QUEUE: usize = 64;

/// How objects are shown in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// The objects themselves.
    Object,
    /// One-row tables (`kubectl get -w`).
    Table(Include),
}

/// What the watch asked for besides its start.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// How objects are shown.
    pub shape: Shape,
    /// `allowWatchBookmarks`.
    pub bookmarks: bool,
    /// `sendInitialEvents`: end the initial events with the initial-events-end bookmark.
    pub initial_events_end: bool,
    /// `timeoutSeconds`.
    pub timeout: Duration,
}

fn line(kind: &str, object: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(object.len() + 32);
    out.put_slice(b"{\"type\":\"");
    out.put_slice(kind.as_bytes());
    out.put_slice(b"\",\"object\":");
    out.put_slice(object);
    out.put_slice(b"}\n");
    out.freeze()
}

/// The ERROR event a watch ends with when it cannot go on (kube sends 410 this way).
pub fn error_line(error: &ApiError) -> Bytes {
    line("ERROR", error.to_status().to_string().as_bytes())
}

fn bookmark(resource: &Resource, revision: i64, initial_end: bool) -> Bytes {
    let mut object = json!({
        "kind": resource.kind,
        "apiVersion": resource.api_version(),
        "metadata": { "resourceVersion": revision.to_string() },
    });
    if initial_end {
        object["metadata"]["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
    }
    line("BOOKMARK", object.to_string().as_bytes())
}

struct Encoder {
    resource: &'static Resource,
    options: Options,
    definitions_sent: bool,
}

impl Encoder {
    fn encode(&mut self, delivery: &Delivery) -> Option<Bytes> {
        match delivery {
            Delivery::Bookmark(revision) => self
                .options
                .bookmarks
                .then(|| bookmark(self.resource, *revision, false)),
            Delivery::Event { kind, event, prev } => Some(match self.options.shape {
                Shape::Object => line(kind.name(), event.json(*prev)),
                Shape::Table(include) => {
                    let shown: &Value = event.shown(*prev);
                    let metadata = json!({ "resourceVersion": event.revision.to_string() });
                    let first = !self.definitions_sent;
                    self.definitions_sent = true;
                    let t = table::table(self.resource, &[shown], metadata, include, first);
                    line(kind.name(), t.to_string().as_bytes())
                }
            }),
        }
    }
}

/// Writes the subscription into `out` until the timeout, the cache ending the watcher,
/// or the client going away.
pub async fn run(
    resource: &'static Resource,
    mut subscription: Subscription,
    options: Options,
    out: mpsc::Sender<Bytes>,
) {
    let mut encoder = Encoder {
        resource,
        options,
        definitions_sent: false,
    };
    let deadline = tokio::time::sleep(options.timeout);
    tokio::pin!(deadline);
    let initial = std::mem::take(&mut subscription.initial);
    for delivery in &initial {
        if let Some(bytes) = encoder.encode(delivery) {
            if out.send(bytes).await.is_err() {
                return;
            }
        }
    }
    drop(initial);
    if options.initial_events_end
        && out
            .send(bookmark(resource, subscription.revision, true))
            .await
            .is_err()
    {
        return;
    }
    loop {
        tokio::select! {
            delivery = subscription.live.recv() => {
                let Some(delivery) = delivery else { return };
                if let Some(bytes) = encoder.encode(&delivery) {
                    if out.send(bytes).await.is_err() {
                        return;
                    }
                }
            }
            _ = &mut deadline => return,
            _ = out.closed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::EventKind;

    #[test]
    fn lines_are_kube_watch_events() {
        let l = line(EventKind::Added.name(), br#"{"a":1}"#);
        assert_eq!(&l[..], b"{\"type\":\"ADDED\",\"object\":{\"a\":1}}\n");
        let error = error_line(&ApiError::expired("too old resource version: 1 (5)"));
        let v: Value = serde_json::from_slice(&error).unwrap();
        assert_eq!(v["type"], "ERROR");
        assert_eq!(v["object"]["code"], 410);
        assert_eq!(v["object"]["reason"], "Expired");
    }
}
