//! LimitRanger: a pod's containers get the default limits and requests of their
//! namespace's LimitRanges (type Container) where they name none, and a container past a
//! range's max or under its min is refused with kube's message.

use serde_json::{json, Value};

use super::resource_quota::{format_quantity, parse_quantity};
use super::Context;
use crate::resources::{self, Resource};
use crate::status::{ApiError, ApiResult};
use crate::watch::Filter;

async fn container_limits(cx: Context<'_>, namespace: &str) -> Vec<Value> {
    let ranges = resources::find("", "v1", "limitranges").expect("served");
    let filter = Filter {
        namespace: Some(namespace.to_string()),
        ..Filter::default()
    };
    cx.caches
        .of(ranges)
        .snapshot(&filter)
        .await
        .0
        .iter()
        .flat_map(|r| {
            r.pointer("/spec/limits")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .filter(|l| l.get("type").and_then(Value::as_str) == Some("Container"))
        .collect()
}

fn is_pod(resource: &Resource) -> bool {
    resource.group.is_empty() && resource.plural == "pods"
}

/// Fills containers' missing limits and requests from the ranges' defaults.
pub async fn default(
    cx: Context<'_>,
    resource: &Resource,
    namespace: Option<&str>,
    object: &mut Value,
) {
    let Some(ns) = namespace.filter(|_| is_pod(resource)) else {
        return;
    };
    let limits = container_limits(cx, ns).await;
    if limits.is_empty() {
        return;
    }
    for container in object
        .pointer_mut("/spec/containers")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        for limit in &limits {
            // A range's defaultRequest defaults to its default.
            let request_defaults = limit.get("defaultRequest").or(limit.get("default"));
            for (field, defaults) in [
                ("limits", limit.get("default")),
                ("requests", request_defaults),
            ] {
                for (name, value) in defaults.and_then(Value::as_object).into_iter().flatten() {
                    if container
                        .pointer(&format!("/resources/{field}/{name}"))
                        .is_none()
                    {
                        if !container.get("resources").is_some_and(Value::is_object) {
                            container["resources"] = json!({});
                        }
                        if !container["resources"]
                            .get(field)
                            .is_some_and(Value::is_object)
                        {
                            container["resources"][field] = json!({});
                        }
                        container["resources"][field][name] = value.clone();
                    }
                }
            }
        }
    }
}

/// Refuses containers outside the ranges' min and max.
pub async fn validate(
    cx: Context<'_>,
    resource: &Resource,
    namespace: Option<&str>,
    object: &Value,
) -> ApiResult<()> {
    let Some(ns) = namespace.filter(|_| is_pod(resource)) else {
        return Ok(());
    };
    let limits = container_limits(cx, ns).await;
    let name = crate::object::meta_str(object, "name").unwrap_or_default();
    let refuse = |message: String| {
        ApiError::new(
            403,
            "Forbidden",
            format!("pods {name:?} is forbidden: {message}"),
        )
    };
    for container in object
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let amount = |field: &str, r: &str| {
            container
                .pointer(&format!("/resources/{field}/{r}"))
                .and_then(Value::as_str)
                .and_then(parse_quantity)
        };
        for limit in &limits {
            for (r, max) in limit
                .get("max")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                let Some(max) = max.as_str().and_then(parse_quantity) else {
                    continue;
                };
                match amount("limits", r) {
                    Some(have) if have > max => {
                        return Err(refuse(format!(
                            "maximum {r} usage per Container is {}, but limit is {}",
                            format_quantity(max),
                            format_quantity(have)
                        )));
                    }
                    None => {
                        return Err(refuse(format!(
                            "maximum {r} usage per Container is {}.  No limit is specified",
                            format_quantity(max)
                        )))
                    }
                    _ => {}
                }
            }
            for (r, min) in limit
                .get("min")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                let Some(min) = min.as_str().and_then(parse_quantity) else {
                    continue;
                };
                match amount("requests", r) {
                    Some(have) if have < min => {
                        return Err(refuse(format!(
                            "minimum {r} usage per Container is {}, but request is {}",
                            format_quantity(min),
                            format_quantity(have)
                        )));
                    }
                    None => {
                        return Err(refuse(format!(
                            "minimum {r} usage per Container is {}.  No request is specified",
                            format_quantity(min)
                        )))
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(())
}
