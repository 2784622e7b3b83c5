//! Strategic merge patch (k8s.io/apimachinery's strategicpatch): maps merge key by key,
//! `null` deletes, lists of objects with a merge key merge item by item, other lists are
//! replaced, and the directives `$patch`, `$retainKeys`, `$setElementOrder/<list>` and
//! `$deleteFromPrimitiveList/<list>` do what kube's do. Merge keys come from the
//! `patchMergeKey` tags of kube's types, by field name (and its parent where one name has
//! two keys).

use serde_json::{Map, Value};

/// Lists merged item by item, with their merge key: (field, parent field or "", key).
const MERGE_KEYS: &[(&str, &str, &str)] = &[
    ("containers", "", "name"),
    ("initContainers", "", "name"),
    ("ephemeralContainers", "", "name"),
    ("volumes", "", "name"),
    ("env", "", "name"),
    ("volumeMounts", "", "mountPath"),
    ("volumeDevices", "", "devicePath"),
    ("imagePullSecrets", "", "name"),
    ("hostAliases", "", "ip"),
    ("conditions", "", "type"),
    ("ownerReferences", "", "uid"),
    ("topologySpreadConstraints", "", "topologyKey"),
    ("resourceClaims", "", "name"),
    ("schedulingGates", "", "name"),
    ("ports", "spec", "port"),
    ("ports", "", "containerPort"),
    ("secrets", "", "name"),
    ("podIPs", "", "ip"),
    ("addresses", "status", "type"),
];

/// Lists of scalars merged as sets.
const SET_LISTS: &[&str] = &["finalizers"];

/// True for a list of scalars merged as a set.
pub(crate) fn is_set_list(field: &str) -> bool {
    SET_LISTS.contains(&field)
}

/// The merge key of the list `field` inside `parent`, if its items merge by key.
pub(crate) fn merge_key(field: &str, parent: &str) -> Option<&'static str> {
    MERGE_KEYS
        .iter()
        .find(|(f, p, _)| *f == field && (p.is_empty() || *p == parent))
        .map(|(_, _, k)| *k)
}

/// Merges `patch` into `target`.
pub fn merge(target: &mut Value, patch: &Value) -> Result<(), String> {
    merge_value(target, patch, "")
}

/// Merges into the value of `field` (the parent of the keys inside it).
fn merge_value(target: &mut Value, patch: &Value, field: &str) -> Result<(), String> {
    match patch {
        Value::Object(p) => {
            if p.get("$patch").and_then(Value::as_str) == Some("replace") {
                let mut replaced = p.clone();
                replaced.remove("$patch");
                *target = Value::Object(replaced);
                return Ok(());
            }
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            merge_map(target.as_object_mut().expect("an object"), p, field)
        }
        _ => {
            *target = patch.clone();
            Ok(())
        }
    }
}

fn merge_map(
    target: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    this: &str,
) -> Result<(), String> {
    if let Some(directive) = patch.get("$patch").and_then(Value::as_str) {
        if directive != "merge" && directive != "delete" {
            return Err(format!("unknown patch type: {directive}"));
        }
    }
    let retain: Option<Vec<String>> =
        patch
            .get("$retainKeys")
            .and_then(Value::as_array)
            .map(|keys| {
                keys.iter()
                    .filter_map(|k| k.as_str().map(String::from))
                    .collect()
            });
    for (key, value) in patch {
        if key == "$patch" || key == "$retainKeys" {
            continue;
        }
        if let Some(list) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(items)), Some(remove)) =
                (target.get_mut(list), value.as_array())
            {
                items.retain(|i| !remove.contains(i));
            }
            continue;
        }
        if key.starts_with("$setElementOrder/") {
            continue;
        }
        if value.is_null() {
            target.remove(key);
            continue;
        }
        match value {
            Value::Array(items) => {
                let merged = merge_list(target.remove(key), items, key, this)?;
                target.insert(key.clone(), merged);
            }
            Value::Object(p) if p.get("$patch").and_then(Value::as_str) == Some("delete") => {
                target.remove(key);
            }
            _ => {
                let slot = target.entry(key.clone()).or_insert(Value::Null);
                merge_value(slot, value, key)?;
            }
        }
    }
    for (key, order) in patch {
        if let Some(list) = key.strip_prefix("$setElementOrder/") {
            if let (Some(Value::Array(items)), Some(order)) =
                (target.get_mut(list), order.as_array())
            {
                reorder(items, order, merge_key(list, this));
            }
        }
    }
    if let Some(retain) = retain {
        target.retain(|k, _| retain.contains(k));
    }
    Ok(())
}

fn same_item(a: &Value, b: &Value, key: &str) -> bool {
    a.get(key).is_some() && a.get(key) == b.get(key)
}

fn merge_list(
    target: Option<Value>,
    patch: &[Value],
    field: &str,
    parent: &str,
) -> Result<Value, String> {
    let mut current = match target {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    };
    if patch
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        return Ok(Value::Array(
            patch
                .iter()
                .filter(|i| i.get("$patch").is_none())
                .cloned()
                .collect(),
        ));
    }
    if SET_LISTS.contains(&field) {
        for item in patch {
            if !current.contains(item) {
                current.push(item.clone());
            }
        }
        return Ok(Value::Array(current));
    }
    let Some(key) = merge_key(field, parent) else {
        return Ok(Value::Array(patch.to_vec()));
    };
    for item in patch {
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match current.iter_mut().position(|c| same_item(c, item, key)) {
            Some(i) if delete => {
                current.remove(i);
            }
            Some(i) => merge_value(&mut current[i], item, field)?,
            None if delete => {}
            None => {
                let mut added = Value::Null;
                merge_value(&mut added, item, field)?;
                current.push(added);
            }
        }
    }
    Ok(Value::Array(current))
}

/// Puts the listed items first, in the listed order; others keep their order after them.
fn reorder(items: &mut Vec<Value>, order: &[Value], key: Option<&str>) {
    let position = |item: &Value| {
        order.iter().position(|o| match key {
            Some(k) => same_item(item, o, k),
            None => item == o,
        })
    };
    let mut keyed: Vec<(usize, Value)> = items
        .drain(..)
        .enumerate()
        .map(|(i, item)| (position(&item).unwrap_or(order.len() + i), item))
        .collect();
    keyed.sort_by_key(|(p, _)| *p);
    items.extend(keyed.into_iter().map(|(_, item)| item));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn merged(target: Value, patch: Value) -> Value {
        let mut t = target;
        merge(&mut t, &patch).unwrap();
        t
    }

    #[test]
    fn containers_merge_by_name_and_other_lists_are_replaced() {
        let deploy = json!({"spec": {"template": {"spec": {
            "containers": [{"name": "a", "image": "a:1", "ports": [{"containerPort": 80}]},
                           {"name": "b", "image": "b:1"}],
            "tolerations": [{"key": "x"}]}}}});
        let out = merged(
            deploy,
            json!({"spec": {"template": {"spec": {
            "containers": [{"name": "b", "image": "b:2"}, {"name": "c", "image": "c:1"}],
            "tolerations": [{"key": "y"}]}}}}),
        );
        let spec = &out["spec"]["template"]["spec"];
        assert_eq!(spec["containers"][0]["image"], "a:1");
        assert_eq!(spec["containers"][0]["ports"][0]["containerPort"], 80);
        assert_eq!(spec["containers"][1]["image"], "b:2");
        assert_eq!(spec["containers"][2]["name"], "c");
        assert_eq!(spec["tolerations"], json!([{"key": "y"}]));
    }

    #[test]
    fn directives_delete_replace_retain_and_order() {
        let out = merged(
            json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}], "x": {"p": 1, "q": 2}},
                   "metadata": {"finalizers": ["f1"], "labels": {"k": "v", "gone": "x"}}}),
            json!({"spec": {"containers": [{"name": "a", "$patch": "delete"}],
                            "x": {"$patch": "replace", "r": 3}},
                   "metadata": {"finalizers": ["f2"], "labels": {"gone": null}}}),
        );
        assert_eq!(out["spec"]["containers"], json!([{"name": "b"}]));
        assert_eq!(out["spec"]["x"], json!({"r": 3}));
        assert_eq!(out["metadata"]["finalizers"], json!(["f1", "f2"]));
        assert_eq!(out["metadata"]["labels"], json!({"k": "v"}));

        let out = merged(
            json!({"containers": [{"name": "a"}, {"name": "b"}], "args": ["x", "y"]}),
            json!({"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
                   "$deleteFromPrimitiveList/args": ["x"]}),
        );
        assert_eq!(out["containers"], json!([{"name": "b"}, {"name": "a"}]));
        assert_eq!(out["args"], json!(["y"]));

        let out = merged(
            json!({"a": 1, "b": 2}),
            json!({"$retainKeys": ["b", "c"], "c": 3}),
        );
        assert_eq!(out, json!({"b": 2, "c": 3}));
    }

    #[test]
    fn service_ports_merge_by_port() {
        let out = merged(
            json!({"spec": {"ports": [{"port": 80, "name": "http"}, {"port": 443}]}}),
            json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}]}}),
        );
        assert_eq!(
            out["spec"]["ports"][0],
            json!({"port": 80, "name": "http", "targetPort": 8080})
        );
        assert_eq!(out["spec"]["ports"][1], json!({"port": 443}));
    }
}
