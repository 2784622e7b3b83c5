//! Reviews: questions answered from the request and forgotten. SelfSubjectAccessReview,
//! SubjectAccessReview and LocalSubjectAccessReview ask the authorizer about one request;
//! SelfSubjectRulesReview lists the caller's rules in a namespace; SelfSubjectReview
//! says who the caller is. `kubectl auth can-i [--list]` and `kubectl auth whoami` ask
//! these.

use std::collections::BTreeMap;

use http::Response;
use serde_json::{json, Value};

use super::{Api, Call};
use crate::authn::User;
use crate::authz::Attributes;
use crate::status::{ApiError, ApiResult};
use crate::transport::codec;
use crate::transport::Body;

fn text(v: &Value, p: &str) -> String {
    v.pointer(p)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn attributes(spec: &Value) -> ApiResult<Attributes> {
    if let Some(r) = spec.get("resourceAttributes") {
        return Ok(Attributes {
            verb: text(r, "/verb"),
            resource_request: true,
            namespace: text(r, "/namespace"),
            group: text(r, "/group"),
            resource: text(r, "/resource"),
            subresource: text(r, "/subresource"),
            name: text(r, "/name"),
            path: String::new(),
        });
    }
    if let Some(n) = spec.get("nonResourceAttributes") {
        return Ok(Attributes::path(&text(n, "/verb"), &text(n, "/path")));
    }
    Err(ApiError::invalid_field(
        "spec.resourceAttributes",
        "Required value: exactly one of nonResourceAttributes or resourceAttributes must be specified",
    ))
}

fn user_of(spec: &Value) -> User {
    let strings = |p: &str| crate::object::strings(spec, p);
    let extra: BTreeMap<String, Vec<String>> = spec
        .get("extra")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_array()
                            .map(|a| {
                                a.iter()
                                    .filter_map(|s| s.as_str().map(String::from))
                                    .collect()
                            })
                            .unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    User {
        name: text(spec, "/user"),
        uid: text(spec, "/uid"),
        groups: strings("/groups"),
        extra,
    }
}

pub async fn create(api: &Api, call: &Call<'_>) -> ApiResult<Response<Body>> {
    let mut review = codec::decode(&call.media, &call.body)?;
    let spec = review.get("spec").cloned().unwrap_or(json!({}));
    let status = match call.resource.kind {
        "SelfSubjectAccessReview" | "SubjectAccessReview" | "LocalSubjectAccessReview" => {
            let asker = if call.resource.kind == "SelfSubjectAccessReview" {
                call.user.clone()
            } else {
                user_of(&spec)
            };
            let attributes = attributes(&spec)?;
            if call.resource.kind == "LocalSubjectAccessReview"
                && attributes.namespace != call.namespace().unwrap_or_default()
            {
                return Err(ApiError::bad_request(format!(
                    "spec.resourceAttributes.namespace must match namespace: {}",
                    call.namespace().unwrap_or_default()
                )));
            }
            let (allowed, reason) = api.authorizer.decide(&asker, &attributes).await;
            let mut status = json!({ "allowed": allowed });
            if !reason.is_empty() {
                status["reason"] = json!(reason);
            }
            status
        }
        "SelfSubjectRulesReview" => {
            let namespace = text(&spec, "/namespace");
            if namespace.is_empty() {
                return Err(ApiError::invalid_field(
                    "spec.namespace",
                    "Required value: no namespace on request",
                ));
            }
            let rules = api.authorizer.rbac().rules_for(call.user, &namespace).await;
            let (resource_rules, non_resource_rules): (Vec<_>, Vec<_>) =
                rules.iter().partition(|r| r.non_resource_urls.is_empty());
            json!({
                "resourceRules": resource_rules.iter().map(|r| {
                    let mut v = r.to_json();
                    if v.get("apiGroups").is_none() { v["apiGroups"] = json!([]); }
                    v
                }).collect::<Vec<_>>(),
                "nonResourceRules": non_resource_rules.iter().map(|r| json!({ "verbs": r.verbs, "nonResourceURLs": r.non_resource_urls })).collect::<Vec<_>>(),
                "incomplete": !api.authorizer.uses_rbac(),
            })
        }
        "SelfSubjectReview" => {
            let mut info = json!({ "username": call.user.name, "groups": call.user.groups });
            if !call.user.uid.is_empty() {
                info["uid"] = json!(call.user.uid);
            }
            if !call.user.extra.is_empty() {
                info["extra"] = json!(call.user.extra);
            }
            json!({ "userInfo": info })
        }
        other => return Err(ApiError::internal(format!("no review handler for {other}"))),
    };
    review["status"] = status;
    review["apiVersion"] = json!(call.resource.api_version());
    review["kind"] = json!(call.resource.kind);
    review["metadata"] = json!({ "creationTimestamp": null });
    Ok(codec::respond(201, &review, call.output))
}
