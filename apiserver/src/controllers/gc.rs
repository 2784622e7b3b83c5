//! The garbage collector: dependents (objects whose `ownerReferences` name an owner by
//! uid) follow their owners. When an object goes, each dependent whose every owner is
//! gone is deleted (Background); an object deleted with the Foreground finalizer stays
//! until its dependents are gone; one deleted with the Orphan finalizer stays until its
//! dependents no longer name it. Dependents are found in the watch caches, so a sweep
//! costs no store reads.

use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;

use crate::object::{self, meta_str};
use crate::resources::{self, Resource};
use crate::rest::delete::{delete_named, DeleteOptions, DELETE_ROUNDS_MAX, FOREGROUND, ORPHAN};
use crate::rest::{Api, GcWork};
use crate::storage::{Outcome, Stored};
use crate::watch::Filter;

/// How often every object waiting on its dependents, and every dependent whose owners
/// are gone, is looked for (after a restart, a full queue, or dependents still going).
const SWEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Every object of `namespace` (and every cluster-scoped one) with its resource.
/// The objects of `namespace` (and the cluster-scoped ones) that `keep` wants, with their
/// resource; only those are copied out of the caches.
async fn objects(
    api: &Api,
    namespace: Option<&str>,
    keep: impl Fn(&Value) -> bool + Copy,
) -> Vec<(&'static Resource, Value)> {
    let mut out = Vec::new();
    for resource in resources::RESOURCES.iter().filter(|r| r.stored) {
        let filter = Filter {
            namespace: namespace.filter(|_| resource.namespaced).map(String::from),
            ..Filter::default()
        };
        if resource.namespaced && namespace.is_none() {
            continue;
        }
        let items = api.caches.of(resource).select(&filter, keep).await;
        out.extend(items.into_iter().map(|o| (resource, o)));
    }
    out
}

fn owner_uids(object: &Value) -> Vec<&str> {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("uid").and_then(Value::as_str))
        .collect()
}

/// Whether an owner reference still names a live object (same uid): the owner's watch
/// cache answers, the store only when the cache does not have it as named.
async fn owner_exists(api: &Api, reference: &Value, namespace: Option<&str>) -> bool {
    let text = |k: &str| reference.get(k).and_then(Value::as_str).unwrap_or_default();
    let Some(resource) = resources::by_kind(text("apiVersion"), text("kind")) else {
        return false;
    };
    let cached_key = match namespace.filter(|_| resource.namespaced) {
        Some(ns) => format!("{ns}/{}", text("name")),
        None => text("name").to_string(),
    };
    if let Some(cached) = api.caches.of(resource).get(&cached_key) {
        if meta_str(&cached, "uid") == Some(text("uid")) {
            return true;
        }
    }
    let key = api.storage.key(resource, namespace, text("name"));
    match api.storage.get(resource, &key).await {
        Ok(Some(stored)) => meta_str(&stored.object, "uid") == Some(text("uid")),
        Ok(None) => false,
        // Unsure: keep the dependent.
        Err(_) => true,
    }
}

async fn delete_dependent(api: &Api, resource: &'static Resource, object: &Value) {
    let name = meta_str(object, "name").unwrap_or_default();
    let namespace = meta_str(object, "namespace");
    let _ = delete_named(
        api,
        resource,
        namespace,
        name,
        &DeleteOptions::default(),
        None,
    )
    .await;
}

/// Whether any owner of `object` (but the one with uid `except`) is alive.
async fn has_live_owner(api: &Api, object: &Value, except: Option<&str>) -> bool {
    let references = object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array);
    for reference in references.into_iter().flatten() {
        let uid = reference.get("uid").and_then(Value::as_str);
        if uid != except && owner_exists(api, reference, meta_str(object, "namespace")).await {
            return true;
        }
    }
    false
}

/// Deletes the dependents of `uid` that have no other live owner.
async fn collect(api: &Api, uid: &str, namespace: Option<&str>) {
    let owned_by = |o: &Value| {
        owner_uids(o).contains(&uid) && o.pointer("/metadata/deletionTimestamp").is_none()
    };
    for (resource, object) in objects(api, namespace, owned_by).await {
        let others_alive = has_live_owner(api, &object, Some(uid)).await;
        if !others_alive {
            delete_dependent(api, resource, &object).await;
        }
    }
}

/// Drops `uid` from a dependent's owner references.
async fn orphan(api: &Api, resource: &'static Resource, object: &Value, uid: &str) {
    let key = api.storage.key(
        resource,
        meta_str(object, "namespace"),
        meta_str(object, "name").unwrap_or_default(),
    );
    for _ in 0..DELETE_ROUNDS_MAX {
        let Ok(Some(Stored {
            object: mut current,
            revision,
        })) = api.storage.get(resource, &key).await
        else {
            return;
        };
        let Some(references) = current
            .pointer_mut("/metadata/ownerReferences")
            .and_then(Value::as_array_mut)
        else {
            return;
        };
        references.retain(|r| r.get("uid").and_then(Value::as_str) != Some(uid));
        if references.is_empty() {
            object::meta_mut(&mut current).remove("ownerReferences");
        }
        match api.storage.update(resource, &key, revision, &current).await {
            Ok(Outcome::Changed(_)) => continue,
            _ => return,
        }
    }
}

/// Removes `finalizer` from an object being deleted; the last one gone deletes it.
async fn release(
    api: &Api,
    resource: &'static Resource,
    namespace: Option<&str>,
    name: &str,
    finalizer: &str,
) {
    let key = api.storage.key(resource, namespace, name);
    for _ in 0..DELETE_ROUNDS_MAX {
        let Ok(Some(Stored {
            object: mut current,
            revision,
        })) = api.storage.get(resource, &key).await
        else {
            return;
        };
        let mut finalizers = object::finalizers(&current);
        finalizers.retain(|f| f != finalizer);
        let outcome = if finalizers.is_empty() {
            let outcome = api.storage.delete(&key, revision).await;
            if matches!(outcome, Ok(Outcome::Written(_))) {
                api.owner_gone(&current);
            }
            outcome
        } else {
            object::meta_mut(&mut current)
                .insert("finalizers".into(), serde_json::json!(finalizers));
            api.storage.update(resource, &key, revision, &current).await
        };
        match outcome {
            Ok(Outcome::Changed(_)) => continue,
            _ => return,
        }
    }
}

/// One object waiting, with the Foreground or Orphan finalizer, for its dependents.
async fn finalize(api: &Api, resource: &'static Resource, namespace: Option<&str>, name: &str) {
    let key = api.storage.key(resource, namespace, name);
    let Ok(Some(Stored { object: owner, .. })) = api.storage.get(resource, &key).await else {
        return;
    };
    let Some(uid) = meta_str(&owner, "uid") else {
        return;
    };
    let finalizers = object::finalizers(&owner);
    let dependents = objects(api, namespace, |o: &Value| owner_uids(o).contains(&uid)).await;
    if finalizers.iter().any(|f| f == ORPHAN) {
        for (resource, dependent) in &dependents {
            orphan(api, resource, dependent, uid).await;
        }
        release(api, resource, namespace, name, ORPHAN).await;
    } else if finalizers.iter().any(|f| f == FOREGROUND) {
        let mut left = 0;
        for (resource, dependent) in &dependents {
            delete_dependent(api, resource, dependent).await;
            let key = api.storage.key(
                resource,
                meta_str(dependent, "namespace"),
                meta_str(dependent, "name").unwrap_or_default(),
            );
            if !matches!(api.storage.get(resource, &key).await, Ok(None)) {
                left += 1;
            }
        }
        // Dependents held by finalizers of their own: the sweep comes back.
        if left == 0 {
            release(api, resource, namespace, name, FOREGROUND).await;
        }
    }
}

/// Finds what the queue may have missed: objects waiting on dependents, and dependents
/// whose owners are all gone.
async fn sweep(api: &Api) {
    let namespaces = resources::find("", "v1", "namespaces").expect("namespaces are served");
    let (all_namespaces, _) = api.caches.of(namespaces).snapshot(&Filter::default()).await;
    let mut scopes: Vec<Option<String>> = vec![None];
    scopes.extend(
        all_namespaces
            .iter()
            .filter_map(|n| meta_str(n, "name").map(|n| Some(n.to_string()))),
    );
    for scope in scopes {
        // Only objects that wait on dependents or have owners matter here.
        let relevant = |o: &Value| {
            !owner_uids(o).is_empty()
                || object::finalizers(o)
                    .iter()
                    .any(|f| f == FOREGROUND || f == ORPHAN)
        };
        for (resource, object) in objects(api, scope.as_deref(), relevant).await {
            let waiting = object::finalizers(&object)
                .iter()
                .any(|f| f == FOREGROUND || f == ORPHAN);
            let name = meta_str(&object, "name").unwrap_or_default().to_string();
            if waiting && object.pointer("/metadata/deletionTimestamp").is_some() {
                finalize(api, resource, scope.as_deref(), &name).await;
                continue;
            }
            if owner_uids(&object).is_empty()
                || object.pointer("/metadata/deletionTimestamp").is_some()
            {
                continue;
            }
            let alive = has_live_owner(api, &object, None).await;
            if !alive {
                delete_dependent(api, resource, &object).await;
            }
        }
    }
}

/// The collector's loop.
pub async fn run(api: Api, mut queue: mpsc::Receiver<GcWork>) {
    let mut ticks = tokio::time::interval(SWEEP_INTERVAL);
    loop {
        tokio::select! {
            work = queue.recv() => match work {
                Some(GcWork::OwnerGone(uid, namespace)) => collect(&api, &uid, namespace.as_deref()).await,
                Some(GcWork::Finalize(resource, namespace, name)) => finalize(&api, resource, namespace.as_deref(), &name).await,
                None => return,
            },
            _ = ticks.tick() => sweep(&api).await,
        }
    }
}
