//! ClusterRole aggregation: a ClusterRole with an `aggregationRule` holds the union of the
//! rules of every ClusterRole its selectors match, kept up to date as they change (as
//! kube-controller-manager's clusterrole-aggregation controller does).

use std::time::Duration;

use serde_json::{json, Value};

use crate::object::meta_str;
use crate::resources;
use crate::rest::Api;
use crate::selectors::LabelSelector;
use crate::storage::Outcome;
use crate::watch::Filter;

/// How often the cluster roles' cache is checked for changes.
const POLL: Duration = Duration::from_millis(200);

fn matches(selector: &Value, role: &Value) -> bool {
    LabelSelector::from_object(selector).is_some_and(|s| s.matches(role))
}

async fn aggregate(api: &Api) {
    let roles = resources::find("rbac.authorization.k8s.io", "v1", "clusterroles").expect("served");
    let (all, _) = api.caches.of(roles).snapshot(&Filter::default()).await;
    for role in all.iter().filter(|r| r.get("aggregationRule").is_some()) {
        let name = meta_str(role, "name").unwrap_or_default();
        let selectors = role
            .pointer("/aggregationRule/clusterRoleSelectors")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut rules: Vec<Value> = Vec::new();
        for other in all.iter().filter(|o| meta_str(o, "name") != Some(name)) {
            if selectors.iter().any(|s| matches(s, other)) {
                for rule in other
                    .get("rules")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if !rules.contains(rule) {
                        rules.push(rule.clone());
                    }
                }
            }
        }
        if role.get("rules").cloned().unwrap_or(json!([])) == json!(rules) {
            continue;
        }
        let key = api.storage.key(roles, None, name);
        let Ok(Some(stored)) = api.storage.get(roles, &key).await else {
            continue;
        };
        let mut updated = stored.object;
        updated["rules"] = json!(rules);
        let written = api
            .storage
            .update(roles, &key, stored.revision, &updated)
            .await;
        // Changed meanwhile: the next round sees it.
        if let Ok(Outcome::Written(_)) = written {
            tracing::info!(role = name, "aggregated cluster role updated");
        }
    }
}

/// The controller's loop.
pub async fn run(api: Api) {
    let roles = resources::find("rbac.authorization.k8s.io", "v1", "clusterroles").expect("served");
    let cache = api.caches.of(roles);
    cache.ready().await;
    let mut seen = None;
    loop {
        let now = cache.changes();
        if seen != Some(now) {
            seen = Some(now);
            aggregate(&api).await;
        }
        tokio::time::sleep(POLL).await;
    }
}
