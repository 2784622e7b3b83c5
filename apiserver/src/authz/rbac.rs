//! RBAC as Kubernetes evaluates it: ClusterRoleBindings grant their role's rules
//! everywhere, RoleBindings in their namespace (to a Role there, or a ClusterRole's rules
//! scoped to it); subjects are users, groups and service accounts (the user
//! `system:serviceaccount:<ns>:<name>`). The rules are indexed by subject in memory,
//! from the RBAC objects' watch caches, and the index is rebuilt when any of them moves:
//! a decision costs a few map lookups, no store read.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde_json::{json, Value};

use super::{Attributes, Decision};
use crate::authn::User;
use crate::object::meta_str;
use crate::resources::{self, Resource};
use crate::watch::{Caches, Filter};

/// One policy rule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rule {
    /// Verbs, `*` for all.
    pub verbs: Vec<String>,
    /// API groups, `*` for all.
    pub api_groups: Vec<String>,
    /// Resources (`pods`, `pods/log`, `*`, `*/scale`).
    pub resources: Vec<String>,
    /// Names; empty for all.
    pub resource_names: Vec<String>,
    /// Non-resource paths (`/healthz`, `/apis/*`).
    pub non_resource_urls: Vec<String>,
}

fn strings(value: &Value, field: &str) -> Vec<String> {
    crate::object::strings(value, &format!("/{field}"))
}

impl Rule {
    /// A rule from its JSON.
    pub fn from_json(value: &Value) -> Rule {
        Rule {
            verbs: strings(value, "verbs"),
            api_groups: strings(value, "apiGroups"),
            resources: strings(value, "resources"),
            resource_names: strings(value, "resourceNames"),
            non_resource_urls: strings(value, "nonResourceURLs"),
        }
    }

    /// Its JSON.
    pub fn to_json(&self) -> Value {
        let mut rule = json!({ "verbs": self.verbs });
        let mut put = |field: &str, values: &Vec<String>| {
            if !values.is_empty() {
                rule[field] = json!(values);
            }
        };
        put("apiGroups", &self.api_groups);
        put("resources", &self.resources);
        put("resourceNames", &self.resource_names);
        put("nonResourceURLs", &self.non_resource_urls);
        rule
    }

    fn verb_matches(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == "*" || v == verb)
    }

    fn resource_matches(&self, resource: &str, subresource: &str) -> bool {
        let combined = if subresource.is_empty() {
            resource.to_string()
        } else {
            format!("{resource}/{subresource}")
        };
        self.resources.iter().any(|r| {
            r == "*"
                || *r == combined
                || (!subresource.is_empty() && r.strip_prefix("*/") == Some(subresource))
        })
    }

    /// Whether the rule allows the request.
    pub fn allows(&self, a: &Attributes) -> bool {
        if !self.verb_matches(&a.verb) {
            return false;
        }
        if !a.resource_request {
            return self.non_resource_urls.iter().any(|u| {
                u == "*"
                    || *u == a.path
                    || u.strip_suffix('*')
                        .is_some_and(|prefix| a.path.starts_with(prefix))
            });
        }
        self.api_groups.iter().any(|g| g == "*" || *g == a.group)
            && self.resource_matches(&a.resource, &a.subresource)
            && (self.resource_names.is_empty()
                || (!a.name.is_empty() && self.resource_names.contains(&a.name)))
    }
}

/// Rules by subject: users and groups, cluster-wide and per namespace.
#[derive(Debug, Default)]
struct Index {
    /// The RBAC caches' change counts it was built at.
    built_at: Vec<u64>,
    cluster: HashMap<String, Vec<Arc<Rule>>>,
    namespaced: HashMap<(String, String), Vec<Arc<Rule>>>,
}

fn subject_keys(subject: &Value, binding_namespace: Option<&str>) -> Option<String> {
    let kind = subject.get("kind").and_then(Value::as_str)?;
    let name = subject.get("name").and_then(Value::as_str)?;
    match kind {
        "User" => Some(format!("u:{name}")),
        "Group" => Some(format!("g:{name}")),
        "ServiceAccount" => {
            let ns = subject
                .get("namespace")
                .and_then(Value::as_str)
                .or(binding_namespace)?;
            Some(format!("u:system:serviceaccount:{ns}:{name}"))
        }
        _ => None,
    }
}

/// The RBAC authorizer.
#[derive(Debug)]
pub struct Rbac {
    caches: Arc<Caches>,
    index: RwLock<Arc<Index>>,
}

fn kind(plural: &str) -> &'static Resource {
    resources::find("rbac.authorization.k8s.io", "v1", plural).expect("RBAC kinds are served")
}

const RBAC_KINDS: [&str; 4] = [
    "roles",
    "rolebindings",
    "clusterroles",
    "clusterrolebindings",
];

impl Rbac {
    /// An evaluator over the RBAC objects' caches.
    pub fn new(caches: Arc<Caches>) -> Rbac {
        Rbac {
            caches,
            index: RwLock::new(Arc::new(Index::default())),
        }
    }

    fn counts(&self) -> Vec<u64> {
        RBAC_KINDS
            .iter()
            .map(|k| self.caches.of(kind(k)).changes())
            .collect()
    }

    async fn index(&self) -> Arc<Index> {
        let counts = self.counts();
        {
            let index = self.index.read().expect("index lock");
            if index.built_at == counts {
                return index.clone();
            }
        }
        let built = Arc::new(self.build(counts).await);
        *self.index.write().expect("index lock") = built.clone();
        built
    }

    async fn all(&self, plural: &str) -> Vec<Value> {
        self.caches
            .of(kind(plural))
            .snapshot(&Filter::default())
            .await
            .0
    }

    async fn build(&self, counts: Vec<u64>) -> Index {
        let rules_of = |objects: &[Value]| -> HashMap<String, Vec<Arc<Rule>>> {
            objects
                .iter()
                .map(|o| {
                    let key = match meta_str(o, "namespace") {
                        Some(ns) => format!("{ns}/{}", meta_str(o, "name").unwrap_or_default()),
                        None => meta_str(o, "name").unwrap_or_default().to_string(),
                    };
                    let rules = o
                        .get("rules")
                        .and_then(Value::as_array)
                        .map(|r| r.iter().map(|r| Arc::new(Rule::from_json(r))).collect())
                        .unwrap_or_default();
                    (key, rules)
                })
                .collect()
        };
        let cluster_roles = rules_of(&self.all("clusterroles").await);
        let roles = rules_of(&self.all("roles").await);
        let mut index = Index {
            built_at: counts,
            ..Index::default()
        };
        for binding in self.all("clusterrolebindings").await {
            let role = binding
                .pointer("/roleRef/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let Some(rules) = cluster_roles.get(role) else {
                continue;
            };
            for subject in binding
                .get("subjects")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(key) = subject_keys(subject, None) {
                    index
                        .cluster
                        .entry(key)
                        .or_default()
                        .extend(rules.iter().cloned());
                }
            }
        }
        for binding in self.all("rolebindings").await {
            let ns = meta_str(&binding, "namespace")
                .unwrap_or_default()
                .to_string();
            let role = binding
                .pointer("/roleRef/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let rules = match binding.pointer("/roleRef/kind").and_then(Value::as_str) {
                Some("ClusterRole") => cluster_roles.get(role),
                _ => roles.get(&format!("{ns}/{role}")),
            };
            let Some(rules) = rules else { continue };
            for subject in binding
                .get("subjects")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(key) = subject_keys(subject, Some(&ns)) {
                    index
                        .namespaced
                        .entry((ns.clone(), key))
                        .or_default()
                        .extend(rules.iter().cloned());
                }
            }
        }
        index
    }

    /// A role or cluster role by key (`<namespace>/<name>` or `<name>`), from its cache.
    pub async fn role(&self, plural: &str, key: &str) -> Option<Value> {
        let cache = self.caches.of(kind(plural));
        cache.ready().await;
        cache.get(key)
    }

    fn keys(user: &User) -> Vec<String> {
        let mut keys = vec![format!("u:{}", user.name)];
        keys.extend(user.groups.iter().map(|g| format!("g:{g}")));
        keys
    }

    /// Every rule that applies to `user` in `namespace` ("" for cluster-wide ones only).
    pub async fn rules_for(&self, user: &User, namespace: &str) -> Vec<Rule> {
        let index = self.index().await;
        let mut out = Vec::new();
        for key in Self::keys(user) {
            if let Some(rules) = index.cluster.get(&key) {
                out.extend(rules.iter().map(|r| (**r).clone()));
            }
            if !namespace.is_empty() {
                if let Some(rules) = index.namespaced.get(&(namespace.to_string(), key)) {
                    out.extend(rules.iter().map(|r| (**r).clone()));
                }
            }
        }
        out
    }

    /// The decision for one request.
    pub async fn authorize(&self, user: &User, a: &Attributes) -> Decision {
        let index = self.index().await;
        for key in Self::keys(user) {
            let cluster = index.cluster.get(&key).into_iter().flatten();
            let namespaced = (!a.namespace.is_empty())
                .then(|| index.namespaced.get(&(a.namespace.clone(), key.clone())))
                .flatten()
                .into_iter()
                .flatten();
            if cluster.chain(namespaced).any(|rule| rule.allows(a)) {
                return Decision::Allow;
            }
        }
        Decision::NoOpinion
    }
}

/// Whether `held` covers every permission `rule` grants (escalation prevention: a
/// wildcard is covered only by the same wildcard).
pub fn covers(held: &[Rule], rule: &Rule) -> bool {
    let names: Vec<String> = if rule.resource_names.is_empty() {
        vec![String::new()]
    } else {
        rule.resource_names.clone()
    };
    let has = |list: &Vec<String>, want: &str| list.iter().any(|v| v == "*" || v == want);
    for verb in &rule.verbs {
        if !rule.non_resource_urls.is_empty() {
            for url in &rule.non_resource_urls {
                let ok = held.iter().any(|h| {
                    has(&h.verbs, verb)
                        && h.non_resource_urls.iter().any(|u| {
                            u == "*"
                                || u == url
                                || u.strip_suffix('*').is_some_and(|p| url.starts_with(p))
                        })
                });
                if !ok {
                    return false;
                }
            }
            continue;
        }
        for group in &rule.api_groups {
            for resource in &rule.resources {
                for name in &names {
                    let ok = held.iter().any(|h| {
                        has(&h.verbs, verb)
                            && has(&h.api_groups, group)
                            && has(&h.resources, resource)
                            && (h.resource_names.is_empty()
                                || (!name.is_empty() && h.resource_names.contains(name)))
                    });
                    if !ok {
                        return false;
                    }
                }
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(v: Value) -> Rule {
        Rule::from_json(&v)
    }

    fn request(verb: &str, group: &str, resource: &str, sub: &str, name: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            resource_request: true,
            namespace: "ns".into(),
            group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            name: name.into(),
            path: String::new(),
        }
    }

    #[test]
    fn rules_match_as_kubernetes_matches_them() {
        let pods = rule(
            json!({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods", "pods/log"]}),
        );
        assert!(pods.allows(&request("get", "", "pods", "", "p")));
        assert!(pods.allows(&request("get", "", "pods", "log", "p")));
        assert!(!pods.allows(&request("get", "", "pods", "exec", "p")));
        assert!(!pods.allows(&request("delete", "", "pods", "", "p")));
        assert!(!pods.allows(&request("get", "apps", "pods", "", "p")));
        let scale = rule(json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*/scale"]}));
        assert!(scale.allows(&request("patch", "apps", "deployments", "scale", "web")));
        assert!(!scale.allows(&request("patch", "apps", "deployments", "", "web")));
        let named = rule(
            json!({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["one"]}),
        );
        assert!(named.allows(&request("get", "", "configmaps", "", "one")));
        assert!(!named.allows(&request("get", "", "configmaps", "", "two")));
        assert!(!named.allows(&request("list", "", "configmaps", "", "")));
        let urls = rule(json!({"verbs": ["get"], "nonResourceURLs": ["/healthz", "/apis/*"]}));
        assert!(urls.allows(&Attributes::path("get", "/healthz")));
        assert!(urls.allows(&Attributes::path("get", "/apis/apps/v1")));
        assert!(!urls.allows(&Attributes::path("get", "/metrics")));
    }

    #[test]
    fn escalation_needs_every_permission_granted() {
        let held = vec![rule(
            json!({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods", "configmaps"]}),
        )];
        assert!(covers(
            &held,
            &rule(json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}))
        ));
        assert!(!covers(
            &held,
            &rule(json!({"verbs": ["delete"], "apiGroups": [""], "resources": ["pods"]}))
        ));
        assert!(!covers(
            &held,
            &rule(json!({"verbs": ["get"], "apiGroups": [""], "resources": ["*"]}))
        ));
        assert!(!covers(
            &held,
            &rule(json!({"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"]}))
        ));
        let admin = vec![rule(
            json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}),
        )];
        assert!(covers(
            &admin,
            &rule(json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}))
        ));
    }
}
