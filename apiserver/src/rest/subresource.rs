//! Subresources: `/status` (only `.status` changes), `/scale` (an `autoscaling/v1 Scale`
//! view of `.spec.replicas`) and a namespace's `/finalize`.

use http::Response;
use serde_json::{json, Value};

use super::read::object_response;
use super::write::{self, guaranteed_update, Owner, Part};
use super::{Api, Call};
use crate::authn::service_accounts::{KubeClaims, Named};
use crate::object::{meta_mut, meta_str};
use crate::patch::{self, Flavour};
use crate::resources::{self, Sub};
use crate::status::{ApiError, ApiResult};
use crate::transport::codec::{self, Output};
use crate::transport::Body;

pub async fn handle(api: &Api, call: &Call<'_>, sub: &str) -> ApiResult<Response<Body>> {
    let resource = call.resource;
    let served = resource
        .subresources
        .iter()
        .find(|s| s.name() == sub)
        .copied();
    let manager = write::manager(call)?;
    match (served, sub, call.request.verb) {
        (Some(Sub::Token), _, "create") => token_request(api, call).await,
        (Some(Sub::Status), _, "get") => super::read::get(api, call).await,
        (Some(Sub::Status), _, "update") => write::update(api, call, Part::Status).await,
        (Some(Sub::Status), _, "patch") => write::patch(api, call, Part::Status).await,
        (Some(Sub::Scale), _, "get") => {
            let name = call.name()?;
            let stored = api
                .storage
                .get(resource, &call.key(api)?)
                .await?
                .ok_or_else(|| ApiError::not_found(resource, name))?;
            Ok(scale_response(call, 200, &scale_of(&stored.object)))
        }
        (Some(Sub::Scale), _, verb @ ("update" | "patch")) => {
            let flavour = if verb == "patch" {
                Some(Flavour::of(&call.media)?)
            } else {
                None
            };
            let change = |current: &Value| {
                let scale = scale_of(current);
                let wanted = match flavour {
                    Some(flavour) => patch::apply(flavour, &scale, &call.body)?,
                    None => codec::decode(&call.media, &call.body)?,
                };
                let replicas = wanted
                    .pointer("/spec/replicas")
                    .and_then(Value::as_i64)
                    .ok_or_else(|| ApiError::bad_request("spec.replicas is required"))?;
                let mut new = current.clone();
                new["spec"]["replicas"] = json!(replicas);
                if let Some(rv) = meta_str(&wanted, "resourceVersion") {
                    meta_mut(&mut new).insert("resourceVersion".into(), json!(rv));
                }
                Ok(new)
            };
            let updated =
                guaranteed_update(api, call, Part::Main, Owner::Update(&manager), change).await?;
            Ok(scale_response(call, 200, &scale_of(&updated)))
        }
        (None, "finalize", "update")
            if resource.plural == "namespaces" && resource.group.is_empty() =>
        {
            let body = codec::decode(&call.media, &call.body)?;
            let finalizers = body
                .pointer("/spec/finalizers")
                .cloned()
                .unwrap_or(json!([]));
            let change = |current: &Value| {
                let mut new = current.clone();
                new["spec"]["finalizers"] = finalizers.clone();
                Ok(new)
            };
            let updated =
                guaranteed_update(api, call, Part::Main, Owner::Update(&manager), change).await?;
            super::delete::finish_namespace(api, call.name()?).await?;
            Ok(object_response(call, 200, &updated))
        }
        _ => Err(ApiError::no_route()),
    }
}

/// Token lifetimes kube accepts.
const TOKEN_SECONDS_MIN: i64 = 600;
const TOKEN_SECONDS_MAX: i64 = 1 << 32;
/// The lifetime of a token whose request names none.
const TOKEN_SECONDS_DEFAULT: i64 = 3600;

/// `serviceaccounts/<name>/token`: a signed token for the service account, optionally
/// bound to a Pod or Secret of its namespace.
async fn token_request(api: &Api, call: &Call<'_>) -> ApiResult<Response<Body>> {
    let mut request = codec::decode(&call.media, &call.body)?;
    let name = call.name()?;
    let namespace = call.namespace().unwrap_or_default().to_string();
    let account = api
        .storage
        .get(call.resource, &call.key(api)?)
        .await?
        .ok_or_else(|| ApiError::not_found(call.resource, name))?;
    let uid = meta_str(&account.object, "uid")
        .unwrap_or_default()
        .to_string();
    let seconds = request
        .pointer("/spec/expirationSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(TOKEN_SECONDS_DEFAULT);
    if !(TOKEN_SECONDS_MIN..=TOKEN_SECONDS_MAX).contains(&seconds) {
        return Err(ApiError::invalid_field(
            "spec.expirationSeconds",
            &format!("Invalid value: {seconds}: may not specify a duration less than 10 minutes or longer than 2^32 seconds"),
        ));
    }
    let audiences: Vec<String> = match crate::object::strings(&request, "/spec/audiences") {
        a if a.is_empty() => api.tokens.audiences().to_vec(),
        a => a,
    };
    let mut claims = KubeClaims {
        namespace: namespace.clone(),
        serviceaccount: Named {
            name: name.to_string(),
            uid,
        },
        pod: None,
        secret: None,
    };
    if let Some(bound) = request
        .pointer("/spec/boundObjectRef")
        .filter(|b| b.is_object())
    {
        let text = |k: &str| {
            bound
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let plural = match text("kind").as_str() {
            "Pod" => "pods",
            "Secret" => "secrets",
            other => {
                return Err(ApiError::invalid_field(
                    "spec.boundObjectRef.kind",
                    &format!("Unsupported value: {other:?}: supported values: \"Pod\", \"Secret\""),
                ))
            }
        };
        let resource = resources::find("", "v1", plural).expect("served");
        let object = api
            .storage
            .get(
                resource,
                &api.storage.key(resource, Some(&namespace), &text("name")),
            )
            .await?
            .ok_or_else(|| ApiError::not_found(resource, &text("name")))?;
        let object_uid = meta_str(&object.object, "uid")
            .unwrap_or_default()
            .to_string();
        if !text("uid").is_empty() && text("uid") != object_uid {
            return Err(ApiError::conflict(
                resource,
                &text("name"),
                "the UID in the bound object reference does not match the object",
            ));
        }
        let named = Some(Named {
            name: text("name"),
            uid: object_uid,
        });
        if plural == "pods" {
            claims.pod = named
        } else {
            claims.secret = named
        }
    }
    let (token, expires) = api
        .tokens
        .issue(audiences.clone(), seconds, claims)
        .map_err(ApiError::internal)?;
    let expires = time::OffsetDateTime::from_unix_timestamp(expires)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    request["apiVersion"] = json!("authentication.k8s.io/v1");
    request["kind"] = json!("TokenRequest");
    request["metadata"] =
        json!({ "name": name, "namespace": namespace, "creationTimestamp": null });
    request["spec"]["audiences"] = json!(audiences);
    request["spec"]["expirationSeconds"] = json!(seconds);
    request["status"] = json!({ "token": token, "expirationTimestamp": expires });
    Ok(codec::respond(201, &request, Output::Json))
}

fn scale_response(call: &Call<'_>, code: u16, scale: &Value) -> Response<Body> {
    let output = if call.output == Output::Yaml {
        Output::Yaml
    } else {
        Output::Json
    };
    codec::respond(code, scale, output)
}

/// The Scale view of a workload.
fn scale_of(object: &Value) -> Value {
    let meta = object.get("metadata").cloned().unwrap_or(json!({}));
    let mut scale_meta = json!({});
    for field in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = meta.get(field) {
            scale_meta[field] = v.clone();
        }
    }
    let selector = object
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": scale_meta,
        "spec": { "replicas": object.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(0) },
        "status": {
            "replicas": object.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0),
            "selector": selector,
        },
    })
}
