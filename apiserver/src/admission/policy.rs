//! ValidatingAdmissionPolicy: CEL expressions over `object`, `oldObject`, `request`,
//! `params`, `namespaceObject` and the policy's `variables`, applied to the writes its
//! match constraints (and each binding's match resources) select. A false expression is
//! a violation: refused for a binding whose validationActions say Deny, a warning for
//! Warn. An expression that fails to evaluate follows the policy's failurePolicy.

use std::collections::HashMap;
use std::sync::Arc;

use cel_interpreter::objects::{Key, Map};
use cel_interpreter::{Context as Cel, Program, Value as CelValue};
use serde_json::{json, Value};

use super::webhook::{matches, Operation, Write};
use super::Context;
use crate::object::meta_str;
use crate::resources;
use crate::status::{ApiError, ApiResult};
use crate::watch::Filter;

/// A JSON value as CEL sees it (integers as int, other numbers as double).
fn cel(value: &Value) -> CelValue {
    match value {
        Value::Null => CelValue::Null,
        Value::Bool(b) => CelValue::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => CelValue::Int(i),
            None => CelValue::Float(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => CelValue::String(Arc::new(s.clone())),
        Value::Array(items) => CelValue::List(Arc::new(items.iter().map(cel).collect())),
        Value::Object(map) => CelValue::Map(Map {
            map: Arc::new(
                map.iter()
                    .map(|(k, v)| (Key::from(k.clone()), cel(v)))
                    .collect::<HashMap<_, _>>(),
            ),
        }),
    }
}

/// A CEL value back as JSON (for variables the next expressions read).
fn json_of(value: &CelValue) -> Value {
    match value {
        CelValue::Null => Value::Null,
        CelValue::Bool(b) => json!(b),
        CelValue::Int(i) => json!(i),
        CelValue::UInt(u) => json!(u),
        CelValue::Float(f) => json!(f),
        CelValue::String(s) => json!(s.as_str()),
        CelValue::List(items) => Value::Array(items.iter().map(json_of).collect()),
        CelValue::Map(map) => Value::Object(
            map.map
                .iter()
                .map(|(k, v)| {
                    let key = match k {
                        Key::String(s) => s.to_string(),
                        Key::Int(i) => i.to_string(),
                        Key::Uint(u) => u.to_string(),
                        Key::Bool(b) => b.to_string(),
                    };
                    (key, json_of(v))
                })
                .collect(),
        ),
        _ => Value::Null,
    }
}

fn evaluate(expression: &str, context: &Cel<'_>) -> Result<CelValue, String> {
    let program = Program::compile(expression).map_err(|e| format!("compilation failed: {e}"))?;
    program.execute(context).map_err(|e| e.to_string())
}

fn as_match(constraints: Option<&Value>) -> Value {
    let c = constraints.cloned().unwrap_or(json!({}));
    let mut m = json!({ "rules": c.get("resourceRules").cloned().unwrap_or(json!([])) });
    for field in ["namespaceSelector", "objectSelector"] {
        if let Some(s) = c.get(field) {
            m[field] = s.clone();
        }
    }
    m
}

/// Runs the policies bound to the write; answers the warnings for the client.
pub async fn validate(cx: Context<'_>, w: Write<'_>, object: &Value) -> ApiResult<Vec<String>> {
    let policies = resources::find(
        "admissionregistration.k8s.io",
        "v1",
        "validatingadmissionpolicies",
    )
    .expect("served");
    let bindings = resources::find(
        "admissionregistration.k8s.io",
        "v1",
        "validatingadmissionpolicybindings",
    )
    .expect("served");
    let (all, _) = cx.caches.of(bindings).snapshot(&Filter::default()).await;
    let mut warnings = Vec::new();
    for binding in all {
        let binding_name = meta_str(&binding, "name").unwrap_or_default();
        let policy_name = binding
            .pointer("/spec/policyName")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Some(policy) = cx.caches.of(policies).get(policy_name) else {
            continue;
        };
        if !matches(
            cx,
            &as_match(policy.pointer("/spec/matchConstraints")),
            &w,
            object,
        )
        .await
        {
            continue;
        }
        if let Some(narrower) = binding.pointer("/spec/matchResources") {
            if narrower.get("resourceRules").is_some()
                && !matches(cx, &as_match(Some(narrower)), &w, object).await
            {
                continue;
            }
        }
        let actions = crate::object::strings(&binding, "/spec/validationActions");
        let fail_open = policy
            .pointer("/spec/failurePolicy")
            .and_then(Value::as_str)
            == Some("Ignore");
        let params = match binding.pointer("/spec/paramRef") {
            None => Value::Null,
            Some(reference) => {
                let kind = policy.pointer("/spec/paramKind");
                let text = |v: Option<&Value>, k: &str| {
                    v.and_then(|v| v.get(k))
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string()
                };
                let found = resources::by_kind(&text(kind, "apiVersion"), &text(kind, "kind"))
                    .and_then(|r| {
                        let name = text(Some(reference), "name");
                        let key = match reference
                            .get("namespace")
                            .and_then(Value::as_str)
                            .or(w.namespace)
                        {
                            Some(ns) if r.namespaced => format!("{ns}/{name}"),
                            _ => name,
                        };
                        cx.caches.of(r).get(&key)
                    });
                match found {
                    Some(p) => p,
                    None if reference.get("parameterNotFoundAction").and_then(Value::as_str) == Some("Allow") => continue,
                    None => {
                        return Err(ApiError::new(
                            403,
                            "Forbidden",
                            format!("policy '{policy_name}' with binding '{binding_name}' denied request: failed to configure binding: no params found for policy binding"),
                        ))
                    }
                }
            }
        };
        let namespace_object = match w.namespace {
            Some(ns) => cx
                .caches
                .of(resources::find("", "v1", "namespaces").expect("served"))
                .get(ns)
                .unwrap_or(Value::Null),
            None => Value::Null,
        };
        let mut context = Cel::default();
        let object_seen = if w.operation == Operation::Delete {
            Value::Null
        } else {
            object.clone()
        };
        context.add_variable_from_value("object", cel(&object_seen));
        context.add_variable_from_value("oldObject", cel(&w.old.cloned().unwrap_or(Value::Null)));
        context.add_variable_from_value("params", cel(&params));
        context.add_variable_from_value("namespaceObject", cel(&namespace_object));
        context.add_variable_from_value(
            "request",
            cel(&json!({
                "operation": match w.operation { Operation::Create => "CREATE", Operation::Update => "UPDATE", Operation::Delete => "DELETE" },
                "name": w.name,
                "namespace": w.namespace.unwrap_or_default(),
                "userInfo": { "username": w.user.name, "groups": w.user.groups },
                "kind": { "group": w.resource.group, "version": w.resource.version, "kind": w.resource.kind },
                "resource": { "group": w.resource.group, "version": w.resource.version, "resource": w.resource.plural },
                "dryRun": w.dry_run,
            })),
        );
        let mut variables = serde_json::Map::new();
        for variable in policy
            .pointer("/spec/variables")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = variable
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let expression = variable
                .get("expression")
                .and_then(Value::as_str)
                .unwrap_or_default();
            context.add_variable_from_value("variables", cel(&Value::Object(variables.clone())));
            if let Ok(value) = evaluate(expression, &context) {
                variables.insert(name.to_string(), json_of(&value));
            }
        }
        context.add_variable_from_value("variables", cel(&Value::Object(variables)));
        for validation in policy
            .pointer("/spec/validations")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let expression = validation
                .get("expression")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let (failed, message) = match evaluate(expression, &context) {
                Ok(CelValue::Bool(true)) => continue,
                Ok(CelValue::Bool(false)) => (
                    false,
                    validation
                        .get("message")
                        .and_then(Value::as_str)
                        .map(String::from)
                        .unwrap_or_else(|| format!("failed expression: {expression}")),
                ),
                Ok(other) => (
                    true,
                    format!(
                        "expression '{expression}' resulted in a {:?}, not a bool",
                        other.type_of()
                    ),
                ),
                Err(e) => (
                    true,
                    format!("expression '{expression}' resulted in error: {e}"),
                ),
            };
            if failed && fail_open {
                continue;
            }
            let text = format!("ValidatingAdmissionPolicy '{policy_name}' with binding '{binding_name}' denied request: {message}");
            if actions.iter().any(|a| a == "Deny") {
                let reason = validation
                    .get("reason")
                    .and_then(Value::as_str)
                    .unwrap_or("Invalid");
                let (code, reason) = match reason {
                    "Forbidden" => (403, "Forbidden"),
                    "Unauthorized" => (401, "Unauthorized"),
                    "RequestEntityTooLarge" => (413, "RequestEntityTooLarge"),
                    _ => (422, "Invalid"),
                };
                return Err(ApiError::new(code, reason, text));
            }
            if actions.iter().any(|a| a == "Warn") {
                warnings.push(text);
            }
        }
    }
    Ok(warnings)
}
