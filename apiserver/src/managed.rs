//! Field ownership (`metadata.managedFields`) and server-side apply: every write records
//! which fields its manager set; an apply that would change a field another manager owns
//! is a 409 naming each conflict, unless forced; fields an applier stops applying are
//! removed when nobody else owns them. Lists merge by the kinds' merge keys (as
//! strategic merge does); other lists are owned whole.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use crate::object;
use crate::patch::strategic;
use crate::resources::Resource;
use crate::status::{ApiError, ApiResult, Cause, Details};

/// One field: `f:<name>`, `k:<key json>` (an item of a keyed list) or `v:<value json>`
/// (an item of a set), as FieldsV1 spells them.
type Path = Vec<String>;
/// A set of fields.
pub type FieldSet = BTreeSet<Path>;

/// Metadata fields nobody owns: the server sets them.
const UNOWNED_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The manager's name.
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// The apiVersion the manager wrote with.
    pub api_version: String,
    /// When.
    pub time: String,
    /// `status` for writes through the status subresource.
    pub subresource: Option<String>,
    /// The fields.
    pub fields: FieldSet,
}

fn collect(value: &Value, field: &str, parent: &str, path: &mut Path, out: &mut FieldSet) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                if path.is_empty() && (key == "apiVersion" || key == "kind" || key == "status") {
                    continue;
                }
                if path.len() == 1
                    && path[0] == "f:metadata"
                    && UNOWNED_METADATA.contains(&key.as_str())
                {
                    continue;
                }
                path.push(format!("f:{key}"));
                collect(child, key, field, path, out);
                path.pop();
            }
        }
        Value::Array(items) if !items.is_empty() => {
            if let Some(key) = strategic::merge_key(field, parent) {
                for item in items {
                    let Some(id) = item.get(key) else { continue };
                    path.push(format!("k:{}", json!({ key: id })));
                    out.insert(path.clone());
                    collect(item, field, parent, path, out);
                    path.pop();
                }
            } else if strategic::is_set_list(field) {
                for item in items {
                    path.push(format!("v:{item}"));
                    out.insert(path.clone());
                    path.pop();
                }
            } else {
                out.insert(path.clone());
            }
        }
        _ => {
            if !path.is_empty() {
                out.insert(path.clone());
            }
        }
    }
}

/// The fields an object sets.
pub fn fields_of(object: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    collect(object, "", "", &mut Vec::new(), &mut out);
    out
}

/// The value at a path, if the object has it.
fn at<'a>(object: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut here = object;
    for element in path {
        here = if let Some(name) = element.strip_prefix("f:") {
            here.get(name)?
        } else if let Some(key) = element.strip_prefix("k:") {
            let key: Map<String, Value> = serde_json::from_str(key).ok()?;
            here.as_array()?
                .iter()
                .find(|item| key.iter().all(|(k, v)| item.get(k) == Some(v)))?
        } else if let Some(value) = element.strip_prefix("v:") {
            let value: Value = serde_json::from_str(value).ok()?;
            here.as_array()?.iter().find(|item| **item == value)?
        } else {
            return None;
        };
    }
    Some(here)
}

/// Removes the field at a path.
fn remove(object: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut here = object;
    for element in parents {
        let next = if let Some(name) = element.strip_prefix("f:") {
            here.get_mut(name)
        } else if let Some(key) = element.strip_prefix("k:") {
            let Ok(key) = serde_json::from_str::<Map<String, Value>>(key) else {
                return;
            };
            here.as_array_mut().and_then(|items| {
                items
                    .iter_mut()
                    .find(|item| key.iter().all(|(k, v)| item.get(k) == Some(v)))
            })
        } else {
            None
        };
        match next {
            Some(next) => here = next,
            None => return,
        }
    }
    if let Some(name) = last.strip_prefix("f:") {
        if let Some(map) = here.as_object_mut() {
            map.remove(name);
        }
    } else if let Some(key) = last.strip_prefix("k:") {
        if let (Ok(key), Some(items)) = (
            serde_json::from_str::<Map<String, Value>>(key),
            here.as_array_mut(),
        ) {
            items.retain(|item| !key.iter().all(|(k, v)| item.get(k) == Some(v)));
        }
    } else if let Some(value) = last.strip_prefix("v:") {
        if let (Ok(value), Some(items)) =
            (serde_json::from_str::<Value>(value), here.as_array_mut())
        {
            items.retain(|item| *item != value);
        }
    }
}

/// FieldsV1 JSON of a set: nested `f:`/`k:`/`v:` keys, `.` marking an item itself.
pub fn to_fields_v1(fields: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in fields {
        let mut node = &mut root;
        for element in path {
            node = node
                .entry(element.clone())
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("a node");
        }
        if path.last().is_some_and(|e| e.starts_with("k:")) {
            node.insert(".".into(), json!({}));
        }
    }
    Value::Object(root)
}

fn from_node(node: &Map<String, Value>, path: &mut Path, out: &mut FieldSet) {
    if (node.is_empty() || node.contains_key(".")) && !path.is_empty() {
        out.insert(path.clone());
    }
    for (key, child) in node {
        if key == "." {
            continue;
        }
        path.push(key.clone());
        from_node(child.as_object().unwrap_or(&Map::new()), path, out);
        path.pop();
    }
}

/// The entries of an object's `metadata.managedFields`.
pub fn entries(object: &Value) -> Vec<Entry> {
    let text = |e: &Value, k: &str| {
        e.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|e| {
            let mut fields = FieldSet::new();
            if let Some(node) = e.get("fieldsV1").and_then(Value::as_object) {
                from_node(node, &mut Vec::new(), &mut fields);
            }
            Entry {
                manager: text(e, "manager"),
                operation: text(e, "operation"),
                api_version: text(e, "apiVersion"),
                time: text(e, "time"),
                subresource: e
                    .get("subresource")
                    .and_then(Value::as_str)
                    .map(String::from),
                fields,
            }
        })
        .collect()
}

fn set_entries(object: &mut Value, entries: &[Entry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": to_fields_v1(&e.fields),
            });
            if let Some(sub) = &e.subresource {
                v["subresource"] = json!(sub);
            }
            v
        })
        .collect();
    let meta = object::meta_mut(object);
    if list.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert("managedFields".into(), Value::Array(list));
    }
}

fn entry_of<'a>(
    entries: &'a mut Vec<Entry>,
    manager: &str,
    operation: &str,
    api_version: &str,
    subresource: Option<&str>,
) -> &'a mut Entry {
    let found = entries.iter().position(|e| {
        e.manager == manager && e.operation == operation && e.subresource.as_deref() == subresource
    });
    let index = match found {
        Some(i) => i,
        None => {
            entries.push(Entry {
                manager: manager.to_string(),
                operation: operation.to_string(),
                api_version: api_version.to_string(),
                time: String::new(),
                subresource: subresource.map(String::from),
                fields: FieldSet::new(),
            });
            entries.len() - 1
        }
    };
    let entry = &mut entries[index];
    entry.time = object::now();
    entry.api_version = api_version.to_string();
    entry
}

/// The fields whose values differ between two objects (added, changed or removed).
fn changed(old: &Value, new: &Value) -> (FieldSet, FieldSet) {
    let (before, after) = (fields_of(old), fields_of(new));
    let set_or_changed = after
        .iter()
        .filter(|p| !before.contains(*p) || at(old, p) != at(new, p))
        .cloned()
        .collect();
    let removed = before.difference(&after).cloned().collect();
    (set_or_changed, removed)
}

/// Records a create or an update by `manager`: it owns what it set or changed; others
/// lose those fields.
pub fn record_update(
    resource: &Resource,
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    subresource: Option<&str>,
) {
    let mut list = old.map(entries).unwrap_or_default();
    let empty = json!({});
    let (set, removed) = changed(old.unwrap_or(&empty), new);
    if set.is_empty() && removed.is_empty() && old.is_some() {
        set_entries(new, &list);
        return;
    }
    for entry in list.iter_mut() {
        entry
            .fields
            .retain(|p| !set.contains(p) && !removed.contains(p));
    }
    let entry = entry_of(
        &mut list,
        manager,
        "Update",
        &resource.api_version(),
        subresource,
    );
    entry.fields.extend(set);
    set_entries(new, &list);
}

/// Field paths as kube prints them in conflicts: `.spec.replicas`,
/// `.spec.containers[name="nginx"].image`.
fn printed(path: &Path) -> String {
    let mut out = String::new();
    for element in path {
        if let Some(name) = element.strip_prefix("f:") {
            out.push('.');
            out.push_str(name);
        } else if let Some(key) = element.strip_prefix("k:") {
            let key: Map<String, Value> = serde_json::from_str(key).unwrap_or_default();
            let inner: Vec<String> = key.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str(&format!("[{}]", inner.join(",")));
        } else if let Some(value) = element.strip_prefix("v:") {
            out.push_str(&format!("[{value}]"));
        }
    }
    out
}

/// A server-side apply of `config` by `manager` onto `live`.
pub fn apply(
    resource: &Resource,
    live: &Value,
    config: &Value,
    manager: &str,
    force: bool,
) -> ApiResult<Value> {
    let mut list = entries(live);
    let applied = fields_of(config);
    // Fields another manager owns whose value this apply would change.
    let mut conflicts: Vec<(String, String, Path)> = Vec::new();
    for entry in list
        .iter()
        .filter(|e| !(e.manager == manager && e.operation == "Apply"))
    {
        for path in applied.intersection(&entry.fields) {
            // An item of a keyed list is shared; only its fields' values conflict.
            let item = path.last().is_some_and(|e| e.starts_with("k:"));
            if !item && at(config, path) != at(live, path) {
                let who = if entry.operation == "Update" {
                    format!(
                        "conflict with \"{}\" using {}",
                        entry.manager, entry.api_version
                    )
                } else {
                    format!("conflict with \"{}\"", entry.manager)
                };
                conflicts.push((who, entry.manager.clone(), path.clone()));
            }
        }
    }
    if !conflicts.is_empty() && !force {
        let causes: Vec<Cause> = conflicts
            .iter()
            .map(|(who, _, path)| Cause {
                reason: "FieldManagerConflict",
                field: printed(path),
                message: who.clone(),
            })
            .collect();
        let listed: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.message, c.field))
            .collect();
        let mut error = ApiError::new(
            409,
            "Conflict",
            format!(
                "Apply failed with {} conflict{}: {}",
                causes.len(),
                if causes.len() == 1 { "" } else { "s" },
                listed.join("\n")
            ),
        );
        error.details = Some(Box::new(Details {
            name: object::meta_str(live, "name")
                .unwrap_or_default()
                .to_string(),
            group: resource.group.to_string(),
            kind: resource.plural.to_string(),
            causes,
        }));
        return Err(error);
    }
    // Forced: the fields move to this manager.
    for (_, other, path) in &conflicts {
        for entry in list.iter_mut().filter(|e| e.manager == *other) {
            entry.fields.remove(path);
        }
    }
    let previous = list
        .iter()
        .find(|e| e.manager == manager && e.operation == "Apply")
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let mut merged = live.clone();
    // What this manager applied before and applies no more goes, unless someone else owns it.
    for path in previous.difference(&applied) {
        let owned_elsewhere = list
            .iter()
            .any(|e| !(e.manager == manager && e.operation == "Apply") && e.fields.contains(path));
        if !owned_elsewhere {
            remove(&mut merged, path);
        }
    }
    let mut config = config.clone();
    if let Some(meta) = config.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
        meta.remove("resourceVersion");
    }
    strategic::merge(&mut merged, &config).map_err(|e| ApiError::new(422, "Invalid", e))?;
    let entry = entry_of(&mut list, manager, "Apply", &resource.api_version(), None);
    entry.fields = applied;
    set_entries(&mut merged, &list);
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The entries as a map from manager to field paths.
    fn owners(object: &Value) -> std::collections::BTreeMap<String, Vec<String>> {
        entries(object)
            .into_iter()
            .map(|e| {
                (
                    format!("{}/{}", e.manager, e.operation),
                    e.fields.iter().map(printed).collect(),
                )
            })
            .collect()
    }
    use crate::resources::find;

    fn deployment(replicas: i64, image: &str) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"replicas": replicas,
                     "template": {"spec": {"containers": [{"name": "nginx", "image": image}]}}},
        })
    }

    #[test]
    fn fields_v1_round_trips() {
        let fields = fields_of(&deployment(2, "nginx"));
        let v1 = to_fields_v1(&fields);
        assert_eq!(
            v1["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"nginx\"}"],
            json!({".": {}, "f:image": {}, "f:name": {}})
        );
        let object = json!({"metadata": {"managedFields": [{"manager": "m", "operation": "Apply", "fieldsV1": v1}]}});
        assert_eq!(entries(&object)[0].fields, fields);
    }

    #[test]
    fn apply_conflicts_with_another_managers_field_unless_forced() {
        let deploy = find("apps", "v1", "deployments").unwrap();
        let mut live = deployment(2, "nginx:1");
        record_update(deploy, None, &mut live, "kubectl-client-side-apply", None);

        // Same values: no conflict, shared ownership.
        let same = apply(deploy, &live, &deployment(2, "nginx:1"), "kubectl", false).unwrap();
        assert_eq!(same["spec"]["replicas"], 2);

        let error = apply(deploy, &same, &deployment(3, "nginx:1"), "kubectl", false).unwrap_err();
        assert_eq!(error.code, 409);
        assert_eq!(error.causes()[0].field, ".spec.replicas");
        assert_eq!(
            error.causes()[0].message,
            "conflict with \"kubectl-client-side-apply\" using apps/v1"
        );
        assert!(
            error.message.starts_with("Apply failed with 1 conflict: "),
            "{}",
            error.message
        );

        let forced = apply(deploy, &same, &deployment(3, "nginx:1"), "kubectl", true).unwrap();
        assert_eq!(forced["spec"]["replicas"], 3);
        let owners = owners(&forced);
        assert!(owners["kubectl/Apply"].contains(&".spec.replicas".to_string()));
        assert!(!owners["kubectl-client-side-apply/Update"].contains(&".spec.replicas".to_string()));
    }

    #[test]
    fn fields_an_applier_drops_are_removed_unless_someone_else_owns_them() {
        let deploy = find("apps", "v1", "deployments").unwrap();
        let mut config = deployment(2, "nginx:1");
        config["metadata"]["labels"]["tier"] = json!("front");
        let live = apply(
            deploy,
            &json!({"metadata": {"name": "web"}}),
            &config,
            "a",
            false,
        )
        .unwrap();
        assert_eq!(live["metadata"]["labels"]["tier"], "front");
        let dropped = apply(deploy, &live, &deployment(2, "nginx:1"), "a", false).unwrap();
        assert!(
            dropped["metadata"]["labels"].get("tier").is_none(),
            "{dropped}"
        );

        let mut labelled = live.clone();
        labelled["metadata"]["labels"]["tier"] = json!("back");
        record_update(deploy, Some(&live), &mut labelled, "kubectl-label", None);
        let kept = apply(deploy, &labelled, &deployment(2, "nginx:1"), "a", false).unwrap();
        assert_eq!(kept["metadata"]["labels"]["tier"], "back");
    }
}
