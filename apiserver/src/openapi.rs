//! `/openapi/v3`: the index of group versions and one document per group version, each
//! path carrying its kind and the `fieldValidation` parameter kubectl looks for before it
//! leaves validation to the server. Documents are addressed by a content hash so
//! kubectl caches them.

use std::hash::{Hash as _, Hasher as _};

use serde_json::{json, Value};

use crate::resources::{self, Resource};

/// `api/v1`, `apis/apps/v1`: how the index names a group version.
fn path_of(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn item_path(r: &Resource) -> String {
    let base = format!("/{}", path_of(r.group, r.version));
    if r.namespaced {
        format!("{base}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
    } else {
        format!("{base}/{}/{{name}}", r.plural)
    }
}

fn operation(r: &Resource, action: &str) -> Value {
    json!({
        "operationId": format!("{action}{}", r.kind),
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": { "group": r.group, "version": r.version, "kind": r.kind },
        "parameters": [
            { "name": "dryRun", "in": "query", "schema": { "type": "string", "uniqueItems": true } },
            { "name": "fieldManager", "in": "query", "schema": { "type": "string", "uniqueItems": true } },
            { "name": "fieldValidation", "in": "query", "schema": { "type": "string", "uniqueItems": true } },
        ],
        "responses": { "200": { "description": "OK" } },
    })
}

/// The document of one group version.
pub fn document(group: &str, version: &str) -> Option<Value> {
    let mut paths = serde_json::Map::new();
    for r in resources::of(group, version) {
        paths.insert(
            item_path(r),
            json!({ "patch": operation(r, "patch"), "put": operation(r, "put") }),
        );
    }
    if paths.is_empty() {
        return None;
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes", "version": "v1.32.0" },
        "paths": paths,
        "components": { "schemas": {} },
    }))
}

fn hash(value: &Value) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    value.to_string().hash(&mut hasher);
    format!("{:016X}", hasher.finish())
}

/// `/openapi/v3`: every group version with the address of its document.
pub fn index() -> Value {
    let mut gvs = vec![("", "v1")];
    gvs.extend(resources::groups());
    let mut paths = serde_json::Map::new();
    for (g, v) in gvs {
        if let Some(doc) = document(g, v) {
            let path = path_of(g, v);
            paths.insert(
                path.clone(),
                json!({ "serverRelativeURL": format!("/openapi/v3/{path}?hash={}", hash(&doc)) }),
            );
        }
    }
    json!({ "paths": paths })
}

/// The document at `/openapi/v3/<rest>`.
pub fn lookup(rest: &str) -> Option<Value> {
    match rest.split('/').collect::<Vec<_>>().as_slice() {
        ["api", version] => document("", version),
        ["apis", group, version] => document(group, version),
        _ => None,
    }
}
