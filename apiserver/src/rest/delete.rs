//! delete and deletecollection: preconditions, finalizers (an object that has any is only
//! marked, with `deletionTimestamp`, until they are removed), and the namespace lifecycle
//! (a deleted namespace is Terminating while its content is deleted, then goes).

use std::time::Duration;

use http::Response;
use serde_json::{json, Value};

use super::read::object_response;
use super::{shown, Api, Call};
use crate::object::{self, meta_mut, meta_str};
use crate::resources::{self, Resource};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::{ApiError, ApiResult};
use crate::storage::{Outcome, Stored};
use crate::transport::codec;
use crate::transport::Body;
use crate::{admission, watch::Filter};

/// How often a terminating namespace's content is checked again.
const NAMESPACE_SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// Delete attempts per object before a delete that keeps meeting newer versions gives up.
const DELETE_ROUNDS_MAX: usize = 16;

/// What a DeleteOptions body and the query ask for.
#[derive(Debug, Default, Clone)]
struct Options {
    uid: Option<String>,
    resource_version: Option<String>,
    dry_run: bool,
}

fn options(call: &Call<'_>) -> ApiResult<Options> {
    let body: Value = if call.body.is_empty() {
        json!({})
    } else {
        codec::decode(&call.media, &call.body)?
    };
    let text = |p: &str| body.pointer(p).and_then(Value::as_str).map(String::from);
    let dry_run = call.dry_run()
        || body
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|d| d.iter().any(|v| v == "All"));
    Ok(Options {
        uid: text("/preconditions/uid"),
        resource_version: text("/preconditions/resourceVersion"),
        dry_run,
    })
}

fn check_preconditions(
    resource: &Resource,
    name: &str,
    object: &Value,
    options: &Options,
) -> ApiResult<()> {
    if let Some(uid) = &options.uid {
        let have = meta_str(object, "uid").unwrap_or_default();
        if have != uid {
            return Err(ApiError::conflict(
                resource,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {have}"
                ),
            ));
        }
    }
    if let Some(rv) = &options.resource_version {
        let have = meta_str(object, "resourceVersion").unwrap_or_default();
        if have != rv {
            return Err(ApiError::conflict(
                resource,
                name,
                &format!("Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {have}"),
            ));
        }
    }
    Ok(())
}

/// Deletes (or, with finalizers, marks) one object; answers the object as it ends up.
async fn delete_named(
    api: &Api,
    resource: &'static Resource,
    namespace: Option<&str>,
    name: &str,
    options: &Options,
) -> ApiResult<Value> {
    admission::delete(resource, name)?;
    let key = api.storage.key(resource, namespace, name);
    for _ in 0..DELETE_ROUNDS_MAX {
        let Stored {
            object: current,
            revision,
        } = api
            .storage
            .get(resource, &key)
            .await?
            .ok_or_else(|| ApiError::not_found(resource, name))?;
        check_preconditions(resource, name, &current, options)?;
        let is_namespace = resource.plural == "namespaces" && resource.group.is_empty();
        let pending = is_namespace || !object::finalizers(&current).is_empty();
        if pending {
            if current.pointer("/metadata/deletionTimestamp").is_some() {
                return Ok(shown(resource, current));
            }
            let mut marked = current.clone();
            let meta = meta_mut(&mut marked);
            meta.insert("deletionTimestamp".into(), json!(object::now()));
            meta.insert("deletionGracePeriodSeconds".into(), json!(0));
            if is_namespace {
                marked["status"] = json!({ "phase": "Terminating" });
            }
            if options.dry_run {
                return Ok(shown(resource, marked));
            }
            match api
                .storage
                .update(resource, &key, revision, &marked)
                .await?
            {
                Outcome::Written(written) => {
                    object::set_resource_version(&mut marked, written);
                    if is_namespace {
                        // When the queue is full, the controller's sweep finds it.
                        let _ = api.terminating.try_send(name.to_string());
                    }
                    return Ok(shown(resource, marked));
                }
                Outcome::Missing => return Err(ApiError::not_found(resource, name)),
                Outcome::Changed(_) => continue,
            }
        }
        if options.dry_run {
            return Ok(shown(resource, current));
        }
        match api.storage.delete(&key, revision).await? {
            Outcome::Written(_) => return Ok(shown(resource, current)),
            Outcome::Missing => return Err(ApiError::not_found(resource, name)),
            Outcome::Changed(_) => continue,
        }
    }
    Err(ApiError::conflict(
        resource,
        name,
        "too many concurrent writes, please try again",
    ))
}

pub async fn delete(api: &Api, call: &Call<'_>) -> ApiResult<Response<Body>> {
    let options = options(call)?;
    let deleted =
        delete_named(api, call.resource, call.namespace(), call.name()?, &options).await?;
    Ok(object_response(call, 200, &deleted))
}

pub async fn delete_collection(api: &Api, call: &Call<'_>) -> ApiResult<Response<Body>> {
    let options = options(call)?;
    let filter = Filter {
        namespace: call.namespace().map(String::from),
        labels: LabelSelector::parse(call.query.get("labelSelector").unwrap_or(""))?,
        fields: FieldSelector::parse(call.query.get("fieldSelector").unwrap_or(""), call.resource)?,
    };
    let collection = api.storage.collection(call.resource, call.namespace());
    let page = api
        .storage
        .list(call.resource, &collection, None, 0, 0)
        .await?;
    let mut deleted = Vec::new();
    for stored in page.items.into_iter().filter(|s| filter.matches(&s.object)) {
        let name = meta_str(&stored.object, "name")
            .unwrap_or_default()
            .to_string();
        let ns = meta_str(&stored.object, "namespace").map(String::from);
        match delete_named(api, call.resource, ns.as_deref(), &name, &options).await {
            Ok(object) => deleted.push(object),
            Err(error) if error.code == 404 => {}
            Err(error) => return Err(error),
        }
    }
    let list = json!({
        "kind": format!("{}List", call.resource.kind),
        "apiVersion": call.resource.api_version(),
        "metadata": { "resourceVersion": page.revision.to_string() },
        "items": deleted,
    });
    Ok(codec::respond(200, &list, call.output))
}

/// Terminating namespaces queued for the controller; past this, its sweep finds them.
pub const TERMINATING_QUEUE: usize = 256;
/// How often the controller looks for terminating namespaces it was not told of (after
/// a restart, or a full queue).
const TERMINATING_SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// The namespace controller: finishes every terminating namespace, one at a time.
pub async fn namespace_controller(api: Api, mut queue: tokio::sync::mpsc::Receiver<String>) {
    let namespaces = resources::find("", "v1", "namespaces").expect("namespaces are served");
    let mut sweep = tokio::time::interval(TERMINATING_SWEEP_INTERVAL);
    loop {
        let names = tokio::select! {
            name = queue.recv() => match name {
                Some(name) => vec![name],
                None => return,
            },
            _ = sweep.tick() => {
                let collection = api.storage.collection(namespaces, None);
                match api.storage.list(namespaces, &collection, None, 0, 0).await {
                    Ok(page) => page
                        .items
                        .iter()
                        .filter(|s| s.object.pointer("/metadata/deletionTimestamp").is_some())
                        .filter_map(|s| meta_str(&s.object, "name").map(String::from))
                        .collect(),
                    Err(_) => Vec::new(),
                }
            }
        };
        for name in names {
            terminate_namespace(api.clone(), name).await;
        }
    }
}

/// The namespace controller's work for one terminating namespace: delete everything in
/// it, wait for objects held by finalizers, then drop the `kubernetes` finalizer and the
/// namespace.
async fn terminate_namespace(api: Api, name: String) {
    let everything = Options::default();
    loop {
        let mut left = 0;
        for resource in resources::RESOURCES.iter().filter(|r| r.namespaced) {
            let collection = api.storage.collection(resource, Some(&name));
            let Ok(page) = api.storage.list(resource, &collection, None, 0, 0).await else {
                left += 1;
                continue;
            };
            for stored in page.items {
                left += 1;
                let object_name = meta_str(&stored.object, "name")
                    .unwrap_or_default()
                    .to_string();
                let _ = delete_named(&api, resource, Some(&name), &object_name, &everything).await;
            }
        }
        if left == 0 {
            break;
        }
        tokio::time::sleep(NAMESPACE_SWEEP_INTERVAL).await;
    }
    let namespaces = resources::find("", "v1", "namespaces").expect("namespaces are served");
    let key = api.storage.key(namespaces, None, &name);
    for _ in 0..DELETE_ROUNDS_MAX {
        let Ok(Some(Stored {
            object: mut ns,
            revision,
        })) = api.storage.get(namespaces, &key).await
        else {
            return;
        };
        if let Some(finalizers) = ns
            .pointer_mut("/spec/finalizers")
            .and_then(Value::as_array_mut)
        {
            finalizers.retain(|f| f != "kubernetes");
        }
        match api.storage.update(namespaces, &key, revision, &ns).await {
            Ok(Outcome::Written(_)) => break,
            Ok(Outcome::Changed(_)) => continue,
            _ => return,
        }
    }
    if let Err(error) = finish_namespace(&api, &name).await {
        tracing::warn!(namespace = %name, %error, "namespace not removed");
    }
}

/// Removes a terminating namespace once nothing holds it.
pub async fn finish_namespace(api: &Api, name: &str) -> ApiResult<()> {
    let namespaces = resources::find("", "v1", "namespaces").expect("namespaces are served");
    let key = api.storage.key(namespaces, None, name);
    for _ in 0..DELETE_ROUNDS_MAX {
        let Some(Stored { object, revision }) = api.storage.get(namespaces, &key).await? else {
            return Ok(());
        };
        let spec_finalizers = object
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        if object.pointer("/metadata/deletionTimestamp").is_none()
            || spec_finalizers
            || !object::finalizers(&object).is_empty()
        {
            return Ok(());
        }
        match api.storage.delete(&key, revision).await? {
            Outcome::Changed(_) => continue,
            _ => return Ok(()),
        }
    }
    Ok(())
}
