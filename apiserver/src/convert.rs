//! Conversion between a served form and the stored one, where two APIs keep their objects
//! in one place: events.k8s.io/v1 Events are stored as core/v1 Events under
//! `/registry/events`, as kube-apiserver keeps them, so either API sees every event.

use serde_json::{json, Map, Value};

use crate::resources::Resource;

/// events.k8s.io/v1 field names beside core/v1's.
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

fn is_events_v1(resource: &Resource) -> bool {
    resource.group == "events.k8s.io" && resource.plural == "events"
}

fn rename(object: Value, from_events_v1: bool, api_version: &str) -> Value {
    let Value::Object(map) = object else {
        return object;
    };
    let mut out = Map::new();
    for (key, value) in map {
        let renamed = EVENT_FIELDS.iter().find_map(|(v1, core)| {
            let (from, to) = if from_events_v1 {
                (v1, core)
            } else {
                (core, v1)
            };
            (key == *from).then(|| to.to_string())
        });
        out.insert(renamed.unwrap_or(key), value);
    }
    out.insert("apiVersion".into(), json!(api_version));
    out.insert("kind".into(), json!("Event"));
    Value::Object(out)
}

/// The form `resource`'s object is stored in.
pub fn to_stored(resource: &Resource, object: Value) -> Value {
    if is_events_v1(resource) {
        rename(object, true, "v1")
    } else {
        object
    }
}

/// `resource`'s form of a stored object.
pub fn from_stored(resource: &Resource, object: Value) -> Value {
    if is_events_v1(resource) {
        rename(object, false, "events.k8s.io/v1")
    } else {
        object
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::find;

    #[test]
    fn events_v1_round_trip_through_the_core_form() {
        let events = find("events.k8s.io", "v1", "events").unwrap();
        let served = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "e"}, "regarding": {"kind": "Pod", "name": "p"},
            "note": "pulled", "reason": "Pulled", "deprecatedCount": 2,
        });
        let stored = to_stored(events, served.clone());
        assert_eq!(stored["apiVersion"], "v1");
        assert_eq!(stored["involvedObject"]["name"], "p");
        assert_eq!(stored["message"], "pulled");
        assert_eq!(stored["count"], 2);
        assert_eq!(from_stored(events, stored), served);
        let core = find("", "v1", "events").unwrap();
        assert_eq!(to_stored(core, served.clone()), served);
    }
}
