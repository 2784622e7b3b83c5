//! Discovery: `/api`, `/apis`, `/api/v1`, `/apis/<group>[/<version>]`, legacy and
//! aggregated (`apidiscovery.k8s.io/v2`), all read from the resource table.

use serde_json::{json, Value};

use crate::resources::{self, Resource, Sub};

/// The verbs of a subresource.
fn sub_verbs(sub: Sub) -> &'static [&'static str] {
    match sub {
        Sub::Token => &["create"],
        Sub::Status | Sub::Scale => &["get", "patch", "update"],
    }
}

/// True when the Accept header asks for aggregated discovery (v2).
pub fn wants_aggregated(accept: &str) -> bool {
    accept.split(',').any(|media| {
        let params: Vec<&str> = media.split(';').map(str::trim).collect();
        params.contains(&"g=apidiscovery.k8s.io")
            && params.contains(&"v=v2")
            && params.contains(&"as=APIGroupDiscoveryList")
    })
}

fn sub_kind(resource: &Resource, sub: Sub) -> (&'static str, &'static str, &'static str) {
    match sub {
        Sub::Scale => ("autoscaling", "v1", "Scale"),
        Sub::Token => ("authentication.k8s.io", "v1", "TokenRequest"),
        Sub::Status => (resource.group, resource.version, resource.kind),
    }
}

/// `/api/v1`, `/apis/<group>/<version>`: an APIResourceList.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let mut entries = Vec::new();
    for r in resources::of(group, version) {
        let mut entry = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": r.verbs(),
        });
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            entry["categories"] = json!(r.categories);
        }
        entries.push(entry);
        for sub in r.subresources {
            let (g, v, kind) = sub_kind(r, *sub);
            let mut entry = json!({
                "name": format!("{}/{}", r.plural, sub.name()),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": kind,
                "verbs": sub_verbs(*sub),
            });
            if *sub != Sub::Status {
                entry["group"] = json!(g);
                entry["version"] = json!(v);
            }
            entries.push(entry);
        }
    }
    if entries.is_empty() {
        return None;
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": entries,
    }))
}

/// `/api`: the legacy APIVersions.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{ "clientCIDR": "0.0.0.0/0", "serverAddress": server_address }],
    })
}

fn group_entry(group: &str, version: &str) -> Value {
    let gv = json!({ "groupVersion": format!("{group}/{version}"), "version": version });
    json!({ "name": group, "versions": [gv.clone()], "preferredVersion": gv })
}

/// `/apis`: the legacy APIGroupList.
pub fn group_list() -> Value {
    let groups: Vec<Value> = resources::groups()
        .into_iter()
        .map(|(g, v)| group_entry(g, v))
        .collect();
    json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups })
}

/// `/apis/<group>`: one APIGroup.
pub fn group(name: &str) -> Option<Value> {
    let (g, v) = resources::groups().into_iter().find(|(g, _)| *g == name)?;
    let mut entry = group_entry(g, v);
    entry["kind"] = json!("APIGroup");
    entry["apiVersion"] = json!("v1");
    Some(entry)
}

fn aggregated_version(group: &str, version: &str) -> Value {
    let resources: Vec<Value> = resources::of(group, version)
        .map(|r| {
            let mut entry = json!({
                "resource": r.plural,
                "responseKind": { "group": r.group, "version": r.version, "kind": r.kind },
                "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                "singularResource": r.singular,
                "verbs": r.verbs(),
            });
            if !r.short_names.is_empty() {
                entry["shortNames"] = json!(r.short_names);
            }
            if !r.categories.is_empty() {
                entry["categories"] = json!(r.categories);
            }
            if !r.subresources.is_empty() {
                entry["subresources"] = r
                    .subresources
                    .iter()
                    .map(|sub| {
                        let (g, v, kind) = sub_kind(r, *sub);
                        json!({
                            "subresource": sub.name(),
                            "responseKind": { "group": g, "version": v, "kind": kind },
                            "verbs": sub_verbs(*sub),
                        })
                    })
                    .collect();
            }
            entry
        })
        .collect();
    json!({ "version": version, "resources": resources, "freshness": "Current" })
}

fn aggregated_list(items: Vec<Value>) -> Value {
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    })
}

/// `/api` as aggregated discovery: the core group.
pub fn aggregated_core() -> Value {
    aggregated_list(vec![json!({
        "metadata": { "creationTimestamp": null },
        "versions": [aggregated_version("", "v1")],
    })])
}

/// `/apis` as aggregated discovery: every named group.
pub fn aggregated_groups() -> Value {
    aggregated_list(
        resources::groups()
            .into_iter()
            .map(|(g, v)| {
                json!({
                    "metadata": { "name": g, "creationTimestamp": null },
                    "versions": [aggregated_version(g, v)],
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_accept_header_selects_aggregated_v2() {
        let kubectl = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert!(wants_aggregated(kubectl));
        assert!(!wants_aggregated("application/json, */*"));
        assert!(!wants_aggregated(
            "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
        ));
    }

    #[test]
    fn scale_is_listed_as_autoscaling_v1() {
        let list = resource_list("apps", "v1").unwrap();
        let scale = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "deployments/scale")
            .unwrap();
        assert_eq!(scale["group"], "autoscaling");
        assert_eq!(scale["kind"], "Scale");
        let groups = aggregated_groups();
        let apps = groups["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["metadata"]["name"] == "apps")
            .unwrap();
        assert_eq!(apps["versions"][0]["resources"][0]["scope"], "Namespaced");
    }
}
