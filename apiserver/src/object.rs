//! Objects are kept generic (`serde_json::Value`), as kube's unstructured objects: these
//! read and fill the metadata every kind shares.

use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::resources::Resource;

/// Now, as kube writes timestamps (RFC 3339, whole seconds, UTC).
pub fn now() -> String {
    let now = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or(OffsetDateTime::now_utc());
    now.format(&Rfc3339).unwrap_or_default()
}

/// A string field of `metadata`.
pub fn meta_str<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    object.get("metadata")?.get(field)?.as_str()
}

/// `metadata`, created when missing (and replaced when it is not an object).
pub fn meta_mut(object: &mut Value) -> &mut Map<String, Value> {
    if !object.get("metadata").is_some_and(Value::is_object) {
        object["metadata"] = json!({});
    }
    object["metadata"]
        .as_object_mut()
        .expect("metadata is an object")
}

/// The strings of the list at a JSON pointer (none when it is missing).
pub fn strings(value: &Value, pointer: &str) -> Vec<String> {
    value
        .pointer(pointer)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// `metadata.finalizers`.
pub fn finalizers(object: &Value) -> Vec<String> {
    strings(object, "/metadata/finalizers")
}

/// Sets `metadata.resourceVersion` to the store revision.
pub fn set_resource_version(object: &mut Value, revision: i64) {
    meta_mut(object).insert("resourceVersion".into(), json!(revision.to_string()));
}

/// Fills `apiVersion` and `kind` from the resource (bodies built by clients often lack
/// them); the caller has checked any that were given.
pub fn set_type(object: &mut Value, resource: &Resource) {
    if let Some(map) = object.as_object_mut() {
        map.insert("apiVersion".into(), json!(resource.api_version()));
        map.insert("kind".into(), json!(resource.kind));
    }
}

/// The stored form: kube keeps no resourceVersion in the value (the key's revision is).
pub fn for_storage(object: &Value) -> Vec<u8> {
    let mut stored = object.clone();
    if let Some(meta) = stored.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
        meta.remove("selfLink");
    }
    serde_json::to_vec(&stored).expect("a JSON value serializes")
}

/// Parses a stored value and stamps the key's revision on it.
pub fn from_storage(value: &[u8], mod_revision: i64) -> Option<Value> {
    let mut object: Value = serde_json::from_slice(value).ok()?;
    if !object.is_object() {
        return None;
    }
    set_resource_version(&mut object, mod_revision);
    Some(object)
}

/// The object's parts a `/status` write keeps from the request (everything else comes
/// from the stored object), or the main resource keeps from storage.
pub fn take_status(from: &Value, into: &mut Value) {
    match from.get("status") {
        Some(status) => into["status"] = status.clone(),
        None => {
            if let Some(map) = into.as_object_mut() {
                map.remove("status");
            }
        }
    }
}

/// Everything but metadata and status: what moves `metadata.generation`.
pub fn spec_of(object: &Value) -> Value {
    let mut spec = object.clone();
    if let Some(map) = spec.as_object_mut() {
        map.remove("metadata");
        map.remove("status");
        map.remove("apiVersion");
        map.remove("kind");
    }
    spec
}

/// Stamps what the server gives a new object: its type, uid, creation time and the
/// kind's defaults (for objects the server creates itself).
pub fn stamp_new(resource: &Resource, object: &mut Value) {
    set_type(object, resource);
    let meta = meta_mut(object);
    meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    meta.insert("creationTimestamp".into(), json!(now()));
    crate::defaults::on_create(resource, object);
}

/// A random lower-case suffix for `generateName`, kube's alphabet (no vowels, no look-alikes).
pub fn name_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char)
        .collect()
}
