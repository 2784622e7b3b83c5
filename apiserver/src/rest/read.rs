//! get, list and watch.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::Response;
use http_body_util::{BodyExt as _, StreamBody};
use hyper::body::Frame;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::{shown, Api, Call};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::{ApiError, ApiResult};
use crate::storage::{self, Page};
use crate::table;
use crate::transport::codec::{self, Output};
use crate::transport::Body;
use crate::watch::cache::Start;
use crate::watch::stream::{self, Options, Shape};
use crate::watch::Filter;

/// Watches last this long at least, up to twice as long (kube's `--min-request-timeout`).
pub const WATCH_TIMEOUT_MIN: Duration = Duration::from_secs(1800);
/// Store pages read at most to fill one selective list page.
const FILL_ROUNDS_MAX: usize = 16;

/// The content type of Table answers.
const TABLE_MEDIA: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

/// Answers with one object, or a one-row table.
pub fn object_response(call: &Call<'_>, code: u16, object: &Value) -> Response<Body> {
    match call.output {
        Output::Table(include) => {
            let metadata = json!({ "resourceVersion": object.pointer("/metadata/resourceVersion").cloned().unwrap_or(json!("")) });
            let t = table::table(call.resource, &[object], metadata, include, true);
            table_response(&t)
        }
        output => codec::respond(code, object, output),
    }
}

fn table_response(table: &Value) -> Response<Body> {
    codec::bytes_response(200, TABLE_MEDIA, Bytes::from(table.to_string()))
}

pub async fn get(api: &Api, call: &Call<'_>) -> ApiResult<Response<Body>> {
    let name = call.name()?;
    let stored = api
        .storage
        .get(call.resource, &call.key(api)?)
        .await?
        .ok_or_else(|| ApiError::not_found(call.resource, name))?;
    Ok(object_response(
        call,
        200,
        &shown(call.resource, stored.object),
    ))
}

fn filter(call: &Call<'_>) -> ApiResult<Filter> {
    Ok(Filter {
        namespace: call.namespace().map(String::from),
        labels: LabelSelector::parse(call.query.get("labelSelector").unwrap_or(""))?,
        fields: FieldSelector::parse(call.query.get("fieldSelector").unwrap_or(""), call.resource)?,
    })
}

fn parse_revision(text: &str) -> ApiResult<i64> {
    text.parse::<i64>()
        .ok()
        .filter(|r| *r >= 0)
        .ok_or_else(|| ApiError::bad_request(format!("invalid resource version: {text:?}")))
}

pub async fn list(api: &Api, call: &Call<'_>) -> ApiResult<Response<Body>> {
    let filter = filter(call)?;
    let rv = call.query.get("resourceVersion").filter(|v| !v.is_empty());
    let exact = call.query.get("resourceVersionMatch") == Some("Exact");
    let limit = call.query.int("limit")?.unwrap_or(0).max(0);
    let token = call.query.get("continue").filter(|v| !v.is_empty());
    if token.is_some() && rv.is_some() {
        return Err(ApiError::bad_request(
            "specifying resource version is not allowed when using continue",
        ));
    }
    let (items, revision, next, remaining) = if rv == Some("0") && !exact {
        // Any state will do: the watch cache answers.
        let (items, revision) = api.caches.of(call.resource).snapshot(&filter).await;
        (items, revision, None, 0)
    } else {
        let collection = api.storage.collection(call.resource, call.namespace());
        let (mut revision, mut start) = match token {
            Some(t) => {
                let (revision, start) = storage::parse_continue(t, &collection)?;
                (revision, Some(start))
            }
            None => (0, None),
        };
        let wanted = rv.map(parse_revision).transpose()?;
        if let (Some(n), true) = (wanted, exact || limit > 0) {
            revision = n;
        }
        let mut items = Vec::new();
        let mut next = None;
        let mut remaining = 0;
        for _ in 0..FILL_ROUNDS_MAX {
            let page: Page = api
                .storage
                .list(
                    call.resource,
                    &collection,
                    start.as_deref(),
                    revision,
                    limit,
                )
                .await?;
            if revision == 0 {
                revision = page.revision;
                if let Some(n) = wanted.filter(|n| *n > revision) {
                    return Err(ApiError::timeout(format!(
                        "Too large resource version: {n}, current: {revision}"
                    )));
                }
            }
            remaining = page.remaining;
            // A page holds at most `limit` objects: one the selector fills from several
            // reads ends at the last object it takes, and continues after it.
            let mut full_at = None;
            let count = page.items.len();
            for (i, stored) in page.items.into_iter().enumerate() {
                if !filter.matches(&stored.object) {
                    continue;
                }
                items.push(stored.object);
                if limit > 0 && items.len() as i64 == limit {
                    full_at = Some(i);
                    break;
                }
            }
            next = match full_at {
                Some(i) if i + 1 < count || page.more_after.is_some() => {
                    let last = items.last().expect("a page ends at an object");
                    let name = crate::object::meta_str(last, "name").unwrap_or_default();
                    let ns = crate::object::meta_str(last, "namespace");
                    Some(api.storage.key(call.resource, ns, name))
                }
                Some(_) => None,
                None => page.more_after.clone(),
            };
            match (&full_at, page.more_after) {
                (None, Some(last)) if limit > 0 => start = Some(last),
                _ => break,
            }
        }
        let next = next.map(|last| storage::continue_token(revision, &last, &collection));
        (items, revision, next, remaining)
    };
    let mut metadata = json!({ "resourceVersion": revision.to_string() });
    if let Some(next) = &next {
        metadata["continue"] = json!(next);
        if filter.labels.is_empty() && filter.fields.is_empty() && remaining > 0 {
            metadata["remainingItemCount"] = json!(remaining);
        }
    }
    let items: Vec<Value> = items.into_iter().map(|o| shown(call.resource, o)).collect();
    Ok(match call.output {
        Output::Table(include) => {
            let refs: Vec<&Value> = items.iter().collect();
            table_response(&table::table(call.resource, &refs, metadata, include, true))
        }
        output => codec::respond(
            200,
            &json!({
                "kind": format!("{}List", call.resource.kind),
                "apiVersion": call.resource.api_version(),
                "metadata": metadata,
                "items": items,
            }),
            output,
        ),
    })
}

fn stream_response(media: &'static str, out: mpsc::Receiver<Bytes>) -> Response<Body> {
    let frames = futures::stream::unfold(out, |mut out| async move {
        out.recv()
            .await
            .map(|bytes| (Ok::<_, Infallible>(Frame::data(bytes)), out))
    });
    let mut response = Response::new(StreamBody::new(frames).boxed_unsync());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(media),
    );
    response
}

pub async fn watch(api: &Api, call: &Call<'_>) -> ApiResult<Response<Body>> {
    let filter = filter(call)?;
    let rv = call.query.get("resourceVersion").filter(|v| !v.is_empty());
    let initial_events = call.query.flag("sendInitialEvents");
    let start = match rv {
        _ if initial_events => Start::Current,
        None | Some("0") => Start::Current,
        Some(n) => Start::After(parse_revision(n)?),
    };
    let timeout = match call.query.int("timeoutSeconds")? {
        Some(seconds) if seconds > 0 => Duration::from_secs(seconds as u64),
        _ => WATCH_TIMEOUT_MIN + WATCH_TIMEOUT_MIN.mul_f64(fastrand::f64()),
    };
    let shape = match call.output {
        Output::Table(include) => Shape::Table(include),
        _ => Shape::Object,
    };
    let media = if matches!(shape, Shape::Table(_)) {
        TABLE_MEDIA
    } else {
        "application/json"
    };
    let bookmarks = call.query.flag("allowWatchBookmarks");
    let (out, body) = mpsc::channel(stream::STREAM_QUEUE);
    match api
        .caches
        .of(call.resource)
        .subscribe(start, filter, bookmarks)
        .await
    {
        Ok(subscription) => {
            let options = Options {
                shape,
                bookmarks,
                initial_events_end: initial_events,
                timeout,
            };
            tokio::spawn(stream::run(call.resource, subscription, options, out));
        }
        // kube answers a watch from a compacted revision with 200 and one ERROR event.
        Err(error) if error.code == 410 => {
            let _ = out.try_send(stream::error_line(&error));
        }
        Err(error) => return Err(error),
    }
    Ok(stream_response(media, body))
}
