//! Every namespace gets its `default` service account (kube's serviceaccount controller)
//! and the `kube-root-ca.crt` ConfigMap with the CA that signs the API server's
//! certificate (kube's root-ca-cert-publisher), created when missing.

use std::time::Duration;

use serde_json::{json, Value};

use crate::admission::service_account::ROOT_CA_CONFIGMAP;
use crate::object::{self, meta_str};
use crate::resources::{self, Resource};
use crate::rest::Api;
use crate::watch::Filter;

/// How often the namespaces' cache is checked for changes.
const POLL: Duration = Duration::from_millis(200);

async fn ensure(api: &Api, resource: &'static Resource, namespace: &str, mut object: Value) {
    let name = meta_str(&object, "name").unwrap_or_default().to_string();
    if api
        .caches
        .of(resource)
        .get(&format!("{namespace}/{name}"))
        .is_some()
    {
        return;
    }
    object::stamp_new(resource, &mut object);
    object::meta_mut(&mut object).insert("namespace".into(), json!(namespace));
    let key = api.storage.key(resource, Some(namespace), &name);
    // Already there (the cache lagged), or the namespace is going: nothing to do.
    let _ = api.storage.create(resource, &key, &object, 0).await;
}

/// The controller's loop.
pub async fn run(api: Api, root_ca: String) {
    let namespaces = resources::find("", "v1", "namespaces").expect("served");
    let accounts = resources::find("", "v1", "serviceaccounts").expect("served");
    let configmaps = resources::find("", "v1", "configmaps").expect("served");
    let cache = api.caches.of(namespaces);
    cache.ready().await;
    api.caches.of(accounts).ready().await;
    api.caches.of(configmaps).ready().await;
    let mut seen = None;
    loop {
        let now = (cache.changes(), api.caches.of(accounts).changes());
        if seen != Some(now) {
            seen = Some(now);
            let (all, _) = cache.snapshot(&Filter::default()).await;
            for ns in all
                .iter()
                .filter(|n| n.pointer("/metadata/deletionTimestamp").is_none())
            {
                let Some(name) = meta_str(ns, "name") else {
                    continue;
                };
                ensure(
                    &api,
                    accounts,
                    name,
                    json!({ "metadata": { "name": "default" } }),
                )
                .await;
                ensure(
                    &api,
                    configmaps,
                    name,
                    json!({ "metadata": { "name": ROOT_CA_CONFIGMAP }, "data": { "ca.crt": root_ca } }),
                )
                .await;
            }
        }
        tokio::time::sleep(POLL).await;
    }
}
