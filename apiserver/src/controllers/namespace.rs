//! The namespace controller: a deleted namespace is Terminating while everything in it is
//! deleted (objects held by finalizers waited for), then its `kubernetes` finalizer is
//! dropped and it goes.

use std::time::Duration;

use serde_json::Value;

use crate::object::meta_str;
use crate::resources;
use crate::rest::delete::{delete_named, finish_namespace, DeleteOptions, DELETE_ROUNDS_MAX};
use crate::rest::Api;
use crate::storage::{Outcome, Stored};

/// How often a terminating namespace's content is checked again.
const NAMESPACE_SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// How often the controller looks for terminating namespaces it was not told of (after
/// a restart, or a full queue).
const TERMINATING_SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// The namespace controller: finishes every terminating namespace, one at a time.
pub async fn run(api: Api, mut queue: tokio::sync::mpsc::Receiver<String>) {
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
    let everything = DeleteOptions::default();
    loop {
        let mut left = 0;
        for resource in resources::RESOURCES
            .iter()
            .filter(|r| r.namespaced && r.stored)
        {
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
                let _ = delete_named(&api, resource, Some(&name), &object_name, &everything, None)
                    .await;
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
