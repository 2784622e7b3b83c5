//! Admission: the plugins that look at a write against the cluster's state, after
//! authorization, in kube's order. Mutating ones first (LimitRanger's defaults,
//! ServiceAccount), then validation, then validating ones (NamespaceLifecycle,
//! LimitRanger's limits); ResourceQuota charges the write in its own transaction.
//! `--enable-admission-plugins` / `--disable-admission-plugins` choose them; kube's
//! defaults are on.

pub mod limit_ranger;
pub mod namespace_lifecycle;
pub mod policy;
pub mod resource_quota;
pub mod service_account;
pub mod webhook;
pub mod webhook_client;

use serde_json::Value;

use crate::resources::Resource;
use crate::status::ApiResult;
use crate::storage::Storage;
use crate::watch::Caches;

/// One admission plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plugin {
    /// Nothing in missing or terminating namespaces; system namespaces stay.
    NamespaceLifecycle,
    /// Container resource defaults and limits from LimitRanges.
    LimitRanger,
    /// A pod's service account, and its token mounted.
    ServiceAccount,
    /// MutatingWebhookConfigurations.
    MutatingAdmissionWebhook,
    /// ValidatingAdmissionPolicies and their bindings.
    ValidatingAdmissionPolicy,
    /// ValidatingWebhookConfigurations.
    ValidatingAdmissionWebhook,
    /// Object counts and compute within ResourceQuotas.
    ResourceQuota,
}

const ALL: &[(Plugin, &str)] = &[
    (Plugin::NamespaceLifecycle, "NamespaceLifecycle"),
    (Plugin::LimitRanger, "LimitRanger"),
    (Plugin::ServiceAccount, "ServiceAccount"),
    (Plugin::MutatingAdmissionWebhook, "MutatingAdmissionWebhook"),
    (
        Plugin::ValidatingAdmissionPolicy,
        "ValidatingAdmissionPolicy",
    ),
    (
        Plugin::ValidatingAdmissionWebhook,
        "ValidatingAdmissionWebhook",
    ),
    (Plugin::ResourceQuota, "ResourceQuota"),
];

/// The enabled plugins.
#[derive(Debug, Clone)]
pub struct Plugins(Vec<Plugin>);

impl Default for Plugins {
    fn default() -> Self {
        Plugins(ALL.iter().map(|(p, _)| *p).collect())
    }
}

impl Plugins {
    /// kube's defaults, plus `enable`, minus `disable`; a name this server does not
    /// implement is refused.
    pub fn from_flags(enable: &[String], disable: &[String]) -> Result<Plugins, String> {
        let find = |name: &str| {
            ALL.iter()
                .find(|(_, n)| *n == name)
                .map(|(p, _)| *p)
                .ok_or_else(|| {
                    let supported: Vec<&str> = ALL.iter().map(|(_, n)| *n).collect();
                    format!(
                        "admission plugin {name:?} is not supported (supported: {})",
                        supported.join(", ")
                    )
                })
        };
        let mut on = Plugins::default().0;
        for name in enable.iter().filter(|n| !n.is_empty()) {
            let plugin = find(name)?;
            if !on.contains(&plugin) {
                on.push(plugin);
            }
        }
        for name in disable.iter().filter(|n| !n.is_empty()) {
            let plugin = find(name)?;
            on.retain(|p| *p != plugin);
        }
        Ok(Plugins(on))
    }

    /// Whether `plugin` runs.
    pub fn has(&self, plugin: Plugin) -> bool {
        self.0.contains(&plugin)
    }
}

/// What the plugins read.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The store.
    pub storage: &'a Storage,
    /// The watch caches.
    pub caches: &'a Caches,
    /// The enabled plugins.
    pub plugins: &'a Plugins,
    /// Connections to admission webhooks.
    pub webhooks: &'a webhook_client::WebhookClients,
    /// Where webhook calls are timed.
    pub metrics: &'a crate::metrics::Metrics,
}

/// Mutating admission of a create.
pub async fn mutate_create(
    cx: Context<'_>,
    resource: &Resource,
    namespace: Option<&str>,
    object: &mut Value,
) -> ApiResult<()> {
    if cx.plugins.has(Plugin::LimitRanger) {
        limit_ranger::default(cx, resource, namespace, object).await;
    }
    if cx.plugins.has(Plugin::ServiceAccount) {
        service_account::admit(cx, resource, namespace, object).await?;
    }
    Ok(())
}

/// Validating admission of a create.
pub async fn validate_create(
    cx: Context<'_>,
    resource: &Resource,
    namespace: Option<&str>,
    object: &Value,
) -> ApiResult<()> {
    let name = crate::object::meta_str(object, "name").unwrap_or_default();
    if cx.plugins.has(Plugin::NamespaceLifecycle) {
        namespace_lifecycle::create(cx.storage, cx.caches, resource, namespace, name).await?;
    }
    if cx.plugins.has(Plugin::LimitRanger) {
        limit_ranger::validate(cx, resource, namespace, object).await?;
    }
    Ok(())
}

/// Validating admission of a delete.
pub fn validate_delete(plugins: &Plugins, resource: &Resource, name: &str) -> ApiResult<()> {
    if plugins.has(Plugin::NamespaceLifecycle) {
        namespace_lifecycle::delete(resource, name)?;
    }
    Ok(())
}
