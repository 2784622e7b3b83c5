//! Escalation prevention, as Kubernetes' RBAC storage enforces it: a Role or ClusterRole
//! may be written only by someone who holds every permission it grants (or may
//! `escalate` it), a binding only by someone who holds every permission of the role it
//! binds (or may `bind` it).

use serde_json::Value;

use super::rbac::{covers, Rule};
use super::{Attributes, Authorizer};
use crate::authn::User;
use crate::object::meta_str;
use crate::resources::Resource;
use crate::status::{ApiError, ApiResult};

fn rules(object: &Value) -> Vec<Rule> {
    object
        .get("rules")
        .and_then(Value::as_array)
        .map(|r| r.iter().map(Rule::from_json).collect())
        .unwrap_or_default()
}

fn printed(rule: &Rule) -> String {
    let list = |v: &[String]| {
        v.iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    if rule.non_resource_urls.is_empty() {
        format!(
            "{{APIGroups:[{}], Resources:[{}], Verbs:[{}]}}",
            list(&rule.api_groups),
            list(&rule.resources),
            list(&rule.verbs)
        )
    } else {
        format!(
            "{{NonResourceURLs:[{}], Verbs:[{}]}}",
            list(&rule.non_resource_urls),
            list(&rule.verbs)
        )
    }
}

/// Refuses an RBAC object `user` may not write.
pub async fn check(
    authorizer: &Authorizer,
    user: &User,
    resource: &Resource,
    object: &Value,
) -> ApiResult<()> {
    if resource.group != "rbac.authorization.k8s.io" {
        return Ok(());
    }
    let name = meta_str(object, "name").unwrap_or_default();
    let namespace = meta_str(object, "namespace").unwrap_or_default();
    let (granted, verb, target) = match resource.plural {
        "roles" | "clusterroles" => (
            rules(object),
            "escalate",
            (resource.plural.to_string(), name.to_string()),
        ),
        "rolebindings" | "clusterrolebindings" => {
            let role = object
                .pointer("/roleRef/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let kind = object
                .pointer("/roleRef/kind")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let (plural, scope) = if kind == "ClusterRole" {
                ("clusterroles", "")
            } else {
                ("roles", namespace)
            };
            let key = if scope.is_empty() {
                role.to_string()
            } else {
                format!("{scope}/{role}")
            };
            let bound = authorizer.rbac().role(plural, &key).await;
            let Some(bound) = bound else {
                // kube allows binding a role that does not exist yet; it grants nothing.
                return Ok(());
            };
            (
                rules(&bound),
                "bind",
                (plural.to_string(), role.to_string()),
            )
        }
        _ => return Ok(()),
    };
    let may = Attributes {
        verb: verb.into(),
        resource_request: true,
        namespace: namespace.to_string(),
        group: "rbac.authorization.k8s.io".into(),
        resource: target.0,
        name: target.1,
        ..Attributes::default()
    };
    if authorizer.decide(user, &may).await.0 {
        return Ok(());
    }
    let held = authorizer.rbac().rules_for(user, namespace).await;
    let missing: Vec<String> = granted
        .iter()
        .filter(|r| !covers(&held, r))
        .map(printed)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(ApiError::new(
        403,
        "Forbidden",
        format!(
            "{} {name:?} is forbidden: user {:?} (groups={:?}) is attempting to grant RBAC permissions not currently held:\n{}",
            resource.qualified(),
            user.name,
            user.groups,
            missing.join("\n")
        ),
    ))
}
