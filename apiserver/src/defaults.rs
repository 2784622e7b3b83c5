//! Defaulting: the fields kube-apiserver fills in on create when the client left them out
//! (the kinds' `SetDefaults_*` and registry strategies), kept to what clients read back.

use base64::Engine as _;
use serde_json::{json, Value};

use crate::resources::Resource;

fn set_if_missing(object: &mut Value, pointer: &str, value: Value) {
    if object.pointer(pointer).is_some() {
        return;
    }
    let mut parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    let last = parts.pop().expect("a pointer has a field");
    let mut at = object;
    for part in parts {
        if !at.get(part).is_some_and(Value::is_object) {
            at[part] = json!({});
        }
        at = &mut at[part];
    }
    at[last] = value;
}

fn pod_spec(spec: &mut Value) {
    set_if_missing(spec, "/restartPolicy", json!("Always"));
    set_if_missing(spec, "/dnsPolicy", json!("ClusterFirst"));
    set_if_missing(spec, "/schedulerName", json!("default-scheduler"));
    set_if_missing(spec, "/terminationGracePeriodSeconds", json!(30));
    set_if_missing(spec, "/securityContext", json!({}));
    for list in ["containers", "initContainers"] {
        if let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for c in containers {
                let image = c.get("image").and_then(Value::as_str).unwrap_or("");
                let latest = image.ends_with(":latest")
                    || !image.rsplit('/').next().unwrap_or("").contains(':');
                let policy = if latest && !image.contains('@') {
                    "Always"
                } else {
                    "IfNotPresent"
                };
                set_if_missing(c, "/imagePullPolicy", json!(policy));
                set_if_missing(c, "/terminationMessagePath", json!("/dev/termination-log"));
                set_if_missing(c, "/terminationMessagePolicy", json!("File"));
                set_if_missing(c, "/resources", json!({}));
                if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
                    for p in ports {
                        set_if_missing(p, "/protocol", json!("TCP"));
                    }
                }
            }
        }
    }
}

fn job_spec(spec: Option<&mut Value>) {
    let Some(spec) = spec else { return };
    set_if_missing(spec, "/completions", json!(1));
    set_if_missing(spec, "/parallelism", json!(1));
    set_if_missing(spec, "/backoffLimit", json!(6));
    set_if_missing(spec, "/completionMode", json!("NonIndexed"));
    set_if_missing(spec, "/suspend", json!(false));
    if let Some(pod) = spec.pointer_mut("/template/spec") {
        pod_spec(pod);
    }
}

fn template(object: &mut Value) {
    if let Some(spec) = object.pointer_mut("/spec/template/spec") {
        pod_spec(spec);
    }
}

/// A cluster IP from 10.96.0.0/12 (kube's default service range), past the first ten.
fn cluster_ip() -> String {
    let n = fastrand::u32(10..(1 << 20) - 1);
    format!("10.{}.{}.{}", 96 + (n >> 16), (n >> 8) & 0xff, n & 0xff)
}

/// Fills a new object's defaults.
pub fn on_create(resource: &Resource, object: &mut Value) {
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    match (resource.group, resource.plural) {
        ("", "namespaces") => {
            set_if_missing(object, "/spec/finalizers", json!(["kubernetes"]));
            object["status"] = json!({ "phase": "Active" });
            set_if_missing(object, "/metadata/labels", json!({}));
            if let Some(labels) = object
                .pointer_mut("/metadata/labels")
                .and_then(Value::as_object_mut)
            {
                labels.insert("kubernetes.io/metadata.name".into(), json!(name));
            }
        }
        ("", "pods") => {
            if let Some(spec) = object.get_mut("spec") {
                pod_spec(spec);
            }
            object["status"] = json!({ "phase": "Pending", "qosClass": "BestEffort" });
        }
        ("", "services") => {
            set_if_missing(object, "/spec/type", json!("ClusterIP"));
            set_if_missing(object, "/spec/sessionAffinity", json!("None"));
            let kind = object
                .pointer("/spec/type")
                .and_then(Value::as_str)
                .unwrap_or("");
            if kind != "ExternalName" {
                let ip = match object.pointer("/spec/clusterIP").and_then(Value::as_str) {
                    Some(ip) if !ip.is_empty() => ip.to_string(),
                    _ => cluster_ip(),
                };
                object["spec"]["clusterIP"] = json!(ip);
                object["spec"]["clusterIPs"] = json!([ip]);
                set_if_missing(object, "/spec/ipFamilies", json!(["IPv4"]));
                set_if_missing(object, "/spec/ipFamilyPolicy", json!("SingleStack"));
                set_if_missing(object, "/spec/internalTrafficPolicy", json!("Cluster"));
            }
            if let Some(ports) = object
                .pointer_mut("/spec/ports")
                .and_then(Value::as_array_mut)
            {
                for p in ports {
                    set_if_missing(p, "/protocol", json!("TCP"));
                    if let Some(port) = p.get("port").cloned() {
                        set_if_missing(p, "/targetPort", port);
                    }
                }
            }
            object["status"] = json!({ "loadBalancer": {} });
        }
        ("", "secrets") => {
            set_if_missing(object, "/type", json!("Opaque"));
            fold_string_data(object);
        }
        ("apps", "deployments") => {
            set_if_missing(object, "/spec/replicas", json!(1));
            set_if_missing(object, "/spec/strategy/type", json!("RollingUpdate"));
            if object.pointer("/spec/strategy/type") == Some(&json!("RollingUpdate")) {
                set_if_missing(
                    object,
                    "/spec/strategy/rollingUpdate/maxUnavailable",
                    json!("25%"),
                );
                set_if_missing(
                    object,
                    "/spec/strategy/rollingUpdate/maxSurge",
                    json!("25%"),
                );
            }
            set_if_missing(object, "/spec/revisionHistoryLimit", json!(10));
            set_if_missing(object, "/spec/progressDeadlineSeconds", json!(600));
            template(object);
            object["status"] = json!({});
        }
        ("apps", "replicasets" | "statefulsets") => {
            set_if_missing(object, "/spec/replicas", json!(1));
            template(object);
            object["status"] = json!({ "replicas": 0 });
        }
        ("apps", "daemonsets") => {
            template(object);
            object["status"] = json!({});
        }
        ("batch", "jobs") => {
            job_spec(object.get_mut("spec"));
            object["status"] = json!({});
        }
        ("batch", "cronjobs") => {
            set_if_missing(object, "/spec/concurrencyPolicy", json!("Allow"));
            set_if_missing(object, "/spec/suspend", json!(false));
            set_if_missing(object, "/spec/successfulJobsHistoryLimit", json!(3));
            set_if_missing(object, "/spec/failedJobsHistoryLimit", json!(1));
            job_spec(object.pointer_mut("/spec/jobTemplate/spec"));
            object["status"] = json!({});
        }
        _ => {}
    }
}

/// A Secret's stringData is write-only: kube folds it into data (base64).
fn fold_string_data(secret: &mut Value) {
    if let Some(Value::Object(strings)) =
        secret.as_object_mut().and_then(|o| o.remove("stringData"))
    {
        for (k, v) in strings {
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(v.as_str().unwrap_or_default());
            set_if_missing(secret, "/data", json!({}));
            secret["data"][k] = json!(encoded);
        }
    }
}

/// What updates fill: a Secret's stringData folded into data.
pub fn on_update(resource: &Resource, object: &mut Value) {
    if resource.plural == "secrets" && resource.group.is_empty() {
        fold_string_data(object);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::find;

    #[test]
    fn namespaces_and_services_get_kube_defaults() {
        let mut ns = json!({"metadata": {"name": "team"}});
        on_create(find("", "v1", "namespaces").unwrap(), &mut ns);
        assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
        assert_eq!(ns["status"]["phase"], "Active");
        assert_eq!(
            ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
            "team"
        );

        let mut svc = json!({"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}});
        on_create(find("", "v1", "services").unwrap(), &mut svc);
        assert_eq!(svc["spec"]["type"], "ClusterIP");
        assert!(svc["spec"]["clusterIP"]
            .as_str()
            .unwrap()
            .starts_with("10."));
        assert_eq!(svc["spec"]["ports"][0]["targetPort"], 80);

        let mut secret = json!({"metadata": {"name": "s"}, "stringData": {"k": "v"}});
        on_create(find("", "v1", "secrets").unwrap(), &mut secret);
        assert_eq!(secret["data"]["k"], "dg==");
        assert!(secret.get("stringData").is_none());
    }
}
