//! ServiceAccount: a pod runs as a service account (`default` when it names none), which
//! must exist; unless automounting is off (on the pod or the account), the pod gets the
//! projected token volume kube mounts at /var/run/secrets/kubernetes.io/serviceaccount
//! (a bound token, the cluster's CA and the namespace).

use serde_json::{json, Value};

use super::Context;
use crate::object::{meta_str, name_suffix};
use crate::resources::{self, Resource};
use crate::status::{ApiError, ApiResult};

/// Where the token volume is mounted.
pub const MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The ConfigMap holding the cluster's CA in every namespace.
pub const ROOT_CA_CONFIGMAP: &str = "kube-root-ca.crt";
/// The lifetime kube asks for the projected token (an hour and seven seconds).
const TOKEN_SECONDS: i64 = 3607;

/// Sets and checks the pod's service account, and mounts its token.
pub async fn admit(
    cx: Context<'_>,
    resource: &Resource,
    namespace: Option<&str>,
    pod: &mut Value,
) -> ApiResult<()> {
    let Some(ns) = namespace.filter(|_| resource.group.is_empty() && resource.plural == "pods")
    else {
        return Ok(());
    };
    let account = pod
        .pointer("/spec/serviceAccountName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or("default")
        .to_string();
    if !pod.get("spec").is_some_and(Value::is_object) {
        return Ok(());
    }
    pod["spec"]["serviceAccountName"] = json!(account);
    pod["spec"]["serviceAccount"] = json!(account);
    let accounts = resources::find("", "v1", "serviceaccounts").expect("served");
    let found = match cx.caches.of(accounts).get(&format!("{ns}/{account}")) {
        Some(found) => Some(found),
        None => cx
            .storage
            .get(accounts, &cx.storage.key(accounts, Some(ns), &account))
            .await?
            .map(|s| s.object),
    };
    let Some(found) = found else {
        return Err(ApiError::new(
            403,
            "Forbidden",
            format!(
                "pods {:?} is forbidden: error looking up service account {ns}/{account}: serviceaccount {account:?} not found",
                meta_str(pod, "name").unwrap_or_default()
            ),
        ));
    };
    let automount = pod
        .pointer("/spec/automountServiceAccountToken")
        .or(found.get("automountServiceAccountToken"))
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let mounted = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| {
            c.get("volumeMounts")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|m| m["mountPath"] == MOUNT_PATH)
        });
    if !automount || mounted {
        return Ok(());
    }
    let volume = format!("kube-api-access-{}", name_suffix());
    let volumes = pod["spec"]
        .as_object_mut()
        .expect("an object")
        .entry("volumes")
        .or_insert(json!([]));
    if let Some(volumes) = volumes.as_array_mut() {
        volumes.push(json!({
            "name": volume,
            "projected": {
                "defaultMode": 420,
                "sources": [
                    { "serviceAccountToken": { "expirationSeconds": TOKEN_SECONDS, "path": "token" } },
                    { "configMap": { "name": ROOT_CA_CONFIGMAP, "items": [{ "key": "ca.crt", "path": "ca.crt" }] } },
                    { "downwardAPI": { "items": [{ "path": "namespace", "fieldRef": { "apiVersion": "v1", "fieldPath": "metadata.namespace" } }] } },
                ],
            },
        }));
    }
    for list in ["containers", "initContainers"] {
        for container in pod["spec"]
            .get_mut(list)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let mounts = container
                .as_object_mut()
                .expect("an object")
                .entry("volumeMounts")
                .or_insert(json!([]));
            if let Some(mounts) = mounts.as_array_mut() {
                mounts.push(json!({ "name": volume, "mountPath": MOUNT_PATH, "readOnly": true }));
            }
        }
    }
    Ok(())
}
