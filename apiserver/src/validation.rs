//! Validation, per kind: what kube-apiserver refuses most often, with its field paths and
//! texts. Runs after defaulting and before anything is written.

use serde_json::Value;

use crate::resources::Resource;
use crate::status::{ApiError, ApiResult, Cause};

const DNS1123_LABEL_MAX: usize = 63;
const DNS1123_SUBDOMAIN_MAX: usize = 253;
const LABEL_VALUE_MAX: usize = 63;

const SUBDOMAIN_TEXT: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_TEXT: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1035_TEXT: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const QUALIFIED_TEXT: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

/// A DNS-1123 label: lower-case alphanumerics and '-', alphanumeric at both ends.
pub fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= DNS1123_LABEL_MAX
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A DNS-1123 subdomain: dot-separated labels, at most 253 characters.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= DNS1123_SUBDOMAIN_MAX && s.split('.').all(is_dns1123_label)
}

fn is_qualified_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= LABEL_VALUE_MAX
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric()
}

/// How a kind's names are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NameRule {
    Subdomain,
    Label,
    Dns1035,
    /// RBAC and a few more: any path segment.
    PathSegment,
}

fn name_rule(resource: &Resource) -> NameRule {
    match resource.plural {
        "namespaces" => NameRule::Label,
        "services" => NameRule::Dns1035,
        "roles" | "rolebindings" | "clusterroles" | "clusterrolebindings" => NameRule::PathSegment,
        _ => NameRule::Subdomain,
    }
}

/// Why `name` is not a valid name for `resource`, kube's text.
pub fn name_problem(resource: &Resource, name: &str) -> Option<String> {
    let ok = match name_rule(resource) {
        NameRule::Subdomain => is_dns1123_subdomain(name),
        NameRule::Label => is_dns1123_label(name),
        NameRule::Dns1035 => is_dns1123_label(name) && name.as_bytes()[0].is_ascii_lowercase(),
        NameRule::PathSegment => {
            return match name {
                "." | ".." => Some(format!("may not be '{name}'")),
                _ if name.contains('/') => Some("may not contain '/'".into()),
                _ if name.contains('%') => Some("may not contain '%'".into()),
                _ => None,
            };
        }
    };
    if ok {
        return None;
    }
    Some(match name_rule(resource) {
        NameRule::Label => LABEL_TEXT.to_string(),
        NameRule::Dns1035 => DNS1035_TEXT.to_string(),
        _ => SUBDOMAIN_TEXT.to_string(),
    })
}

fn invalid(field: impl Into<String>, value: &str, why: &str) -> Cause {
    Cause {
        reason: "FieldValueInvalid",
        field: field.into(),
        message: format!("Invalid value: {value:?}: {why}"),
    }
}

/// The type of a Secret holding a legacy service account token.
pub const SERVICE_ACCOUNT_TOKEN_TYPE: &str = "kubernetes.io/service-account-token";
/// The annotation naming a token Secret's service account.
pub const SERVICE_ACCOUNT_NAME_ANNOTATION: &str = "kubernetes.io/service-account.name";
/// The annotation holding a token Secret's service account uid.
pub const SERVICE_ACCOUNT_UID_ANNOTATION: &str = "kubernetes.io/service-account.uid";

fn required(field: impl Into<String>, why: &str) -> Cause {
    Cause {
        reason: "FieldValueRequired",
        field: field.into(),
        message: if why.is_empty() {
            "Required value".into()
        } else {
            format!("Required value: {why}")
        },
    }
}

fn label_key_problem(key: &str) -> Option<String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        if !is_dns1123_subdomain(prefix) {
            return Some(format!("prefix part {SUBDOMAIN_TEXT}"));
        }
    }
    if !is_qualified_part(name) {
        return Some(QUALIFIED_TEXT.to_string());
    }
    None
}

fn check_labels(object: &Value, causes: &mut Vec<Cause>) {
    let Some(labels) = object
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
    else {
        return;
    };
    for (key, value) in labels {
        if let Some(why) = label_key_problem(key) {
            causes.push(invalid("metadata.labels", key, &why));
        }
        match value.as_str() {
            Some(v) if v.is_empty() || is_qualified_part(v) => {}
            Some(v) => causes.push(invalid(
                "metadata.labels",
                v,
                "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
            )),
            None => causes.push(invalid("metadata.labels", &value.to_string(), "must be a string")),
        }
    }
}

fn containers(object: &Value, path: &str, field: &str, causes: &mut Vec<Cause>) {
    match object.pointer(path).and_then(Value::as_array) {
        Some(list) if !list.is_empty() => {
            for (i, c) in list.iter().enumerate() {
                match c.get("name").and_then(Value::as_str) {
                    None | Some("") => causes.push(required(format!("{field}[{i}].name"), "")),
                    Some(n) if !is_dns1123_label(n) => {
                        causes.push(invalid(format!("{field}[{i}].name"), n, LABEL_TEXT))
                    }
                    _ => {}
                }
                if c.get("image")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    causes.push(required(format!("{field}[{i}].image"), ""));
                }
            }
        }
        _ => causes.push(required(field, "")),
    }
}

fn kind_rules(resource: &Resource, object: &Value, causes: &mut Vec<Cause>) {
    match (resource.group, resource.plural) {
        ("", "pods") => containers(object, "/spec/containers", "spec.containers", causes),
        ("apps", "deployments" | "replicasets" | "statefulsets" | "daemonsets")
        | ("batch", "jobs") => {
            containers(
                object,
                "/spec/template/spec/containers",
                "spec.template.spec.containers",
                causes,
            );
            let selector = object.pointer("/spec/selector");
            if resource.group == "apps" && selector.is_none() {
                causes.push(required("spec.selector", ""));
            }
            if let Some(want) = selector
                .and_then(|s| s.get("matchLabels"))
                .and_then(Value::as_object)
            {
                let have = object
                    .pointer("/spec/template/metadata/labels")
                    .and_then(Value::as_object);
                let selected = want
                    .iter()
                    .all(|(k, v)| have.and_then(|h| h.get(k)) == Some(v));
                if !selected {
                    causes.push(invalid(
                        "spec.template.metadata.labels",
                        &have
                            .map(|h| Value::Object(h.clone()).to_string())
                            .unwrap_or_default(),
                        "`selector` does not match template `labels`",
                    ));
                }
            }
        }
        ("batch", "cronjobs") => {
            if object
                .pointer("/spec/schedule")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                causes.push(required("spec.schedule", ""));
            }
            containers(
                object,
                "/spec/jobTemplate/spec/template/spec/containers",
                "spec.jobTemplate.spec.template.spec.containers",
                causes,
            );
        }
        ("", "services") => {
            let kind = object
                .pointer("/spec/type")
                .and_then(Value::as_str)
                .unwrap_or("ClusterIP");
            let ports = object.pointer("/spec/ports").and_then(Value::as_array);
            let headless =
                object.pointer("/spec/clusterIP").and_then(Value::as_str) == Some("None");
            if kind != "ExternalName" && !headless && ports.is_none_or(Vec::is_empty) {
                causes.push(required("spec.ports", ""));
            }
        }
        ("", "configmaps" | "secrets") => {
            for section in ["data", "binaryData", "stringData"] {
                for key in object
                    .get(section)
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                    .map(|(k, _)| k)
                {
                    let ok = !key.is_empty()
                        && key.len() <= DNS1123_SUBDOMAIN_MAX
                        && key
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
                    if !ok {
                        causes.push(invalid(
                            format!("{section}[{key}]"),
                            key,
                            "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
                        ));
                    }
                }
            }
            let account_token =
                object.get("type").and_then(Value::as_str) == Some(SERVICE_ACCOUNT_TOKEN_TYPE);
            if account_token
                && object
                    .pointer("/metadata/annotations")
                    .and_then(|a| a.get(SERVICE_ACCOUNT_NAME_ANNOTATION))
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
            {
                causes.push(required(
                    format!("metadata.annotations[{SERVICE_ACCOUNT_NAME_ANNOTATION}]"),
                    "",
                ));
            }
        }
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings")
            if object
                .pointer("/roleRef/name")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty) =>
        {
            causes.push(required("roleRef.name", ""));
        }
        _ => {}
    }
}

/// Checks an object about to be created.
pub fn create(resource: &Resource, object: &Value) -> ApiResult<()> {
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut causes = Vec::new();
    if name.is_empty() {
        causes.push(required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else if let Some(why) = name_problem(resource, name) {
        causes.push(invalid("metadata.name", name, &why));
    }
    check_labels(object, &mut causes);
    kind_rules(resource, object, &mut causes);
    done(resource, name, causes)
}

fn field_changed(old: &Value, new: &Value, pointer: &str) -> bool {
    old.pointer(pointer) != new.pointer(pointer)
}

/// Checks an update of `old` into `new`: the create rules plus what may not change.
pub fn update(resource: &Resource, old: &Value, new: &Value) -> ApiResult<()> {
    let name = old
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut causes = Vec::new();
    check_labels(new, &mut causes);
    kind_rules(resource, new, &mut causes);
    let immutable = |causes: &mut Vec<Cause>, field: &str, pointer: &str| {
        if field_changed(old, new, pointer) {
            causes.push(Cause {
                reason: "FieldValueInvalid",
                field: field.into(),
                message: format!(
                    "Invalid value: {}: field is immutable",
                    new.pointer(pointer).map_or("null".into(), Value::to_string)
                ),
            });
        }
    };
    match (resource.group, resource.plural) {
        ("", "services") => {
            let old_ip = old
                .pointer("/spec/clusterIP")
                .and_then(Value::as_str)
                .unwrap_or("");
            let new_ip = new
                .pointer("/spec/clusterIP")
                .and_then(Value::as_str)
                .unwrap_or("");
            if !old_ip.is_empty() && old_ip != new_ip {
                immutable(&mut causes, "spec.clusterIPs[0]", "/spec/clusterIP");
            }
        }
        ("batch", "jobs") => immutable(&mut causes, "spec.template", "/spec/template"),
        ("apps", "deployments" | "replicasets" | "statefulsets" | "daemonsets") => {
            immutable(&mut causes, "spec.selector", "/spec/selector")
        }
        ("", "configmaps" | "secrets")
            if old.get("immutable") == Some(&Value::Bool(true))
                && (field_changed(old, new, "/data") || field_changed(old, new, "/binaryData")) =>
        {
            causes.push(Cause {
                reason: "FieldValueForbidden",
                field: "data".into(),
                message: "Forbidden: field is immutable when `immutable` is set".into(),
            });
        }
        _ => {}
    }
    done(resource, name, causes)
}

fn done(resource: &Resource, name: &str, causes: Vec<Cause>) -> ApiResult<()> {
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(resource, name, causes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::find;
    use serde_json::json;

    #[test]
    fn names_follow_each_kinds_rule() {
        let cm = find("", "v1", "configmaps").unwrap();
        let ns = find("", "v1", "namespaces").unwrap();
        let svc = find("", "v1", "services").unwrap();
        let role = find("rbac.authorization.k8s.io", "v1", "clusterroles").unwrap();
        assert!(name_problem(cm, "a.b-c").is_none());
        assert!(name_problem(cm, "Abc").is_some());
        assert!(name_problem(ns, "a.b").is_some());
        assert!(name_problem(svc, "1abc").is_some());
        assert!(name_problem(role, "system:admin").is_none());
        assert!(name_problem(role, "a/b").is_some());
    }

    #[test]
    fn invalid_objects_name_their_fields() {
        let deploy = find("apps", "v1", "deployments").unwrap();
        let bad = json!({
            "metadata": {"name": "web", "labels": {"bad key": "x"}},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "other"}},
                                  "spec": {"containers": [{"name": "c"}]}}}
        });
        let error = create(deploy, &bad).unwrap_err();
        assert_eq!(error.code, 422);
        let fields: Vec<&str> = error.causes().iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "metadata.labels",
                "spec.template.spec.containers[0].image",
                "spec.template.metadata.labels"
            ]
        );
        assert!(
            error
                .message
                .starts_with("Deployment.apps \"web\" is invalid: "),
            "{}",
            error.message
        );
    }

    #[test]
    fn immutable_fields_stay() {
        let svc = find("", "v1", "services").unwrap();
        let old = json!({"metadata": {"name": "s"}, "spec": {"clusterIP": "10.0.0.1", "ports": [{"port": 80}]}});
        let mut new = old.clone();
        new["spec"]["clusterIP"] = json!("10.0.0.2");
        assert_eq!(
            update(svc, &old, &new).unwrap_err().causes()[0].field,
            "spec.clusterIPs[0]"
        );
        assert!(update(svc, &old, &old).is_ok());
    }
}
