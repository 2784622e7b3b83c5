//! Routing: what a request path and method ask for, as kube-apiserver's RequestInfo
//! (`k8s.io/apiserver/pkg/endpoints/request/requestinfo.go`) reads them.

use http::Method;

/// A request for an API resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRequest {
    /// get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: &'static str,
    /// "" for core.
    pub group: String,
    /// The version.
    pub version: String,
    /// The namespace from the path, if any.
    pub namespace: Option<String>,
    /// The plural resource name.
    pub resource: String,
    /// The object's name, if the path names one.
    pub name: Option<String>,
    /// `status`, `scale`, ...
    pub subresource: Option<String>,
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A resource or collection.
    Resource(ResourceRequest),
    /// Any other path (discovery, health, OpenAPI, version).
    NonResource(String),
}

/// Subresources of a namespace itself (`/api/v1/namespaces/<name>/status`).
const NAMESPACE_SUBRESOURCES: &[&str] = &["status", "finalize"];

/// Parses a path and method; `watch` is the query's `watch=true|1`.
pub fn route(method: &Method, path: &str, watch: bool) -> Route {
    let parts: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|p| !p.is_empty())
        .collect();
    let (group, version, rest) = match parts.as_slice() {
        ["api", version, rest @ ..] if !rest.is_empty() => ("", *version, rest),
        ["apis", group, version, rest @ ..] if !rest.is_empty() => (*group, *version, rest),
        _ => return Route::NonResource(path.to_string()),
    };
    let mut rest = rest.to_vec();
    let mut watch = watch;
    // The deprecated `/watch/` path prefix.
    if rest.first() == Some(&"watch") {
        rest.remove(0);
        watch = true;
    }
    let mut namespace = None;
    if rest.first() == Some(&"namespaces") && rest.len() > 1 {
        namespace = Some(rest[1].to_string());
        if rest.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&rest[2]) {
            rest.drain(..2);
        }
    }
    if rest.is_empty() {
        return Route::NonResource(path.to_string());
    }
    let resource = rest[0].to_string();
    let name = rest.get(1).map(|n| n.to_string());
    let subresource = rest.get(2).map(|s| s.to_string());
    if rest.len() > 3 {
        return Route::NonResource(path.to_string());
    }
    // `/namespaces/<name>` names the namespace itself, not a namespace of it.
    if resource == "namespaces" {
        namespace = None;
    }
    let verb = match (method, name.is_some()) {
        (&Method::GET, _) if watch => "watch",
        (&Method::GET | &Method::HEAD, true) => "get",
        (&Method::GET | &Method::HEAD, false) => "list",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, true) => "delete",
        (&Method::DELETE, false) => "deletecollection",
        _ => "",
    };
    Route::Resource(ResourceRequest {
        verb,
        group: group.to_string(),
        version: version.to_string(),
        namespace,
        resource,
        name,
        subresource,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(method: Method, path: &str, watch: bool) -> ResourceRequest {
        match route(&method, path, watch) {
            Route::Resource(r) => r,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn paths_read_as_kube_reads_them() {
        let r = resource(Method::GET, "/api/v1/namespaces/default/pods", false);
        assert_eq!(
            (r.verb, r.namespace.as_deref(), r.resource.as_str(), r.name),
            ("list", Some("default"), "pods", None)
        );
        let r = resource(Method::GET, "/api/v1/namespaces/default", false);
        assert_eq!(
            (r.verb, r.namespace, r.resource.as_str(), r.name.as_deref()),
            ("get", None, "namespaces", Some("default"))
        );
        let r = resource(Method::PUT, "/api/v1/namespaces/x/finalize", false);
        assert_eq!(
            (
                r.verb,
                r.resource.as_str(),
                r.name.as_deref(),
                r.subresource.as_deref()
            ),
            ("update", "namespaces", Some("x"), Some("finalize"))
        );
        let r = resource(
            Method::PATCH,
            "/apis/apps/v1/namespaces/ns/deployments/web/scale",
            false,
        );
        assert_eq!(
            (
                r.verb,
                r.group.as_str(),
                r.name.as_deref(),
                r.subresource.as_deref()
            ),
            ("patch", "apps", Some("web"), Some("scale"))
        );
        let r = resource(Method::GET, "/api/v1/pods", true);
        assert_eq!((r.verb, r.namespace), ("watch", None));
        let r = resource(Method::GET, "/api/v1/watch/namespaces/ns/pods", false);
        assert_eq!((r.verb, r.namespace.as_deref()), ("watch", Some("ns")));
        let r = resource(Method::DELETE, "/api/v1/namespaces/ns/configmaps", false);
        assert_eq!(r.verb, "deletecollection");
        assert_eq!(
            route(&Method::GET, "/apis/apps/v1", false),
            Route::NonResource("/apis/apps/v1".into())
        );
        assert_eq!(
            route(&Method::GET, "/api", false),
            Route::NonResource("/api".into())
        );
    }
}
