//! The roles and bindings kube-apiserver creates at start (its bootstrap policy, in part),
//! reconciled the way it does: what is missing is created, and a role or binding that
//! allows auto-update gets back rules or subjects it lost; nothing else is touched.

use serde_json::{json, Value};

use super::rbac::Rule;
use crate::object;
use crate::resources::{self, Resource};
use crate::status::ApiResult;
use crate::storage::{Outcome, Storage};

const AUTOUPDATE: &str = "rbac.authorization.kubernetes.io/autoupdate";
const AGGREGATE_TO: &str = "rbac.authorization.k8s.io/aggregate-to-";

fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> Value {
    json!({ "verbs": verbs, "apiGroups": groups, "resources": resources })
}

fn urls(verbs: &[&str], paths: &[&str]) -> Value {
    json!({ "verbs": verbs, "nonResourceURLs": paths })
}

fn cluster_role(
    name: &str,
    labels: Value,
    rules: Vec<Value>,
    aggregate_from: Option<&str>,
) -> Value {
    let mut labels = labels;
    labels["kubernetes.io/bootstrapping"] = json!("rbac-defaults");
    let mut role = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": { "name": name, "labels": labels, "annotations": { AUTOUPDATE: "true" } },
        "rules": rules,
    });
    if let Some(to) = aggregate_from {
        role["aggregationRule"] = json!({
            "clusterRoleSelectors": [{ "matchLabels": { format!("{AGGREGATE_TO}{to}"): "true" } }]
        });
    }
    role
}

fn binding(name: &str, role: &str, groups: &[&str]) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": { "name": name, "labels": { "kubernetes.io/bootstrapping": "rbac-defaults" },
                      "annotations": { AUTOUPDATE: "true" } },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role },
        "subjects": groups.iter().map(|g| json!({
            "apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": g,
        })).collect::<Vec<_>>(),
    })
}

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];

/// The cluster roles.
pub fn cluster_roles() -> Vec<Value> {
    let core_read = [
        "configmaps",
        "endpoints",
        "persistentvolumeclaims",
        "persistentvolumeclaims/status",
        "pods",
        "pods/log",
        "pods/status",
        "services",
        "services/status",
        "serviceaccounts",
        "limitranges",
        "resourcequotas",
        "resourcequotas/status",
        "events",
        "namespaces",
        "namespaces/status",
    ];
    let apps = [
        "deployments",
        "deployments/scale",
        "deployments/status",
        "replicasets",
        "replicasets/scale",
        "replicasets/status",
        "statefulsets",
        "statefulsets/scale",
        "statefulsets/status",
        "daemonsets",
        "daemonsets/status",
    ];
    let batch = ["jobs", "jobs/status", "cronjobs", "cronjobs/status"];
    let core_write = [
        "configmaps",
        "endpoints",
        "persistentvolumeclaims",
        "pods",
        "services",
        "serviceaccounts",
        "secrets",
        "events",
    ];
    vec![
        cluster_role(
            "cluster-admin",
            json!({}),
            vec![rule(&["*"], &["*"], &["*"]), urls(&["*"], &["*"])],
            None,
        ),
        cluster_role("admin", json!({}), vec![], Some("admin")),
        cluster_role(
            "edit",
            json!({ format!("{AGGREGATE_TO}admin"): "true" }),
            vec![],
            Some("edit"),
        ),
        cluster_role(
            "view",
            json!({ format!("{AGGREGATE_TO}edit"): "true" }),
            vec![],
            Some("view"),
        ),
        cluster_role(
            "system:aggregate-to-view",
            json!({ format!("{AGGREGATE_TO}view"): "true" }),
            vec![
                rule(READ, &[""], &core_read),
                rule(READ, &["apps"], &apps),
                rule(READ, &["batch"], &batch),
                rule(READ, &["coordination.k8s.io"], &["leases"]),
                rule(READ, &["events.k8s.io"], &["events"]),
            ],
            None,
        ),
        cluster_role(
            "system:aggregate-to-edit",
            json!({ format!("{AGGREGATE_TO}edit"): "true" }),
            vec![
                rule(READ, &[""], &["secrets"]),
                rule(WRITE, &[""], &core_write),
                rule(&["impersonate"], &[""], &["serviceaccounts"]),
                rule(WRITE, &["apps"], &apps),
                rule(WRITE, &["batch"], &batch),
                rule(WRITE, &["coordination.k8s.io"], &["leases"]),
            ],
            None,
        ),
        cluster_role(
            "system:aggregate-to-admin",
            json!({ format!("{AGGREGATE_TO}admin"): "true" }),
            vec![
                rule(
                    resources::VERBS,
                    &["rbac.authorization.k8s.io"],
                    &["roles", "rolebindings"],
                ),
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["localsubjectaccessreviews"],
                ),
            ],
            None,
        ),
        cluster_role(
            "system:basic-user",
            json!({}),
            vec![
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ),
                rule(
                    &["create"],
                    &["authentication.k8s.io"],
                    &["selfsubjectreviews"],
                ),
            ],
            None,
        ),
        cluster_role(
            "system:discovery",
            json!({}),
            vec![urls(
                &["get"],
                &[
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/openapi",
                    "/openapi/*",
                    "/readyz",
                    "/version",
                    "/version/",
                ],
            )],
            None,
        ),
        cluster_role(
            "system:public-info-viewer",
            json!({}),
            vec![urls(
                &["get"],
                &["/healthz", "/livez", "/readyz", "/version", "/version/"],
            )],
            None,
        ),
    ]
}

/// The cluster role bindings.
pub fn cluster_role_bindings() -> Vec<Value> {
    vec![
        binding("cluster-admin", "cluster-admin", &["system:masters"]),
        binding(
            "system:basic-user",
            "system:basic-user",
            &["system:authenticated"],
        ),
        binding(
            "system:discovery",
            "system:discovery",
            &["system:authenticated"],
        ),
        binding(
            "system:public-info-viewer",
            "system:public-info-viewer",
            &["system:authenticated", "system:unauthenticated"],
        ),
    ]
}

fn missing_from(current: &[Value], wanted: &[Value]) -> Vec<Value> {
    wanted
        .iter()
        .filter(|w| !current.contains(w))
        .cloned()
        .collect()
}

async fn reconcile_one(
    storage: &Storage,
    resource: &'static Resource,
    wanted: Value,
    field: &str,
) -> ApiResult<()> {
    let name = object::meta_str(&wanted, "name")
        .unwrap_or_default()
        .to_string();
    let key = storage.key(resource, None, &name);
    let Some(stored) = storage.get(resource, &key).await? else {
        let mut object = wanted;
        object::stamp_new(resource, &mut object);
        storage.create(resource, &key, &object, 0).await?;
        return Ok(());
    };
    let mut current = stored.object;
    if current.pointer(&format!(
        "/metadata/annotations/{}",
        AUTOUPDATE.replace('/', "~1")
    )) == Some(&json!("false"))
    {
        return Ok(());
    }
    // Aggregated roles' rules belong to the aggregation controller.
    if current.get("aggregationRule").is_some() {
        return Ok(());
    }
    let have: Vec<Value> = current
        .get(field)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let want: Vec<Value> = wanted
        .get(field)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let normalize = |values: &[Value]| -> Vec<Value> {
        if field == "rules" {
            values
                .iter()
                .map(|r| Rule::from_json(r).to_json())
                .collect()
        } else {
            values.to_vec()
        }
    };
    let missing = missing_from(&normalize(&have), &normalize(&want));
    if missing.is_empty() {
        return Ok(());
    }
    let mut merged = have;
    merged.extend(missing);
    current[field] = json!(merged);
    match storage
        .update(resource, &key, stored.revision, &current)
        .await?
    {
        Outcome::Written(_) => tracing::info!(name, "reconciled bootstrap RBAC"),
        _ => tracing::warn!(name, "bootstrap RBAC changed meanwhile; left as found"),
    }
    Ok(())
}

/// Creates or repairs the bootstrap roles and bindings.
pub async fn reconcile(storage: &Storage) -> ApiResult<()> {
    let roles = resources::find("rbac.authorization.k8s.io", "v1", "clusterroles").expect("served");
    let bindings =
        resources::find("rbac.authorization.k8s.io", "v1", "clusterrolebindings").expect("served");
    for role in cluster_roles() {
        reconcile_one(storage, roles, role, "rules").await?;
    }
    for binding in cluster_role_bindings() {
        reconcile_one(storage, bindings, binding, "subjects").await?;
    }
    Ok(())
}
