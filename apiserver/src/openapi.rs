//! `/openapi/v3`: the index of group versions and one document per group version, with
//! every served kind's schema (Kubernetes' own, from the k8s-openapi types) under
//! `components.schemas`, marked with its group-version-kind so `kubectl explain` finds
//! it, and each path's `fieldValidation` parameter, which tells kubectl to leave
//! validation to the server. Documents are addressed by a content hash so kubectl caches
//! them; they are built once.

use std::collections::HashMap;
use std::hash::{Hash as _, Hasher as _};
use std::sync::OnceLock;

use bytes::Bytes;
use serde_json::{json, Map, Value};

use crate::resources::{self, Resource};

/// One group version's document.
#[derive(Debug)]
pub struct Document {
    /// The document's JSON.
    pub json: Bytes,
    /// Its content hash (the `?hash=` of its address).
    pub hash: String,
    /// `components.schemas`, for field validation.
    pub schemas: Map<String, Value>,
}

/// `api/v1`, `apis/apps/v1`: how the index names a group version.
pub fn path_of(group: &str, version: &str) -> String {
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

fn gvk(r: &Resource) -> Value {
    json!([{ "group": r.group, "version": r.version, "kind": r.kind }])
}

fn operation(r: &Resource, action: &str, reference: &Value) -> Value {
    let mut op = json!({
        "operationId": format!("{action}{}", r.kind),
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": { "group": r.group, "version": r.version, "kind": r.kind },
        "parameters": [
            { "name": "dryRun", "in": "query", "schema": { "type": "string", "uniqueItems": true } },
            { "name": "fieldManager", "in": "query", "schema": { "type": "string", "uniqueItems": true } },
            { "name": "fieldValidation", "in": "query", "schema": { "type": "string", "uniqueItems": true } },
        ],
        "responses": { "200": { "description": "OK", "content": { "application/json": { "schema": reference } } } },
    });
    if action == "put" {
        op["requestBody"] =
            json!({ "content": { "*/*": { "schema": reference } }, "required": true });
    }
    op
}

fn build(group: &str, version: &str) -> Option<Document> {
    let served: Vec<&Resource> = resources::of(group, version).collect();
    if served.is_empty() {
        return None;
    }
    let mut generator = schemars::generate::SchemaSettings::openapi3().into_generator();
    let mut paths = Map::new();
    let mut kinds = Vec::new();
    for r in &served {
        let reference = (r.schema)(&mut generator).to_value();
        if let Some(name) = reference
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|s| s.rsplit('/').next())
        {
            kinds.push((name.to_string(), *r));
        }
        paths.insert(
            item_path(r),
            json!({ "patch": operation(r, "patch", &reference), "put": operation(r, "put", &reference) }),
        );
    }
    let mut schemas = generator.take_definitions(true);
    for (name, r) in kinds {
        if let Some(schema) = schemas.get_mut(&name).and_then(Value::as_object_mut) {
            schema.insert("x-kubernetes-group-version-kind".into(), gvk(r));
        }
    }
    let document = json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes", "version": "v1.32.0" },
        "paths": paths,
        "components": { "schemas": schemas },
    });
    let json = Bytes::from(document.to_string());
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    json.hash(&mut hasher);
    Some(Document {
        hash: format!("{:016X}", hasher.finish()),
        json,
        schemas,
    })
}

fn documents() -> &'static HashMap<String, Document> {
    static DOCUMENTS: OnceLock<HashMap<String, Document>> = OnceLock::new();
    DOCUMENTS.get_or_init(|| {
        let mut gvs = vec![("", "v1")];
        gvs.extend(resources::groups());
        gvs.into_iter()
            .filter_map(|(g, v)| build(g, v).map(|d| (path_of(g, v), d)))
            .collect()
    })
}

/// The document of one group version (`api/v1`, `apis/apps/v1`).
pub fn document(path: &str) -> Option<&'static Document> {
    documents().get(path)
}

/// The schema of a kind, and the schemas its references resolve in.
pub fn schema_of(resource: &Resource) -> Option<(&'static Value, &'static Map<String, Value>)> {
    let doc = document(&path_of(resource.group, resource.version))?;
    let schema = doc.schemas.values().find(|s| {
        s.get("x-kubernetes-group-version-kind")
            .and_then(|g| g.get(0))
            .is_some_and(|g| g["kind"] == resource.kind && g["group"] == resource.group)
    })?;
    Some((schema, &doc.schemas))
}

/// `/openapi/v3`: every group version with the address of its document.
pub fn index() -> Value {
    let mut paths = Map::new();
    let mut names: Vec<&String> = documents().keys().collect();
    names.sort();
    for path in names {
        let doc = &documents()[path];
        paths.insert(
            path.clone(),
            json!({ "serverRelativeURL": format!("/openapi/v3/{path}?hash={}", doc.hash) }),
        );
    }
    json!({ "paths": paths })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_schema_marked_with_its_kind() {
        for r in resources::RESOURCES {
            let (schema, _) = schema_of(r).unwrap_or_else(|| panic!("{} has no schema", r.kind));
            assert!(schema["properties"]["metadata"].is_object(), "{}", r.kind);
        }
        let apps = document("apis/apps/v1").unwrap();
        let index = index();
        assert_eq!(
            index["paths"]["apis/apps/v1"]["serverRelativeURL"],
            format!("/openapi/v3/apis/apps/v1?hash={}", apps.hash)
        );
        let doc: Value = serde_json::from_slice(&apps.json).unwrap();
        let patch =
            &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert!(patch["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "fieldValidation"));
        assert!(
            doc["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
                .is_object()
        );
    }
}
