//! Dynamic admission: MutatingWebhookConfiguration and ValidatingWebhookConfiguration.
//! Each webhook whose rules, namespace selector and object selector match a write gets an
//! `admission.k8s.io/v1` AdmissionReview over HTTPS (clientConfig.url or .service, trusted
//! through its caBundle; see webhook_client) within its timeout; a mutating one answers with a JSON patch, a validating
//! one allows or denies. A webhook that cannot be reached fails the request unless its
//! failurePolicy is Ignore. Mutating webhooks asking `IfNeeded` run once more when later
//! ones changed the object. The configurations are read from their watch caches.

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use serde_json::{json, Value};

use super::{webhook_client, Context};
use crate::authn::User;
use crate::resources::{self, Resource};
use crate::selectors::LabelSelector;
use crate::status::{ApiError, ApiResult};
use crate::watch::Filter;

/// A webhook's time to answer when it names none, and the most it may ask for.
const TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);
const TIMEOUT_MAX: Duration = Duration::from_secs(30);

/// What a write does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// A create.
    Create,
    /// An update or patch.
    Update,
    /// A delete.
    Delete,
}

impl Operation {
    fn name(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
        }
    }
}

/// The write webhooks are asked about.
#[derive(Debug, Clone, Copy)]
pub struct Write<'a> {
    /// What it does.
    pub operation: Operation,
    /// The resource.
    pub resource: &'a Resource,
    /// The subresource, if any.
    pub subresource: Option<&'a str>,
    /// The namespace.
    pub namespace: Option<&'a str>,
    /// The object's name.
    pub name: &'a str,
    /// Who writes.
    pub user: &'a User,
    /// The object before (updates and deletes).
    pub old: Option<&'a Value>,
    /// `dryRun=All`.
    pub dry_run: bool,
}

fn strings(v: &Value, field: &str) -> Vec<String> {
    crate::object::strings(v, &format!("/{field}"))
}

/// Whether one admission rule (operations, apiGroups, apiVersions, resources, scope)
/// covers the write.
pub(crate) fn rule_matches(rule: &Value, w: &Write<'_>) -> bool {
    let has = |field: &str, want: &str| strings(rule, field).iter().any(|v| v == "*" || v == want);
    let resource_ok = strings(rule, "resources").iter().any(|r| {
        let (res, sub) = r.split_once('/').unwrap_or((r, ""));
        let res_ok = res == "*" || res == w.resource.plural;
        let sub_ok = match (sub, w.subresource) {
            ("", None) => true,
            ("*", _) => true,
            (s, Some(have)) => s == have,
            (_, None) => false,
        };
        res_ok && sub_ok
    });
    let scope_ok = match rule.get("scope").and_then(Value::as_str).unwrap_or("*") {
        "Cluster" => !w.resource.namespaced,
        "Namespaced" => w.resource.namespaced,
        _ => true,
    };
    has("operations", w.operation.name())
        && has("apiGroups", w.resource.group)
        && has("apiVersions", w.resource.version)
        && resource_ok
        && scope_ok
}

fn selects(selector: Option<&Value>, object: &Value) -> bool {
    match selector {
        None => true,
        Some(s) => LabelSelector::from_object(s).is_some_and(|s| s.matches(object)),
    }
}

/// Whether a webhook (or anything with `rules`, `namespaceSelector` and `objectSelector`)
/// applies to the write.
pub(crate) async fn matches(
    cx: Context<'_>,
    webhook: &Value,
    w: &Write<'_>,
    object: &Value,
) -> bool {
    if !webhook
        .get("rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|r| rule_matches(r, w))
    {
        return false;
    }
    let by_object = selects(webhook.get("objectSelector"), object)
        || w.old
            .is_some_and(|o| selects(webhook.get("objectSelector"), o));
    if !by_object {
        return false;
    }
    let Some(selector) = webhook.get("namespaceSelector") else {
        return true;
    };
    let namespace = if w.resource.group.is_empty() && w.resource.plural == "namespaces" {
        Some(object.clone())
    } else if let Some(ns) = w.namespace {
        let namespaces = resources::find("", "v1", "namespaces").expect("served");
        cx.caches.of(namespaces).get(ns)
    } else {
        return true;
    };
    namespace.is_some_and(|n| selects(Some(selector), &n))
}

/// Posts the review to the webhook; the AdmissionReview answer.
async fn call(cx: Context<'_>, webhook: &Value, review: &Value) -> Result<Value, String> {
    let config = webhook.get("clientConfig").cloned().unwrap_or(json!({}));
    let target = webhook_client::target(cx.caches, &config)?;
    let started = std::time::Instant::now();
    let body = cx
        .webhooks
        .post(&target, Bytes::from(review.to_string()))
        .await?;
    cx.metrics.webhooks.record(started.elapsed());
    serde_json::from_slice(&body).map_err(|e| format!("the webhook's answer is not JSON: {e}"))
}

fn review(w: &Write<'_>, object: &Value, uid: &str) -> Value {
    let r = w.resource;
    let gvk = json!({ "group": r.group, "version": r.version, "kind": r.kind });
    let gvr = json!({ "group": r.group, "version": r.version, "resource": r.plural });
    let mut request = json!({
        "uid": uid,
        "kind": gvk, "requestKind": gvk,
        "resource": gvr, "requestResource": gvr,
        "name": w.name,
        "operation": w.operation.name(),
        "userInfo": { "username": w.user.name, "uid": w.user.uid, "groups": w.user.groups },
        "object": if w.operation == Operation::Delete { Value::Null } else { object.clone() },
        "oldObject": w.old.cloned().unwrap_or(Value::Null),
        "dryRun": w.dry_run,
    });
    if let Some(ns) = w.namespace {
        request["namespace"] = json!(ns);
    }
    if let Some(sub) = w.subresource {
        request["subResource"] = json!(sub);
        request["requestSubResource"] = json!(sub);
    }
    json!({ "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request })
}

/// Asks one webhook; the answer's `response`, or None when it failed and may be ignored.
async fn ask(
    cx: Context<'_>,
    webhook: &Value,
    w: &Write<'_>,
    object: &Value,
) -> ApiResult<Option<Value>> {
    let name = webhook
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let effects = webhook
        .get("sideEffects")
        .and_then(Value::as_str)
        .unwrap_or("Unknown");
    if w.dry_run && !matches!(effects, "None" | "NoneOnDryRun") {
        return Err(ApiError::bad_request(format!(
            "admission webhook {name:?} has side effects and does not support dry run"
        )));
    }
    let timeout = webhook
        .get("timeoutSeconds")
        .and_then(Value::as_u64)
        .map_or(TIMEOUT_DEFAULT, |s| Duration::from_secs(s).min(TIMEOUT_MAX));
    let uid = uuid::Uuid::new_v4().to_string();
    let answer = match tokio::time::timeout(timeout, call(cx, webhook, &review(w, object, &uid)))
        .await
    {
        Ok(Ok(answer)) => answer,
        failed => {
            let why = match failed {
                Ok(Err(e)) => e,
                _ => format!("context deadline exceeded after {timeout:?}"),
            };
            if webhook.get("failurePolicy").and_then(Value::as_str) == Some("Ignore") {
                tracing::warn!(webhook = name, %why, "webhook failed, ignored as its failurePolicy says");
                return Ok(None);
            }
            return Err(ApiError::internal(format!(
                "failed calling webhook {name:?}: {why}"
            )));
        }
    };
    let response = answer.get("response").cloned().unwrap_or(Value::Null);
    if response.get("uid").and_then(Value::as_str) != Some(uid.as_str()) {
        return Err(ApiError::internal(format!(
            "failed calling webhook {name:?}: the answer's uid is not the request's"
        )));
    }
    if response.get("allowed").and_then(Value::as_bool) != Some(true) {
        let status = response.get("status").cloned().unwrap_or(json!({}));
        let code = status
            .get("code")
            .and_then(Value::as_u64)
            .unwrap_or(400)
            .max(400) as u16;
        let message = status
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("without explanation");
        let mut error = ApiError::new(
            code,
            "",
            format!("admission webhook {name:?} denied the request: {message}"),
        );
        if code == 403 {
            error.reason = "Forbidden";
        }
        return Err(error);
    }
    Ok(Some(response))
}

async fn configurations(cx: Context<'_>, plural: &str) -> Vec<Value> {
    let resource = resources::find("admissionregistration.k8s.io", "v1", plural).expect("served");
    let (configs, _) = cx.caches.of(resource).snapshot(&Filter::default()).await;
    configs
        .iter()
        .flat_map(|c| {
            c.get("webhooks")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .collect()
}

/// Runs the mutating webhooks that match, applying their patches to `object`.
pub async fn mutate(cx: Context<'_>, w: Write<'_>, object: &mut Value) -> ApiResult<()> {
    let webhooks = configurations(cx, "mutatingwebhookconfigurations").await;
    let mut reinvoke = Vec::new();
    for round in 0..2 {
        for (i, webhook) in webhooks.iter().enumerate() {
            if round == 1 && !reinvoke.contains(&i) {
                continue;
            }
            if !matches(cx, webhook, &w, object).await {
                continue;
            }
            let before = object.clone();
            let Some(response) = ask(cx, webhook, &w, object).await? else {
                continue;
            };
            if let Some(patch) = response.get("patch").and_then(Value::as_str) {
                let name = webhook
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(patch)
                    .map_err(|_| {
                        ApiError::internal(format!(
                            "webhook {name:?} answered a patch that is not base64"
                        ))
                    })?;
                let patch: json_patch::Patch = serde_json::from_slice(&bytes).map_err(|e| {
                    ApiError::internal(format!("webhook {name:?} answered a bad JSON patch: {e}"))
                })?;
                json_patch::patch(object, &patch).map_err(|e| {
                    ApiError::internal(format!("webhook {name:?}'s patch does not apply: {e}"))
                })?;
            }
            // Later webhooks changed the object: those asking IfNeeded see it again.
            if round == 0 && *object != before {
                reinvoke = (0..i)
                    .filter(|j| {
                        webhooks[*j]
                            .get("reinvocationPolicy")
                            .and_then(Value::as_str)
                            == Some("IfNeeded")
                    })
                    .collect();
            }
        }
        if reinvoke.is_empty() {
            break;
        }
    }
    Ok(())
}

/// Runs the validating webhooks that match; any denial refuses the write.
pub async fn validate(cx: Context<'_>, w: Write<'_>, object: &Value) -> ApiResult<()> {
    for webhook in configurations(cx, "validatingwebhookconfigurations").await {
        if matches(cx, &webhook, &w, object).await {
            ask(cx, &webhook, &w, object).await?;
        }
    }
    Ok(())
}
