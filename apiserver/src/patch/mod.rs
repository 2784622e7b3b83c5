//! The patch flavours: RFC 7386 merge patch, RFC 6902 JSON patch, and strategic merge
//! patch (lists merged by their kinds' merge keys).

pub mod strategic;

use serde_json::Value;

use crate::status::{ApiError, ApiResult};

/// A patch body's flavour, from its Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// `application/merge-patch+json`.
    Merge,
    /// `application/json-patch+json`.
    Json,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/apply-patch+yaml`: server-side apply.
    Apply,
}

impl Flavour {
    /// The flavour of a media type; anything else is 415.
    pub fn of(media: &str) -> ApiResult<Flavour> {
        Ok(match media {
            "application/merge-patch+json" => Flavour::Merge,
            "application/json-patch+json" => Flavour::Json,
            "application/strategic-merge-patch+json" => Flavour::Strategic,
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Flavour::Apply,
            other => return Err(ApiError::unsupported_media_type(other)),
        })
    }
}

fn invalid(message: String) -> ApiError {
    ApiError::new(422, "Invalid", message)
}

/// Applies a merge, JSON or strategic patch to `object`.
pub fn apply(flavour: Flavour, object: &Value, body: &[u8]) -> ApiResult<Value> {
    let mut out = object.clone();
    match flavour {
        Flavour::Merge => {
            let patch: Value = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
            json_patch::merge(&mut out, &patch);
        }
        Flavour::Json => {
            let patch: json_patch::Patch = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
            json_patch::patch(&mut out, &patch).map_err(|e| {
                invalid(format!(
                    "the server rejected our request due to an error in our request: {e}"
                ))
            })?;
        }
        Flavour::Strategic => {
            let patch: Value = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
            strategic::merge(&mut out, &patch).map_err(invalid)?;
        }
        Flavour::Apply => {
            let config: Value = serde_yaml::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
            strategic::merge(&mut out, &config).map_err(invalid)?;
        }
    }
    if !out.is_object() {
        return Err(invalid(
            "the patch made the object something else than an object".into(),
        ));
    }
    Ok(out)
}
