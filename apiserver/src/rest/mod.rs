//! The verbs on stored resources. Each handler runs after authentication and
//! authorization; writes pass admission and validation before storage.

pub(crate) mod delete;
mod read;
mod review;
mod subresource;
mod write;

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Response};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::admission::{self, Plugins};
use crate::authn::service_accounts::ServiceAccountTokens;
use crate::authn::User;
use crate::authz::{Authorizer, Mode};
use crate::resources::{self, Resource};
use crate::status::{ApiError, ApiResult};
use crate::storage::Storage;
use crate::transport::codec::{Output, Query};
use crate::transport::request::ResourceRequest;
use crate::transport::Body;
use crate::watch::Caches;

/// What the handlers share; cheap to clone into tasks.
#[derive(Debug, Clone)]
pub struct Api {
    /// Objects in the store.
    pub storage: Storage,
    /// The watch caches.
    pub caches: std::sync::Arc<Caches>,
    /// How long events live.
    pub event_ttl: Duration,
    /// Namespaces to finish, for the namespace controller.
    pub terminating: mpsc::Sender<String>,
    /// Work for the garbage collector.
    pub gc: mpsc::Sender<GcWork>,
    /// The authorization chain (also for reviews and escalation checks).
    pub authorizer: std::sync::Arc<Authorizer>,
    /// The signer of service account tokens.
    pub tokens: std::sync::Arc<ServiceAccountTokens>,
    /// The admission plugins on.
    pub plugins: Plugins,
    /// Connections to admission webhooks.
    pub webhooks: std::sync::Arc<crate::admission::webhook_client::WebhookClients>,
    /// What `/metrics` shows.
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
}

/// Terminating namespaces queued for the namespace controller; past this, its sweep
/// finds them.
pub const TERMINATING_QUEUE: usize = 256;
/// Deletions queued for the garbage collector; past this, its sweep finds them.
pub const GC_QUEUE: usize = 4096;

/// What the garbage collector is told.
#[derive(Debug, Clone)]
pub enum GcWork {
    /// An object with this uid is gone, from this namespace (None: cluster-scoped):
    /// dependents whose every owner is gone follow it.
    OwnerGone(String, Option<String>),
    /// This object waits, with the Foreground or Orphan finalizer, for its dependents.
    Finalize(&'static Resource, Option<String>, String),
}

/// The receiving ends of the controllers' queues.
#[derive(Debug)]
pub struct Queues {
    /// Terminating namespaces.
    pub terminating: mpsc::Receiver<String>,
    /// The garbage collector's work.
    pub gc: mpsc::Receiver<GcWork>,
}

impl Api {
    /// The handlers' state over `storage`, and the queues its controllers read.
    pub fn new(
        storage: Storage,
        event_ttl: Duration,
        modes: Vec<Mode>,
        tokens: std::sync::Arc<ServiceAccountTokens>,
        plugins: Plugins,
    ) -> (Api, Queues) {
        let (terminating, terminating_rx) = mpsc::channel(TERMINATING_QUEUE);
        let (gc, gc_rx) = mpsc::channel(GC_QUEUE);
        let caches = std::sync::Arc::new(Caches::new(storage.clone()));
        let api = Api {
            authorizer: std::sync::Arc::new(Authorizer::new(modes, caches.clone())),
            tokens,
            plugins,
            webhooks: Default::default(),
            metrics: Default::default(),
            caches,
            storage,
            event_ttl,
            terminating,
            gc,
        };
        (
            api,
            Queues {
                terminating: terminating_rx,
                gc: gc_rx,
            },
        )
    }

    /// What the admission plugins read.
    pub fn admission(&self) -> admission::Context<'_> {
        admission::Context {
            storage: &self.storage,
            caches: &self.caches,
            plugins: &self.plugins,
            webhooks: &self.webhooks,
            metrics: &self.metrics,
        }
    }

    /// Tells the garbage collector an object is gone (when its queue is full, its sweep
    /// finds the dependents).
    pub fn owner_gone(&self, object: &Value) {
        if let Some(uid) = crate::object::meta_str(object, "uid") {
            let namespace = crate::object::meta_str(object, "namespace").map(String::from);
            let _ = self
                .gc
                .try_send(GcWork::OwnerGone(uid.to_string(), namespace));
        }
    }
}

/// One request, parsed.
#[derive(Debug)]
pub struct Call<'a> {
    /// Route and verb.
    pub request: &'a ResourceRequest,
    /// The resource's row.
    pub resource: &'static Resource,
    /// The query string.
    pub query: &'a Query,
    /// How to answer.
    pub output: Output,
    /// The request headers.
    pub headers: &'a HeaderMap,
    /// The body's media type.
    pub media: String,
    /// The body.
    pub body: Bytes,
    /// Who is asking.
    pub user: &'a User,
    /// Warnings for the client (`Warning` headers), gathered while the call runs.
    pub warnings: std::sync::Mutex<Vec<String>>,
}

impl Call<'_> {
    /// The namespace of the request (namespaced resources only).
    pub fn namespace(&self) -> Option<&str> {
        if self.resource.namespaced {
            self.request.namespace.as_deref()
        } else {
            None
        }
    }

    /// The object name from the path.
    pub fn name(&self) -> ApiResult<&str> {
        self.request
            .name
            .as_deref()
            .ok_or_else(|| ApiError::method_not_allowed("a name is required"))
    }

    /// The store key of the named object.
    pub fn key(&self, api: &Api) -> ApiResult<String> {
        Ok(api
            .storage
            .key(self.resource, self.namespace(), self.name()?))
    }

    /// `dryRun=All`.
    pub fn dry_run(&self) -> bool {
        self.query.get("dryRun") == Some("All")
    }

    /// Drops the fields the kind does not know from an object the client sent, as
    /// `fieldValidation` asks (refused in Strict mode, warned of by default).
    pub fn check_fields(&self, object: &mut Value) -> ApiResult<()> {
        let mode = crate::fields::Mode::parse(self.query.get("fieldValidation"))?;
        let warnings = crate::fields::check(self.resource, object, mode)?;
        self.warnings
            .lock()
            .expect("warnings lock")
            .extend(warnings);
        Ok(())
    }
}

/// Finds the resource a request names.
pub fn resource_of(request: &ResourceRequest) -> ApiResult<&'static Resource> {
    resources::find(&request.group, &request.version, &request.resource)
        .ok_or_else(ApiError::no_route)
}

/// Runs the verb.
pub async fn handle(api: &Api, call: &Call<'_>) -> ApiResult<Response<Body>> {
    if call.resource.namespaced
        && call.request.namespace.is_none()
        && !matches!(call.request.verb, "list" | "watch")
    {
        return Err(ApiError::no_route());
    }
    if !call.resource.stored {
        return match (call.request.verb, &call.request.name) {
            ("create", None) => review::create(api, call).await,
            _ => Err(ApiError::method_not_allowed(format!(
                "the server does not allow this method on the requested resource ({})",
                call.request.verb
            ))),
        };
    }
    if let Some(sub) = &call.request.subresource {
        return subresource::handle(api, call, sub).await;
    }
    match call.request.verb {
        "get" => read::get(api, call).await,
        "list" => read::list(api, call).await,
        "watch" => read::watch(api, call).await,
        "create" if call.request.name.is_none() => write::create(api, call).await,
        "update" => write::update(api, call, write::Part::Main).await,
        "patch" => write::patch(api, call, write::Part::Main).await,
        "delete" => delete::delete(api, call).await,
        "deletecollection" => delete::delete_collection(api, call).await,
        verb => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({verb})"
        ))),
    }
}

/// The object as the client sees it: apiVersion and kind set.
pub fn shown(resource: &Resource, mut object: Value) -> Value {
    crate::object::set_type(&mut object, resource);
    object
}
