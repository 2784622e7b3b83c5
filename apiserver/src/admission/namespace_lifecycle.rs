//! NamespaceLifecycle: nothing is created in a namespace that is missing or being
//! terminated, and the system namespaces cannot be deleted.

use crate::resources::{Resource, SYSTEM_NAMESPACES};
use crate::status::{ApiError, ApiResult};
use crate::storage::Storage;
use crate::watch::Caches;

/// Namespaces that may never be deleted.
const UNDELETABLE: &[&str] = &["default", "kube-system", "kube-public"];

/// Refuses a create in a namespace that does not exist or is terminating.
/// The namespace is looked up in the watch cache, and in the store only when the cache
/// does not have it (yet), as kube's plugin does with its informer: a create costs no
/// extra quorum read. An object that slips into a namespace as it starts terminating is
/// deleted by the namespace controller's next sweep.
pub async fn create(
    storage: &Storage,
    caches: &Caches,
    resource: &Resource,
    namespace: Option<&str>,
    name: &str,
) -> ApiResult<()> {
    let Some(ns) = namespace.filter(|_| resource.namespaced) else {
        return Ok(());
    };
    let namespaces = crate::resources::find("", "v1", "namespaces").expect("namespaces are served");
    let found = match caches.of(namespaces).get(ns) {
        Some(cached) => Some(cached),
        None => storage
            .get(namespaces, &storage.key(namespaces, None, ns))
            .await?
            .map(|s| s.object),
    };
    match found {
        None if SYSTEM_NAMESPACES.contains(&ns) => Ok(()),
        None => Err(ApiError::not_found(namespaces, ns)),
        Some(object) if object.pointer("/metadata/deletionTimestamp").is_some() => {
            Err(ApiError::new(
                403,
                "Forbidden",
                format!(
                    "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                    resource.qualified(),
                ),
            ))
        }
        Some(_) => Ok(()),
    }
}

/// Refuses deleting a system namespace.
pub fn delete(resource: &Resource, name: &str) -> ApiResult<()> {
    if resource.plural == "namespaces" && resource.group.is_empty() && UNDELETABLE.contains(&name) {
        return Err(ApiError::new(
            403,
            "Forbidden",
            format!("namespaces \"{name}\" is forbidden: this namespace may not be deleted"),
        ));
    }
    Ok(())
}
