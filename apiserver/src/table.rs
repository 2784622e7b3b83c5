//! `meta.k8s.io/v1 Table` answers: what `kubectl get` asks for (`Accept: ...;as=Table`).

use serde_json::{json, Value};

use crate::printers;
use crate::resources::Resource;

/// What each row carries besides its cells (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Include {
    /// Nothing.
    None,
    /// The object's metadata, as `PartialObjectMetadata` (kube's default).
    #[default]
    Metadata,
    /// The whole object.
    Object,
}

impl Include {
    /// Reads `includeObject=`.
    pub fn parse(value: Option<&str>) -> Include {
        match value {
            Some("None") => Include::None,
            Some("Object") => Include::Object,
            _ => Include::Metadata,
        }
    }
}

fn row(resource: &Resource, object: &Value, include: Include) -> Value {
    let mut row = json!({ "cells": printers::cells(resource.columns, object) });
    match include {
        Include::None => {}
        Include::Metadata => {
            row["object"] = json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": object.get("metadata").cloned().unwrap_or(json!({})),
            })
        }
        Include::Object => row["object"] = object.clone(),
    }
    row
}

/// A table of `objects`; list metadata (`resourceVersion`, `continue`) as given.
pub fn table(
    resource: &Resource,
    objects: &[&Value],
    metadata: Value,
    include: Include,
    definitions: bool,
) -> Value {
    let mut table = json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "rows": objects.iter().map(|o| row(resource, o, include)).collect::<Vec<_>>(),
    });
    if definitions {
        table["columnDefinitions"] = printers::definitions(resource.columns);
    } else {
        table["columnDefinitions"] = json!(null);
    }
    table
}
