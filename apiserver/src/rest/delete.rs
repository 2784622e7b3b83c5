//! delete and deletecollection: preconditions, finalizers (an object that has any is only
//! marked, with `deletionTimestamp`, until they are removed), propagation to dependents
//! (the garbage collector's work: Background, Foreground, Orphan), and the namespace
//! lifecycle (a deleted namespace is Terminating while its content is deleted).

use http::Response;
use serde_json::{json, Value};

use super::read::object_response;
use super::{shown, Api, Call, GcWork};
use crate::admission::{self, policy, webhook, Plugin};
use crate::authn::User;
use crate::object::{self, meta_mut, meta_str};
use crate::resources::{self, Resource};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::{ApiError, ApiResult};
use crate::storage::{Outcome, Stored};
use crate::transport::codec;
use crate::transport::Body;
use crate::watch::Filter;

/// Delete attempts per object before a delete that keeps meeting newer versions gives up.
pub(crate) const DELETE_ROUNDS_MAX: usize = 16;
/// The finalizer of a Foreground delete: the object stays until its dependents are gone.
pub(crate) const FOREGROUND: &str = "foregroundDeletion";
/// The finalizer of an Orphan delete: the object stays until its dependents let go of it.
pub(crate) const ORPHAN: &str = "orphan";

/// What happens to an object's dependents (`propagationPolicy`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Policy {
    /// The object goes now; the garbage collector deletes its dependents after.
    #[default]
    Background,
    /// The dependents go first, then the object.
    Foreground,
    /// The dependents stay, without their reference to the object.
    Orphan,
}

/// What a DeleteOptions body and the query ask for.
#[derive(Debug, Default, Clone)]
pub(crate) struct DeleteOptions {
    uid: Option<String>,
    resource_version: Option<String>,
    dry_run: bool,
    pub(crate) policy: Policy,
}

impl DeleteOptions {
    /// Deletes only the object with this uid (a precondition).
    pub(crate) fn of_uid(uid: &str) -> DeleteOptions {
        DeleteOptions {
            uid: Some(uid.to_string()),
            ..DeleteOptions::default()
        }
    }
}

fn options(call: &Call<'_>) -> ApiResult<DeleteOptions> {
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
    let policy = match text("/propagationPolicy").as_deref().or(call.query.get("propagationPolicy")) {
        None | Some("") | Some("Background") => {
            let orphan = body.get("orphanDependents").and_then(Value::as_bool)
                .or_else(|| call.query.get("orphanDependents").map(|v| v == "true"));
            if orphan == Some(true) { Policy::Orphan } else { Policy::Background }
        }
        Some("Foreground") => Policy::Foreground,
        Some("Orphan") => Policy::Orphan,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "propagationPolicy: Unsupported value: {other:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
            )))
        }
    };
    Ok(DeleteOptions {
        uid: text("/preconditions/uid"),
        resource_version: text("/preconditions/resourceVersion"),
        dry_run,
        policy,
    })
}

fn check_preconditions(
    resource: &Resource,
    name: &str,
    object: &Value,
    options: &DeleteOptions,
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
/// `user` is who asks (validating webhooks see it); None for the server's own controllers.
pub(crate) async fn delete_named(
    api: &Api,
    resource: &'static Resource,
    namespace: Option<&str>,
    name: &str,
    options: &DeleteOptions,
    user: Option<&User>,
) -> ApiResult<Value> {
    admission::validate_delete(&api.plugins, resource, name)?;
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
        if let Some(user) = user {
            let write = webhook::Write {
                operation: webhook::Operation::Delete,
                resource,
                subresource: None,
                namespace,
                name,
                user,
                old: Some(&current),
                dry_run: options.dry_run,
            };
            if api.plugins.has(Plugin::ValidatingAdmissionPolicy) {
                policy::validate(api.admission(), write, &current).await?;
            }
            if api.plugins.has(Plugin::ValidatingAdmissionWebhook) {
                webhook::validate(api.admission(), write, &current).await?;
            }
        }
        let is_namespace = resource.plural == "namespaces" && resource.group.is_empty();
        let held = match options.policy {
            Policy::Foreground if !is_namespace => Some(FOREGROUND),
            Policy::Orphan if !is_namespace => Some(ORPHAN),
            _ => None,
        };
        let pending = is_namespace || held.is_some() || !object::finalizers(&current).is_empty();
        if pending {
            if current.pointer("/metadata/deletionTimestamp").is_some() {
                return Ok(shown(resource, current));
            }
            let mut marked = current.clone();
            let mut finalizers = object::finalizers(&current);
            if let Some(held) = held.filter(|h| !finalizers.iter().any(|f| f == h)) {
                finalizers.push(held.to_string());
            }
            let meta = meta_mut(&mut marked);
            meta.insert("deletionTimestamp".into(), json!(object::now()));
            meta.insert("deletionGracePeriodSeconds".into(), json!(0));
            if !finalizers.is_empty() {
                meta.insert("finalizers".into(), json!(finalizers));
            }
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
                    // When a queue is full, its controller's sweep finds the object.
                    if is_namespace {
                        let _ = api.terminating.try_send(name.to_string());
                    } else if held.is_some() {
                        let _ = api.gc.try_send(GcWork::Finalize(
                            resource,
                            namespace.map(String::from),
                            name.to_string(),
                        ));
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
            Outcome::Written(_) => {
                api.owner_gone(&current);
                return Ok(shown(resource, current));
            }
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
    let deleted = delete_named(
        api,
        call.resource,
        call.namespace(),
        call.name()?,
        &options,
        Some(call.user),
    )
    .await?;
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
        match delete_named(
            api,
            call.resource,
            ns.as_deref(),
            &name,
            &options,
            Some(call.user),
        )
        .await
        {
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
