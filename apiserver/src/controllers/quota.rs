//! The quota controller: each ResourceQuota's `status` shows its hard limits and what
//! its namespace uses now, recounted from the watch caches when anything may have
//! changed (deletes give back what creates were charged).

use std::time::Duration;

use serde_json::Value;

use crate::admission::resource_quota as quota;
use crate::object::meta_str;
use crate::resources;
use crate::rest::Api;
use crate::watch::Filter;

/// How often usage is recounted.
const RECOUNT_INTERVAL: Duration = Duration::from_secs(2);

async fn recount(api: &Api) {
    let quotas = resources::find("", "v1", "resourcequotas").expect("served");
    let (all, _) = api.caches.of(quotas).snapshot(&Filter::default()).await;
    for cached in all {
        let (Some(ns), Some(name)) = (meta_str(&cached, "namespace"), meta_str(&cached, "name"))
        else {
            continue;
        };
        let hard = quota::hard_of(&cached);
        let used = quota::recount(&api.caches, ns, &hard).await;
        let status = quota::status(
            &cached.pointer("/spec/hard").cloned().unwrap_or(Value::Null),
            &used,
        );
        if cached.get("status") == Some(&status) {
            continue;
        }
        let key = api.storage.key(quotas, Some(ns), name);
        let Ok(Some(stored)) = api.storage.get(quotas, &key).await else {
            continue;
        };
        let mut updated = stored.object;
        updated["status"] = status;
        // A create charged meanwhile moves the revision: the next round counts again.
        let _ = api
            .storage
            .update(quotas, &key, stored.revision, &updated)
            .await;
    }
}

/// The controller's loop.
pub async fn run(api: Api) {
    let mut ticks = tokio::time::interval(RECOUNT_INTERVAL);
    loop {
        ticks.tick().await;
        recount(&api).await;
    }
}
