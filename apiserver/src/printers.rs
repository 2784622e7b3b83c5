//! Server-side printing: `meta.k8s.io/v1 Table` rows with the columns kubectl shows for
//! each kind (kube's `pkg/printers/internalversion/printers.go`). A column with a
//! priority above 0 shows only with `-o wide`.

use serde_json::{json, Value};
use time::OffsetDateTime;

/// How a column's cell is computed from the object.
#[derive(Debug, Clone, Copy)]
pub enum Cell {
    /// `metadata.name`.
    Name,
    /// Time since `metadata.creationTimestamp`, kube's short form (`5m3s`).
    Age,
    /// `metadata.creationTimestamp` as is.
    CreatedAt,
    /// The value at a JSON pointer, `<none>` when missing.
    Path(&'static str),
    /// The value at a JSON pointer, or the fallback.
    PathOr(&'static str, &'static str),
    /// Computed.
    Fn(fn(&Value) -> Value),
}

/// One column of a kind's table.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// The header kubectl upper-cases.
    pub name: &'static str,
    /// `string`, `integer` or `date`.
    pub kind: &'static str,
    /// 0 shows always; 1 only with `-o wide`.
    pub priority: u8,
    /// The cell.
    pub cell: Cell,
}

const fn col(name: &'static str, kind: &'static str, priority: u8, cell: Cell) -> Column {
    Column {
        name,
        kind,
        priority,
        cell,
    }
}

const NAME: Column = col("Name", "string", 0, Cell::Name);
const AGE: Column = col("Age", "string", 0, Cell::Age);

/// Kinds without a printer of their own: kube's default.
pub const CREATED_AT: &[Column] = &[NAME, col("Created At", "date", 0, Cell::CreatedAt)];
pub const NAMESPACE: &[Column] = &[
    NAME,
    col("Status", "string", 0, Cell::Path("/status/phase")),
    AGE,
];
pub const CONFIGMAP: &[Column] = &[NAME, col("Data", "integer", 0, Cell::Fn(data_count)), AGE];
pub const SECRET: &[Column] = &[
    NAME,
    col("Type", "string", 0, Cell::PathOr("/type", "Opaque")),
    col("Data", "integer", 0, Cell::Fn(data_count)),
    AGE,
];
pub const SERVICEACCOUNT: &[Column] = &[
    NAME,
    col("Secrets", "string", 0, Cell::Fn(secrets_count)),
    AGE,
];
pub const POD: &[Column] = &[
    NAME,
    col("Ready", "string", 0, Cell::Fn(pod_ready)),
    col("Status", "string", 0, Cell::Fn(pod_status)),
    col("Restarts", "string", 0, Cell::Fn(pod_restarts)),
    AGE,
    col("IP", "string", 1, Cell::Path("/status/podIP")),
    col("Node", "string", 1, Cell::Path("/spec/nodeName")),
    col(
        "Nominated Node",
        "string",
        1,
        Cell::Path("/status/nominatedNodeName"),
    ),
    col(
        "Readiness Gates",
        "string",
        1,
        Cell::Fn(|_| json!("<none>")),
    ),
];
pub const SERVICE: &[Column] = &[
    NAME,
    col("Type", "string", 0, Cell::PathOr("/spec/type", "ClusterIP")),
    col("Cluster-IP", "string", 0, Cell::Path("/spec/clusterIP")),
    col("External-IP", "string", 0, Cell::Fn(external_ips)),
    col("Port(s)", "string", 0, Cell::Fn(service_ports)),
    AGE,
    col(
        "Selector",
        "string",
        1,
        Cell::Fn(|o| json!(pairs(o.pointer("/spec/selector")))),
    ),
];
pub const ENDPOINTS: &[Column] = &[
    NAME,
    col("Endpoints", "string", 0, Cell::Fn(endpoints)),
    AGE,
];
pub const EVENT: &[Column] = &[
    col(
        "Last Seen",
        "string",
        0,
        Cell::Fn(|o| age_of(o.pointer("/lastTimestamp").or(o.pointer("/eventTime")))),
    ),
    col("Type", "string", 0, Cell::Path("/type")),
    col("Reason", "string", 0, Cell::Path("/reason")),
    col("Object", "string", 0, Cell::Fn(involved_object)),
    col("Message", "string", 0, Cell::Path("/message")),
    col("Name", "string", 1, Cell::Name),
];
pub const NODE: &[Column] = &[
    NAME,
    col("Status", "string", 0, Cell::Fn(node_status)),
    col("Roles", "string", 0, Cell::Fn(node_roles)),
    AGE,
    col(
        "Version",
        "string",
        0,
        Cell::PathOr("/status/nodeInfo/kubeletVersion", ""),
    ),
];
pub const PVC: &[Column] = &[
    NAME,
    col(
        "Status",
        "string",
        0,
        Cell::PathOr("/status/phase", "Pending"),
    ),
    col("Volume", "string", 0, Cell::PathOr("/spec/volumeName", "")),
    col(
        "Capacity",
        "string",
        0,
        Cell::PathOr("/status/capacity/storage", ""),
    ),
    col("Access Modes", "string", 0, Cell::Fn(access_modes)),
    col(
        "StorageClass",
        "string",
        0,
        Cell::Path("/spec/storageClassName"),
    ),
    col(
        "VolumeAttributesClass",
        "string",
        0,
        Cell::Path("/spec/volumeAttributesClassName"),
    ),
    AGE,
];
pub const DEPLOYMENT: &[Column] = &[
    NAME,
    col(
        "Ready",
        "string",
        0,
        Cell::Fn(|o| ratio(o, "/status/readyReplicas", "/spec/replicas")),
    ),
    col(
        "Up-to-date",
        "integer",
        0,
        Cell::Fn(|o| int(o, "/status/updatedReplicas")),
    ),
    col(
        "Available",
        "integer",
        0,
        Cell::Fn(|o| int(o, "/status/availableReplicas")),
    ),
    AGE,
    col("Containers", "string", 1, Cell::Fn(containers)),
    col("Images", "string", 1, Cell::Fn(images)),
    col(
        "Selector",
        "string",
        1,
        Cell::Fn(|o| json!(pairs(o.pointer("/spec/selector/matchLabels")))),
    ),
];
pub const REPLICASET: &[Column] = &[
    NAME,
    col(
        "Desired",
        "integer",
        0,
        Cell::Fn(|o| int(o, "/spec/replicas")),
    ),
    col(
        "Current",
        "integer",
        0,
        Cell::Fn(|o| int(o, "/status/replicas")),
    ),
    col(
        "Ready",
        "integer",
        0,
        Cell::Fn(|o| int(o, "/status/readyReplicas")),
    ),
    AGE,
    col("Containers", "string", 1, Cell::Fn(containers)),
    col("Images", "string", 1, Cell::Fn(images)),
];
pub const STATEFULSET: &[Column] = &[
    NAME,
    col(
        "Ready",
        "string",
        0,
        Cell::Fn(|o| ratio(o, "/status/readyReplicas", "/spec/replicas")),
    ),
    AGE,
    col("Containers", "string", 1, Cell::Fn(containers)),
    col("Images", "string", 1, Cell::Fn(images)),
];
pub const DAEMONSET: &[Column] = &[
    NAME,
    col(
        "Desired",
        "integer",
        0,
        Cell::Fn(|o| int(o, "/status/desiredNumberScheduled")),
    ),
    col(
        "Current",
        "integer",
        0,
        Cell::Fn(|o| int(o, "/status/currentNumberScheduled")),
    ),
    col(
        "Ready",
        "integer",
        0,
        Cell::Fn(|o| int(o, "/status/numberReady")),
    ),
    col(
        "Up-to-date",
        "integer",
        0,
        Cell::Fn(|o| int(o, "/status/updatedNumberScheduled")),
    ),
    col(
        "Available",
        "integer",
        0,
        Cell::Fn(|o| int(o, "/status/numberAvailable")),
    ),
    col(
        "Node Selector",
        "string",
        0,
        Cell::Fn(|o| json!(pairs(o.pointer("/spec/template/spec/nodeSelector")))),
    ),
    AGE,
];
pub const JOB: &[Column] = &[
    NAME,
    col("Status", "string", 0, Cell::Fn(job_status)),
    col(
        "Completions",
        "string",
        0,
        Cell::Fn(|o| ratio(o, "/status/succeeded", "/spec/completions")),
    ),
    col("Duration", "string", 0, Cell::Fn(|_| json!(""))),
    AGE,
];
pub const CRONJOB: &[Column] = &[
    NAME,
    col("Schedule", "string", 0, Cell::Path("/spec/schedule")),
    col("Timezone", "string", 0, Cell::Path("/spec/timeZone")),
    col(
        "Suspend",
        "boolean",
        0,
        Cell::Fn(|o| {
            json!(o
                .pointer("/spec/suspend")
                .and_then(Value::as_bool)
                .unwrap_or(false))
        }),
    ),
    col(
        "Active",
        "integer",
        0,
        Cell::Fn(|o| {
            json!(o
                .pointer("/status/active")
                .and_then(Value::as_array)
                .map_or(0, Vec::len))
        }),
    ),
    col(
        "Last Schedule",
        "string",
        0,
        Cell::Fn(|o| age_of(o.pointer("/status/lastScheduleTime"))),
    ),
    AGE,
];
pub const WEBHOOKS: &[Column] = &[
    NAME,
    col(
        "Webhooks",
        "integer",
        0,
        Cell::Fn(|o| {
            json!(o
                .get("webhooks")
                .and_then(Value::as_array)
                .map_or(0, Vec::len))
        }),
    ),
    AGE,
];
pub const LEASE: &[Column] = &[
    NAME,
    col(
        "Holder",
        "string",
        0,
        Cell::PathOr("/spec/holderIdentity", ""),
    ),
    AGE,
];
pub const ROLEBINDING: &[Column] = &[
    NAME,
    col(
        "Role",
        "string",
        0,
        Cell::Fn(|o| {
            let kind = o
                .pointer("/roleRef/kind")
                .and_then(Value::as_str)
                .unwrap_or("");
            let name = o
                .pointer("/roleRef/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            json!(format!("{kind}/{name}"))
        }),
    ),
    AGE,
];

/// The `columnDefinitions` of a table.
pub fn definitions(columns: &[Column]) -> Value {
    columns
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "type": c.kind,
                "format": if matches!(c.cell, Cell::Name) { "name" } else { "" },
                "description": "",
                "priority": c.priority,
            })
        })
        .collect()
}

/// One table row's cells.
pub fn cells(columns: &[Column], object: &Value) -> Value {
    columns
        .iter()
        .map(|c| match c.cell {
            Cell::Name => object
                .pointer("/metadata/name")
                .cloned()
                .unwrap_or(json!("")),
            Cell::Age => age_of(object.pointer("/metadata/creationTimestamp")),
            Cell::CreatedAt => object
                .pointer("/metadata/creationTimestamp")
                .cloned()
                .unwrap_or(Value::Null),
            Cell::Path(p) => text(object.pointer(p)).map_or(json!("<none>"), Value::String),
            Cell::PathOr(p, fallback) => json!(text(object.pointer(p)).unwrap_or(fallback.into())),
            Cell::Fn(f) => f(object),
        })
        .collect()
}

fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

fn int(o: &Value, pointer: &str) -> Value {
    json!(o.pointer(pointer).and_then(Value::as_i64).unwrap_or(0))
}

fn ratio(o: &Value, have: &str, want: &str) -> Value {
    let have = o.pointer(have).and_then(Value::as_i64).unwrap_or(0);
    let want = o.pointer(want).and_then(Value::as_i64).unwrap_or(1);
    json!(format!("{have}/{want}"))
}

fn pairs(map: Option<&Value>) -> String {
    match map.and_then(Value::as_object) {
        Some(m) if !m.is_empty() => m
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(","),
        _ => "<none>".into(),
    }
}

fn data_count(o: &Value) -> Value {
    let count = |p: &str| o.get(p).and_then(Value::as_object).map_or(0, |m| m.len());
    json!(count("data") + count("binaryData"))
}

fn secrets_count(o: &Value) -> Value {
    json!(o
        .get("secrets")
        .and_then(Value::as_array)
        .map_or(0, Vec::len))
}

fn statuses(o: &Value) -> &[Value] {
    o.pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn pod_ready(o: &Value) -> Value {
    let total = o
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let ready = statuses(o)
        .iter()
        .filter(|s| s.get("ready").and_then(Value::as_bool) == Some(true))
        .count();
    json!(format!("{ready}/{total}"))
}

fn pod_status(o: &Value) -> Value {
    if o.pointer("/metadata/deletionTimestamp").is_some() {
        return json!("Terminating");
    }
    let waiting = statuses(o)
        .iter()
        .find_map(|s| s.pointer("/state/waiting/reason").and_then(Value::as_str));
    let phase = o.pointer("/status/phase").and_then(Value::as_str);
    json!(o
        .pointer("/status/reason")
        .and_then(Value::as_str)
        .or(waiting)
        .or(phase)
        .unwrap_or("Pending"))
}

fn pod_restarts(o: &Value) -> Value {
    let restarts: i64 = statuses(o)
        .iter()
        .filter_map(|s| s.get("restartCount").and_then(Value::as_i64))
        .sum();
    json!(restarts.to_string())
}

fn external_ips(o: &Value) -> Value {
    let mut ips: Vec<String> = o
        .pointer("/spec/externalIPs")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    if let Some(ingress) = o
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
    {
        ips.extend(ingress.iter().filter_map(|i| {
            i.get("ip")
                .or(i.get("hostname"))
                .and_then(Value::as_str)
                .map(String::from)
        }));
    }
    let kind = o
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    json!(match (ips.is_empty(), kind) {
        (false, _) => ips.join(","),
        (true, "LoadBalancer") => "<pending>".to_string(),
        (true, "ExternalName") => o
            .pointer("/spec/externalName")
            .and_then(Value::as_str)
            .unwrap_or("<none>")
            .to_string(),
        _ => "<none>".to_string(),
    })
}

fn service_ports(o: &Value) -> Value {
    let ports: Vec<String> = o
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(|ports| {
            ports
                .iter()
                .map(|p| {
                    let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
                    let protocol = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
                    match p.get("nodePort").and_then(Value::as_i64) {
                        Some(node) => format!("{port}:{node}/{protocol}"),
                        None => format!("{port}/{protocol}"),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    json!(if ports.is_empty() {
        "<none>".into()
    } else {
        ports.join(",")
    })
}

fn endpoints(o: &Value) -> Value {
    let mut out = Vec::new();
    for subset in o
        .get("subsets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let ports: Vec<i64> = subset
            .get("ports")
            .and_then(Value::as_array)
            .map(|p| {
                p.iter()
                    .filter_map(|p| p.get("port").and_then(Value::as_i64))
                    .collect()
            })
            .unwrap_or_default();
        for address in subset
            .get("addresses")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let ip = address
                .get("ip")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if ports.is_empty() {
                out.push(ip.to_string());
            }
            out.extend(ports.iter().map(|port| format!("{ip}:{port}")));
        }
    }
    json!(if out.is_empty() {
        "<none>".into()
    } else {
        out.join(",")
    })
}

fn involved_object(o: &Value) -> Value {
    let kind = o
        .pointer("/involvedObject/kind")
        .and_then(Value::as_str)
        .unwrap_or("");
    let name = o
        .pointer("/involvedObject/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    json!(format!("{}/{name}", kind.to_lowercase()))
}

fn node_status(o: &Value) -> Value {
    let ready = o
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|c| {
            c.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
        })
        .and_then(|c| c.get("status").and_then(Value::as_str));
    let mut status = match ready {
        Some("True") => "Ready".to_string(),
        Some(_) => "NotReady".to_string(),
        None => "Unknown".to_string(),
    };
    if o.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push_str(",SchedulingDisabled");
    }
    json!(status)
}

fn node_roles(o: &Value) -> Value {
    let roles: Vec<&str> = o
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .keys()
                .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                .collect()
        })
        .unwrap_or_default();
    json!(if roles.is_empty() {
        "<none>".into()
    } else {
        roles.join(",")
    })
}

fn access_modes(o: &Value) -> Value {
    let modes: Vec<&str> = o
        .pointer("/status/accessModes")
        .and_then(Value::as_array)
        .map(|m| {
            m.iter()
                .filter_map(Value::as_str)
                .map(|m| match m {
                    "ReadWriteOnce" => "RWO",
                    "ReadOnlyMany" => "ROX",
                    "ReadWriteMany" => "RWX",
                    "ReadWriteOncePod" => "RWOP",
                    other => other,
                })
                .collect()
        })
        .unwrap_or_default();
    json!(modes.join(","))
}

fn pod_template_containers(o: &Value) -> &[Value] {
    o.pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn containers(o: &Value) -> Value {
    let names: Vec<&str> = pod_template_containers(o)
        .iter()
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .collect();
    json!(names.join(","))
}

fn images(o: &Value) -> Value {
    let images: Vec<&str> = pod_template_containers(o)
        .iter()
        .filter_map(|c| c.get("image").and_then(Value::as_str))
        .collect();
    json!(images.join(","))
}

fn job_status(o: &Value) -> Value {
    let conditions = o.pointer("/status/conditions").and_then(Value::as_array);
    let holds = |kind: &str| {
        conditions.into_iter().flatten().any(|c| {
            c.get("type").and_then(Value::as_str) == Some(kind)
                && c.get("status").and_then(Value::as_str) == Some("True")
        })
    };
    json!(if holds("Complete") {
        "Complete"
    } else if holds("Failed") {
        "Failed"
    } else if o.pointer("/metadata/deletionTimestamp").is_some() {
        "Terminating"
    } else {
        "Running"
    })
}

/// Time since an RFC 3339 timestamp, as kube prints it; `<unknown>` without one.
pub fn age_of(timestamp: Option<&Value>) -> Value {
    let Some(at) = timestamp.and_then(Value::as_str).and_then(|s| {
        OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
    }) else {
        return json!("<unknown>");
    };
    let seconds = (OffsetDateTime::now_utc() - at).whole_seconds();
    json!(human_duration(seconds))
}

/// kube's `duration.HumanDuration`: two significant units at most, coarser as it grows.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        return match seconds % 60 {
            0 => format!("{minutes}m"),
            s => format!("{minutes}m{s}s"),
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        return match minutes % 60 {
            0 => format!("{hours}h"),
            m => format!("{hours}h{m}m"),
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        return match hours % 24 {
            0 => format!("{}d", hours / 24),
            h => format!("{}d{h}h", hours / 24),
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let years = hours / 24 / 365;
        return match (hours / 24) % 365 {
            0 => format!("{years}y"),
            d => format!("{years}y{d}d"),
        };
    }
    format!("{}y", hours / 24 / 365)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_kube_prints_them() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(119), "119s");
        assert_eq!(human_duration(303), "5m3s");
        assert_eq!(human_duration(600), "10m");
        assert_eq!(human_duration(3 * 3600 + 120), "3h2m");
        assert_eq!(human_duration(30 * 3600), "30h");
        assert_eq!(human_duration(3 * 86400 + 3600), "3d1h");
        assert_eq!(human_duration(400 * 86400), "400d");
        assert_eq!(human_duration(-5), "<invalid>");
    }

    #[test]
    fn pod_cells_count_ready_containers_and_restarts() {
        let pod = json!({
            "metadata": {"name": "web"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Running", "containerStatuses": [
                {"ready": true, "restartCount": 2}, {"ready": false, "restartCount": 1}]}
        });
        let cells = cells(POD, &pod);
        assert_eq!(cells[0], "web");
        assert_eq!(cells[1], "1/2");
        assert_eq!(cells[2], "Running");
        assert_eq!(cells[3], "3");
        assert_eq!(cells[4], "<unknown>");
    }
}
