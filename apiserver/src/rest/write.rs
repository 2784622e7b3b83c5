//! create, update and patch: defaulting, admission and validation, then a conditional
//! write (kube's GuaranteedUpdate: read, change, write if the key is still at the
//! revision read; read again and retry when it is not and the client named no version).

use http::Response;
use serde_json::{json, Value};

use super::read::object_response;
use super::{shown, Api, Call};
use crate::admission::{self, policy, resource_quota, webhook, Plugin};
use crate::authz::escalation;
use crate::object::{self, meta_mut, meta_str};
use crate::patch::{self, Flavour};
use crate::resources::{Resource, Sub};
use crate::status::{ApiError, ApiResult};
use crate::storage::{Outcome, Stored};
use crate::transport::codec;
use crate::transport::Body;
use crate::{defaults, managed, validation};

/// Read-change-write rounds before a write that keeps meeting newer versions gives up.
const UPDATE_ROUNDS_MAX: usize = 16;
/// The longest field manager name kube accepts.
const FIELD_MANAGER_MAX: usize = 128;

/// Whose write `managedFields` records.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Owner<'a> {
    /// An update (create, PUT, non-apply PATCH) by this manager.
    Update(&'a str),
    /// A server-side apply, which recorded its ownership itself.
    Applied,
}

/// The call's field manager: `fieldManager=`, else the name the client's User-Agent
/// starts with (kube's default).
pub(crate) fn manager(call: &Call<'_>) -> ApiResult<String> {
    match call.query.get("fieldManager").filter(|m| !m.is_empty()) {
        Some(m) if m.len() > FIELD_MANAGER_MAX => Err(ApiError::bad_request(format!(
            "fieldManager: Too long: may not be longer than {FIELD_MANAGER_MAX}"
        ))),
        Some(m) => Ok(m.to_string()),
        None => Ok(call
            .headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .and_then(|ua| ua.split('/').next())
            .filter(|name| !name.is_empty())
            .unwrap_or("unknown")
            .to_string()),
    }
}

/// Which part of the object a write changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The object, its status kept as stored (for kinds with a status subresource).
    Main,
    /// Only `.status` (the `/status` subresource).
    Status,
}

/// Checks a body's apiVersion and kind against the resource; fills them when missing.
fn check_type(resource: &Resource, object: &mut Value) -> ApiResult<()> {
    let want = resource.api_version();
    if let Some(have) = object.get("apiVersion").and_then(Value::as_str) {
        if have != want {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({have}) does not match the expected API version ({want})"
            )));
        }
    }
    if let Some(kind) = object.get("kind").and_then(Value::as_str) {
        if kind != resource.kind {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({kind}) does not match the expected kind ({})",
                resource.kind
            )));
        }
    }
    object::set_type(object, resource);
    Ok(())
}

/// Sets the namespace from the path; a different one in the body is refused.
fn check_namespace(call: &Call<'_>, object: &mut Value) -> ApiResult<()> {
    let Some(ns) = call.namespace() else {
        meta_mut(object).remove("namespace");
        return Ok(());
    };
    match meta_str(object, "namespace") {
        Some(have) if !have.is_empty() && have != ns => Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
        _ => {
            meta_mut(object).insert("namespace".into(), json!(ns));
            Ok(())
        }
    }
}

pub async fn create(api: &Api, call: &Call<'_>) -> ApiResult<Response<Body>> {
    let mut object = codec::decode(&call.media, &call.body)?;
    check_type(call.resource, &mut object)?;
    check_namespace(call, &mut object)?;
    call.check_fields(&mut object)?;
    let manager = manager(call)?;
    let created = create_object(api, call, object, Owner::Update(&manager)).await?;
    Ok(object_response(call, 201, &created))
}

/// Creates `object` (type and namespace already checked): the create path shared by
/// POST and by a server-side apply of a missing object.
async fn create_object(
    api: &Api,
    call: &Call<'_>,
    mut object: Value,
    owner: Owner<'_>,
) -> ApiResult<Value> {
    let resource = call.resource;
    let generate = meta_str(&object, "generateName").map(String::from);
    let meta = meta_mut(&mut object);
    if meta
        .get("name")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        if let Some(base) = generate.filter(|g| !g.is_empty()) {
            meta.insert(
                "name".into(),
                json!(format!("{base}{}", object::name_suffix())),
            );
        }
    }
    let meta = meta_mut(&mut object);
    for field in [
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
    ] {
        meta.remove(field);
    }
    meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    meta.insert("creationTimestamp".into(), json!(object::now()));
    if resource.generation {
        meta.insert("generation".into(), json!(1));
    } else {
        meta.remove("generation");
    }
    if resource.has(Sub::Status) {
        if let Some(map) = object.as_object_mut() {
            map.remove("status");
        }
    }
    defaults::on_create(resource, &mut object);
    let admission = api.admission();
    admission::mutate_create(admission, resource, call.namespace(), &mut object).await?;
    let name = meta_str(&object, "name").unwrap_or_default().to_string();
    let write = webhook::Write {
        operation: webhook::Operation::Create,
        resource,
        subresource: call.request.subresource.as_deref(),
        namespace: call.namespace(),
        name: &name,
        user: call.user,
        old: None,
        dry_run: call.dry_run(),
    };
    if api.plugins.has(Plugin::MutatingAdmissionWebhook) {
        webhook::mutate(admission, write, &mut object).await?;
    }
    if let Owner::Update(manager) = owner {
        managed::record_update(resource, None, &mut object, manager, None);
    }
    validation::create(resource, &object)?;
    escalation::check(&api.authorizer, call.user, resource, &object).await?;
    admission::validate_create(admission, resource, call.namespace(), &object).await?;
    if api.plugins.has(Plugin::ValidatingAdmissionPolicy) {
        let warnings = policy::validate(admission, write, &object).await?;
        call.warnings
            .lock()
            .expect("warnings lock")
            .extend(warnings);
    }
    if api.plugins.has(Plugin::ValidatingAdmissionWebhook) {
        webhook::validate(admission, write, &object).await?;
    }
    if call.dry_run() {
        return Ok(object);
    }
    let key = api.storage.key(resource, call.namespace(), &name);
    let lease = if resource.plural == "events" {
        api.storage
            .lease(api.event_ttl.as_secs().max(1) as i64)
            .await?
    } else {
        0
    };
    // Charged to the namespace's quotas in the same transaction; a quota that moved
    // meanwhile is read again.
    for _ in 0..UPDATE_ROUNDS_MAX {
        let charges = if api.plugins.has(Plugin::ResourceQuota) {
            resource_quota::charges(
                &api.storage,
                &api.caches,
                resource,
                call.namespace(),
                &object,
            )
            .await?
        } else {
            Vec::new()
        };
        let outcome = if charges.is_empty() {
            api.storage.create(resource, &key, &object, lease).await?
        } else {
            api.storage
                .create_charged(resource, &key, &object, lease, &charges)
                .await?
        };
        match outcome {
            Outcome::Written(revision) => {
                object::set_resource_version(&mut object, revision);
                return Ok(shown(resource, object));
            }
            Outcome::Missing if !charges.is_empty() => continue,
            _ => return Err(ApiError::already_exists(resource, &name)),
        }
    }
    Err(ApiError::conflict(
        resource,
        &name,
        "too many concurrent writes to the namespace's quotas, please try again",
    ))
}

/// The resourceVersion a body names, if any.
fn named_version(object: &Value) -> ApiResult<Option<i64>> {
    match meta_str(object, "resourceVersion") {
        None | Some("") => Ok(None),
        Some(rv) => rv
            .parse()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv:?}"))),
    }
}

/// The object `change` made from `current`, with what no write may change put back and
/// what this part may not change kept from `current`.
fn prepare(
    resource: &Resource,
    part: Part,
    current: &Value,
    mut new: Value,
    name: &str,
) -> ApiResult<Value> {
    if meta_str(&new, "name").is_some_and(|n| n != name) {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            meta_str(&new, "name").unwrap_or_default()
        )));
    }
    // A uid in the body is a precondition: it names the object the client means.
    let have = meta_str(current, "uid").unwrap_or_default();
    if let Some(uid) = meta_str(&new, "uid").filter(|u| !u.is_empty() && *u != have) {
        return Err(ApiError::conflict(
            resource,
            name,
            &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {have}"),
        ));
    }
    if part == Part::Status {
        let mut kept = current.clone();
        object::take_status(&new, &mut kept);
        new = kept;
    } else if resource.has(Sub::Status) {
        object::take_status(current, &mut new);
    }
    object::set_type(&mut new, resource);
    let old_meta = current
        .get("metadata")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let meta = meta_mut(&mut new);
    for field in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ] {
        match old_meta.get(field) {
            Some(v) => meta.insert(field.into(), v.clone()),
            None => meta.remove(field),
        };
    }
    meta.remove("selfLink");
    if resource.generation && object::spec_of(current) != object::spec_of(&new) {
        let generation = old_meta
            .get("generation")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        meta_mut(&mut new).insert("generation".into(), json!(generation + 1));
    }
    defaults::on_update(resource, &mut new);
    validation::update(resource, current, &new)?;
    Ok(new)
}

/// Reads the object, applies `change` to it and writes the result if the key has not
/// moved meanwhile; retried on a newer version unless the change names its own.
pub(crate) async fn guaranteed_update<F>(
    api: &Api,
    call: &Call<'_>,
    part: Part,
    owner: Owner<'_>,
    change: F,
) -> ApiResult<Value>
where
    F: Fn(&Value) -> ApiResult<Value>,
{
    let resource = call.resource;
    let name = call.name()?;
    let key = call.key(api)?;
    for _ in 0..UPDATE_ROUNDS_MAX {
        let Stored {
            object: current,
            revision,
        } = api
            .storage
            .get(resource, &key)
            .await?
            .ok_or_else(|| ApiError::not_found(resource, name))?;
        let changed = change(&current)?;
        let precondition = named_version(&changed)?;
        if precondition.is_some_and(|rv| rv != revision) {
            return Err(ApiError::stale(resource, name));
        }
        let mut new = prepare(resource, part, &current, changed, name)?;
        let write = webhook::Write {
            operation: webhook::Operation::Update,
            resource,
            subresource: call.request.subresource.as_deref(),
            namespace: call.namespace(),
            name,
            user: call.user,
            old: Some(&current),
            dry_run: call.dry_run(),
        };
        if api.plugins.has(Plugin::MutatingAdmissionWebhook) {
            let before = new.clone();
            webhook::mutate(api.admission(), write, &mut new).await?;
            if new != before {
                validation::update(resource, &current, &new)?;
            }
        }
        if api.plugins.has(Plugin::ValidatingAdmissionPolicy) {
            let warnings = policy::validate(api.admission(), write, &new).await?;
            call.warnings
                .lock()
                .expect("warnings lock")
                .extend(warnings);
        }
        if api.plugins.has(Plugin::ValidatingAdmissionWebhook) {
            webhook::validate(api.admission(), write, &new).await?;
        }
        escalation::check(&api.authorizer, call.user, resource, &new).await?;
        if let Owner::Update(manager) = owner {
            let sub = call.request.subresource.as_deref();
            managed::record_update(resource, Some(&current), &mut new, manager, sub);
        }
        object::set_resource_version(&mut new, revision);
        if new == current {
            return Ok(shown(resource, new));
        }
        if call.dry_run() {
            return Ok(shown(resource, new));
        }
        // The last finalizer removed from an object being deleted finishes the delete (a
        // namespace's own finalizers, in its spec, hold it too).
        let spec_finalizers = new
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        let namespace_held =
            resource.plural == "namespaces" && resource.group.is_empty() && spec_finalizers;
        let finished = new.pointer("/metadata/deletionTimestamp").is_some()
            && object::finalizers(&new).is_empty()
            && !namespace_held;
        let outcome = if finished {
            api.storage.delete(&key, revision).await?
        } else {
            api.storage.update(resource, &key, revision, &new).await?
        };
        match outcome {
            Outcome::Written(written) => {
                if finished {
                    api.owner_gone(&new);
                }
                object::set_resource_version(&mut new, written);
                return Ok(shown(resource, new));
            }
            Outcome::Missing => return Err(ApiError::not_found(resource, name)),
            // Read again: a version the client named fails the check above next round.
            Outcome::Changed(_) => continue,
        }
    }
    Err(ApiError::conflict(
        resource,
        name,
        "too many concurrent writes, please try again",
    ))
}

pub async fn update(api: &Api, call: &Call<'_>, part: Part) -> ApiResult<Response<Body>> {
    let mut body = codec::decode(&call.media, &call.body)?;
    check_type(call.resource, &mut body)?;
    check_namespace(call, &mut body)?;
    if part == Part::Main {
        call.check_fields(&mut body)?;
    }
    let manager = manager(call)?;
    let updated = guaranteed_update(api, call, part, Owner::Update(&manager), |_| {
        Ok(body.clone())
    })
    .await?;
    Ok(object_response(call, 200, &updated))
}

pub async fn patch(api: &Api, call: &Call<'_>, part: Part) -> ApiResult<Response<Body>> {
    let flavour = Flavour::of(&call.media)?;
    let manager = manager(call)?;
    if flavour == Flavour::Apply {
        return server_side_apply(api, call, part, &manager).await;
    }
    let change = |current: &Value| {
        let mut patched = patch::apply(flavour, current, &call.body)?;
        if part == Part::Main {
            call.check_fields(&mut patched)?;
        }
        Ok(patched)
    };
    let patched = guaranteed_update(api, call, part, Owner::Update(&manager), change).await?;
    Ok(object_response(call, 200, &patched))
}

/// `application/apply-patch+yaml`: the applied configuration merged in with field
/// ownership, conflicts refused unless `force=true`; a missing object is created.
async fn server_side_apply(
    api: &Api,
    call: &Call<'_>,
    part: Part,
    manager: &str,
) -> ApiResult<Response<Body>> {
    if call.query.get("fieldManager").is_none_or(str::is_empty) {
        return Err(ApiError::bad_request(
            "fieldManager is required for apply requests",
        ));
    }
    let mut config: Value = serde_yaml::from_slice(&call.body)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
    if !config.is_object() {
        return Err(ApiError::bad_request(
            "the applied configuration must be an object",
        ));
    }
    check_type(call.resource, &mut config)?;
    check_namespace(call, &mut config)?;
    call.check_fields(&mut config)?;
    let name = call.name()?;
    if meta_str(&config, "name").is_some_and(|n| n != name) {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            meta_str(&config, "name").unwrap_or_default()
        )));
    }
    meta_mut(&mut config).insert("name".into(), json!(name));
    let force = call.query.flag("force");
    let change = |current: &Value| managed::apply(call.resource, current, &config, manager, force);
    match guaranteed_update(api, call, part, Owner::Applied, change).await {
        Err(error) if error.code == 404 && part == Part::Main => {
            let object = managed::apply(call.resource, &json!({}), &config, manager, force)?;
            let created = create_object(api, call, object, Owner::Applied).await?;
            Ok(object_response(call, 201, &created))
        }
        Err(error) => Err(error),
        Ok(applied) => Ok(object_response(call, 200, &applied)),
    }
}
