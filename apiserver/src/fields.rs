//! Field validation (`fieldValidation=Strict|Warn|Ignore`): fields a kind's schema does not
//! know are dropped, as kube-apiserver drops them when it decodes into its types; Strict
//! refuses the request instead, Warn (the default) names each one in a `Warning` header.

use serde_json::{Map, Value};

use crate::openapi;
use crate::resources::Resource;
use crate::status::{ApiError, ApiResult};

/// What a request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Refuse unknown fields.
    Strict,
    /// Drop them with a warning each.
    Warn,
    /// Drop them.
    Ignore,
}

impl Mode {
    /// Reads `fieldValidation=`; kube's default is Warn.
    pub fn parse(value: Option<&str>) -> ApiResult<Mode> {
        match value {
            None | Some("") | Some("Warn") => Ok(Mode::Warn),
            Some("Strict") => Ok(Mode::Strict),
            Some("Ignore") => Ok(Mode::Ignore),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation must be one of \"Ignore\", \"Warn\", or \"Strict\" (got {other:?})"
            ))),
        }
    }
}

fn resolve<'a>(schema: &'a Value, schemas: &'a Map<String, Value>) -> &'a Value {
    let reference = schema.get("$ref").or_else(|| {
        schema
            .get("allOf")
            .and_then(|all| all.get(0))
            .and_then(|first| first.get("$ref"))
    });
    match reference
        .and_then(Value::as_str)
        .and_then(|r| r.rsplit('/').next())
        .and_then(|name| schemas.get(name))
    {
        Some(target) => resolve(target, schemas),
        None => schema,
    }
}

fn walk(
    schema: &Value,
    schemas: &Map<String, Value>,
    value: &mut Value,
    path: &str,
    unknown: &mut Vec<String>,
) {
    let schema = resolve(schema, schemas);
    if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
        || schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true))
    {
        return;
    }
    match value {
        Value::Object(map) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            if properties.is_none() && additional.is_none() {
                return;
            }
            let mut dropped = Vec::new();
            for (key, child) in map.iter_mut() {
                let child_path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match properties.and_then(|p| p.get(key)).or(additional) {
                    Some(child_schema) => walk(child_schema, schemas, child, &child_path, unknown),
                    None => {
                        unknown.push(child_path);
                        dropped.push(key.clone());
                    }
                }
            }
            for key in dropped {
                map.remove(&key);
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    walk(item_schema, schemas, item, &format!("{path}[{i}]"), unknown);
                }
            }
        }
        _ => {}
    }
}

/// Drops the fields `resource`'s schema does not know from `object`; answers the
/// warnings to send, or kube's 400 in Strict mode.
pub fn check(resource: &Resource, object: &mut Value, mode: Mode) -> ApiResult<Vec<String>> {
    let Some((schema, schemas)) = openapi::schema_of(resource) else {
        return Ok(Vec::new());
    };
    let mut unknown = Vec::new();
    walk(schema, schemas, object, "", &mut unknown);
    let listed: Vec<String> = unknown
        .iter()
        .map(|f| format!("unknown field \"{f}\""))
        .collect();
    match mode {
        Mode::Strict if !listed.is_empty() => Err(ApiError::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {}",
            listed.join(", "),
            kind = resource.kind,
            version = resource.version,
        ))),
        Mode::Warn => Ok(listed),
        _ => Ok(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::find;
    use serde_json::json;

    #[test]
    fn unknown_fields_are_found_at_any_depth_and_dropped() {
        let deploy = find("apps", "v1", "deployments").unwrap();
        let mut object = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"any": "label"}, "bogus": 1},
            "spec": {"replicas": 1, "extra": true,
                     "strategy": {"rollingUpdate": {"maxSurge": "25%"}},
                     "template": {"spec": {"containers": [{"name": "c", "image": "i", "imagee": "typo"}]}}},
        });
        let warnings = check(deploy, &mut object, Mode::Warn).unwrap();
        assert_eq!(
            warnings,
            [
                "unknown field \"metadata.bogus\"",
                "unknown field \"spec.extra\"",
                "unknown field \"spec.template.spec.containers[0].imagee\"",
            ]
        );
        assert!(object["spec"].get("extra").is_none());
        assert_eq!(
            object["spec"]["strategy"]["rollingUpdate"]["maxSurge"],
            "25%"
        );
        assert_eq!(object["metadata"]["labels"]["any"], "label");

        let mut again = json!({"metadata": {"name": "x"}, "spec": {"extra": 1}});
        let error = check(deploy, &mut again, Mode::Strict).unwrap_err();
        assert_eq!(
            error.message,
            "Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: unknown field \"spec.extra\""
        );
        let mut ignored = json!({"spec": {"extra": 1}});
        assert!(check(deploy, &mut ignored, Mode::Ignore)
            .unwrap()
            .is_empty());
        assert!(ignored["spec"].get("extra").is_none());
    }
}
