//! ResourceQuota: a create in a namespace with quotas is charged to
//! them in the same transaction that writes it (each quota's `status.used` moves with
//! the object, on the quota's revision), so concurrent creates never exceed a quota; one
//! past a hard limit is refused with kube's message. The quota controller
//! (controllers/quota) recounts usage, which also gives back what deletes free.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::object::meta_str;
use crate::resources::{self, Resource};
use crate::status::{ApiError, ApiResult};
use crate::storage::{Charge, Storage};
use crate::watch::{Caches, Filter};

/// A quantity in thousandths (`500m` is 500, `1` is 1000, `1Ki` is 1,024,000).
pub type Millis = i128;

/// Parses a Kubernetes quantity (`2`, `500m`, `1.5`, `128Mi`, `1G`, `1e3`).
pub fn parse_quantity(text: &str) -> Option<Millis> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let scale: f64 = match suffix {
        "" => 1.0,
        "m" => 0.001,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        s if s.starts_with(['e', 'E']) => 10f64.powi(s[1..].parse().ok()?),
        _ => return None,
    };
    let value: f64 = number.parse().ok()?;
    Some((value * scale * 1000.0).round() as Millis)
}

/// A quantity as kube prints a count or a CPU amount: whole, or in thousandths.
pub fn format_quantity(millis: Millis) -> String {
    if millis % 1000 == 0 {
        (millis / 1000).to_string()
    } else {
        format!("{millis}m")
    }
}

fn pod_sum(object: &Value, field: &str, resource: &str) -> Millis {
    object
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| {
            c.pointer(&format!("/resources/{field}/{resource}"))
                .and_then(Value::as_str)
        })
        .filter_map(parse_quantity)
        .sum()
}

/// What one object of `resource` uses, by quota resource name.
pub fn usage(resource: &Resource, object: &Value) -> BTreeMap<String, Millis> {
    let mut used = BTreeMap::new();
    let count = if resource.group.is_empty() {
        format!("count/{}", resource.plural)
    } else {
        format!("count/{}.{}", resource.plural, resource.group)
    };
    used.insert(count, 1000);
    if resource.group.is_empty() {
        match resource.plural {
            "pods"
            | "services"
            | "secrets"
            | "configmaps"
            | "persistentvolumeclaims"
            | "resourcequotas" => {
                used.insert(resource.plural.to_string(), 1000);
            }
            _ => {}
        }
        if resource.plural == "pods" {
            for (name, field, quantity) in [
                ("requests.cpu", "requests", "cpu"),
                ("cpu", "requests", "cpu"),
                ("requests.memory", "requests", "memory"),
                ("memory", "requests", "memory"),
                ("limits.cpu", "limits", "cpu"),
                ("limits.memory", "limits", "memory"),
            ] {
                used.insert(name.to_string(), pod_sum(object, field, quantity));
            }
        }
        if resource.plural == "services" {
            let kind = object
                .pointer("/spec/type")
                .and_then(Value::as_str)
                .unwrap_or("ClusterIP");
            used.insert(
                "services.nodeports".into(),
                if kind == "NodePort" || kind == "LoadBalancer" {
                    1000
                } else {
                    0
                },
            );
            used.insert(
                "services.loadbalancers".into(),
                if kind == "LoadBalancer" { 1000 } else { 0 },
            );
        }
    }
    used
}

fn quantities(object: &Value, pointer: &str) -> BTreeMap<String, Millis> {
    object
        .pointer(pointer)
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), parse_quantity(v.as_str()?)?)))
        .collect()
}

fn resourcequotas() -> &'static Resource {
    resources::find("", "v1", "resourcequotas").expect("served")
}

/// The charges a create of `object` makes to the quotas of its namespace, or kube's 403
/// when one would be exceeded. No quotas in the namespace (as the watch cache sees it):
/// no store read at all.
pub async fn charges(
    storage: &Storage,
    caches: &Caches,
    resource: &Resource,
    namespace: Option<&str>,
    object: &Value,
) -> ApiResult<Vec<Charge>> {
    let Some(ns) = namespace.filter(|_| resource.namespaced) else {
        return Ok(Vec::new());
    };
    let quotas = resourcequotas();
    let filter = Filter {
        namespace: Some(ns.to_string()),
        ..Filter::default()
    };
    if caches.of(quotas).snapshot(&filter).await.0.is_empty() {
        return Ok(Vec::new());
    }
    let page = storage
        .list(quotas, &storage.collection(quotas, Some(ns)), None, 0, 0)
        .await?;
    let wanted = usage(resource, object);
    let mut out = Vec::new();
    for stored in page.items {
        let hard = quantities(&stored.object, "/spec/hard");
        let mut used = quantities(&stored.object, "/status/used");
        let mut charged = false;
        for (name, limit) in &hard {
            let Some(add) = wanted.get(name).filter(|a| **a > 0) else {
                continue;
            };
            let now = used.get(name).copied().unwrap_or(0);
            if now + add > *limit {
                let quota = meta_str(&stored.object, "name").unwrap_or_default();
                return Err(ApiError::new(
                    403,
                    "Forbidden",
                    format!(
                        "{} {:?} is forbidden: exceeded quota: {quota}, requested: {name}={}, used: {name}={}, limited: {name}={}",
                        resource.qualified(),
                        meta_str(object, "name").unwrap_or_default(),
                        format_quantity(*add),
                        format_quantity(now),
                        format_quantity(*limit),
                    ),
                ));
            }
            used.insert(name.clone(), now + add);
            charged = true;
        }
        if !charged {
            continue;
        }
        let mut value = stored.object.clone();
        value["status"] = json!({
            "hard": stored.object.pointer("/spec/hard").cloned().unwrap_or(json!({})),
            "used": used.iter().filter(|(k, _)| hard.contains_key(*k)).map(|(k, v)| (k.clone(), json!(format_quantity(*v)))).collect::<serde_json::Map<_, _>>(),
        });
        out.push(Charge {
            resource: quotas,
            key: storage.key(
                quotas,
                Some(ns),
                meta_str(&stored.object, "name").unwrap_or_default(),
            ),
            revision: stored.revision,
            value,
        });
    }
    Ok(out)
}

/// What a namespace's objects use now, for the resources `hard` names.
pub async fn recount(
    caches: &Caches,
    namespace: &str,
    hard: &BTreeMap<String, Millis>,
) -> BTreeMap<String, Millis> {
    let mut used: BTreeMap<String, Millis> = hard.keys().map(|k| (k.clone(), 0)).collect();
    let filter = Filter {
        namespace: Some(namespace.to_string()),
        ..Filter::default()
    };
    for resource in resources::RESOURCES
        .iter()
        .filter(|r| r.namespaced && r.stored)
    {
        let counted = usage(resource, &json!({}));
        // Kinds none of the quota's resources count are not read.
        if !counted.keys().any(|k| hard.contains_key(k)) {
            continue;
        }
        caches
            .of(resource)
            .visit(&filter, |object| {
                if object.pointer("/metadata/deletionTimestamp").is_some() {
                    return;
                }
                for (name, amount) in usage(resource, object) {
                    if let Some(total) = used.get_mut(&name) {
                        *total += amount;
                    }
                }
            })
            .await;
    }
    used
}

/// A quota's status for `hard` and `used`.
pub fn status(hard: &Value, used: &BTreeMap<String, Millis>) -> Value {
    json!({
        "hard": hard,
        "used": used.iter().map(|(k, v)| (k.clone(), json!(format_quantity(*v)))).collect::<serde_json::Map<_, _>>(),
    })
}

/// The hard limits of a quota object.
pub fn hard_of(quota: &Value) -> BTreeMap<String, Millis> {
    quantities(quota, "/spec/hard")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_parse_as_kubernetes_writes_them() {
        assert_eq!(parse_quantity("2"), Some(2000));
        assert_eq!(parse_quantity("500m"), Some(500));
        assert_eq!(parse_quantity("1.5"), Some(1500));
        assert_eq!(parse_quantity("1Ki"), Some(1_024_000));
        assert_eq!(parse_quantity("1G"), Some(1_000_000_000_000));
        assert_eq!(parse_quantity("1e3"), Some(1_000_000));
        assert_eq!(parse_quantity("x"), None);
        assert_eq!(format_quantity(3000), "3");
        assert_eq!(format_quantity(250), "250m");
    }

    #[test]
    fn pods_use_their_containers_requests() {
        let pods = resources::find("", "v1", "pods").unwrap();
        let pod = json!({"spec": {"containers": [
            {"resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}},
            {"resources": {"requests": {"cpu": "1"}, "limits": {"cpu": "2"}}}]}});
        let used = usage(pods, &pod);
        assert_eq!(used["count/pods"], 1000);
        assert_eq!(used["pods"], 1000);
        assert_eq!(used["requests.cpu"], 1250);
        assert_eq!(used["limits.cpu"], 2000);
        assert_eq!(used["requests.memory"], 64 * 1024 * 1024 * 1000);
    }
}
