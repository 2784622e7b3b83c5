//! The request pipeline, stage by stage: transport (route, encodings), authentication,
//! authorization, then the verb (admission, validation, storage inside it). A refusal at
//! any stage is a kube `Status` and changes nothing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ballast_client::{Client, ConnectOptions, GetOptions, TlsOptions};
use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::admission::Plugins;
use crate::audit::{Auditor, Level, Policy, Record};
use crate::authn::service_accounts::ServiceAccountTokens;
use crate::authn::{Authenticator, User};
use crate::authz::{self, Attributes, Mode};
use crate::config::Config;
use crate::impersonation;
use crate::resources::SYSTEM_NAMESPACES;
use crate::rest::{self, Api, Call};
use crate::status::{ApiError, ApiResult};
use crate::storage::Storage;
use crate::transport::codec::{self, Output, Query};
use crate::transport::request::{self, Route};
use crate::transport::{self, Body, Peer};
use crate::{discovery, object, openapi, resources};

/// The Kubernetes version the API follows.
pub const KUBE_MINOR: &str = "32";

/// How long the health checks wait for the store.
const STORE_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The running server.
#[derive(Debug)]
pub struct App {
    api: Api,
    authenticator: Authenticator,
    auditor: Option<Auditor>,
    /// `host:port` clients reach this server at (in `/api`'s answer).
    address: String,
}

fn read_file(path: &std::path::Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Connects to the store with the --etcd-* flags.
pub async fn connect(config: &Config) -> Result<Client, String> {
    let mut options = ConnectOptions::new();
    if config.etcd_cafile.is_some() || config.etcd_certfile.is_some() {
        let identity = match (&config.etcd_certfile, &config.etcd_keyfile) {
            (Some(cert), Some(key)) => Some((read_file(cert)?, read_file(key)?)),
            (None, None) => None,
            _ => return Err("--etcd-certfile and --etcd-keyfile go together".into()),
        };
        options.tls = Some(TlsOptions {
            ca_pem: config.etcd_cafile.as_deref().map(read_file).transpose()?,
            identity,
            domain: None,
        });
    }
    Client::connect(&config.etcd_servers, options)
        .await
        .map_err(|e| format!("connecting to the store at {:?}: {e}", config.etcd_servers))
}

/// Creates what a new cluster starts with: the system namespaces and the `kubernetes`
/// service.
async fn seed(api: &Api, secure_port: u16) -> ApiResult<()> {
    let namespaces = resources::find("", "v1", "namespaces").expect("namespaces are served");
    for name in SYSTEM_NAMESPACES {
        let mut ns = json!({ "metadata": { "name": name } });
        object::stamp_new(namespaces, &mut ns);
        api.storage
            .create(namespaces, &api.storage.key(namespaces, None, name), &ns, 0)
            .await?;
    }
    let services = resources::find("", "v1", "services").expect("services are served");
    let mut svc = json!({
        "metadata": { "name": "kubernetes", "namespace": "default",
                      "labels": { "component": "apiserver", "provider": "kubernetes" } },
        "spec": { "clusterIP": "10.96.0.1",
                  "ports": [{ "name": "https", "port": 443, "protocol": "TCP", "targetPort": secure_port }] },
    });
    object::stamp_new(services, &mut svc);
    api.storage
        .create(
            services,
            &api.storage.key(services, Some("default"), "kubernetes"),
            &svc,
            0,
        )
        .await?;
    Ok(())
}

/// Binds the port, then serves until the process ends.
pub async fn run(config: Config) -> Result<(), String> {
    let tls = transport::tls::server_config(&config)?;
    let listener = TcpListener::bind(SocketAddr::new(config.bind_address, config.secure_port))
        .await
        .map_err(|e| {
            format!(
                "binding {}:{}: {e}",
                config.bind_address, config.secure_port
            )
        })?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let client = connect(&config).await?;
    let storage = Storage::new(client, &config.etcd_prefix);
    let modes = Mode::parse_list(&config.authorization_mode)?;
    let tokens = Arc::new(ServiceAccountTokens::new(
        config.service_account_signing_key_file.as_deref(),
        &config.service_account_key_file,
        &config.service_account_issuer,
        &config.api_audiences,
        &config.cert_dir,
    )?);
    let plugins = Plugins::from_flags(
        &config.enable_admission_plugins,
        &config.disable_admission_plugins,
    )?;
    let (api, queues) = Api::new(storage, config.event_ttl, modes, tokens.clone(), plugins);
    let authenticator = Authenticator::new(
        config.token_auth_file.as_deref(),
        config.anonymous_auth,
        tokens,
        api.storage.clone(),
        api.caches.clone(),
    )?;
    // The CA clients verify this server with, published in every namespace.
    let root_ca = config
        .client_ca_file
        .as_ref()
        .or(config.tls_cert_file.as_ref())
        .map(std::fs::read_to_string)
        .transpose()
        .map_err(|e| format!("reading the CA to publish: {e}"))?
        .unwrap_or_else(|| {
            std::fs::read_to_string(config.cert_dir.join("apiserver.crt")).unwrap_or_default()
        });
    crate::controllers::start(&api, queues, root_ca);
    seed(&api, local.port())
        .await
        .map_err(|e| format!("creating the system namespaces: {e}"))?;
    if api.authorizer.uses_rbac() {
        authz::bootstrap::reconcile(&api.storage)
            .await
            .map_err(|e| format!("creating the bootstrap roles: {e}"))?;
    }
    for resource in resources::RESOURCES.iter().filter(|r| r.stored) {
        api.caches.of(resource);
    }
    let host = if config.bind_address.is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        config.bind_address.to_string()
    };
    let auditor = match (&config.audit_log_path, &config.audit_policy_file) {
        (Some(path), Some(policy)) => {
            let text = std::fs::read_to_string(policy)
                .map_err(|e| format!("{}: {e}", policy.display()))?;
            Some(Auditor::start(path, Policy::parse(&text)?).await?)
        }
        (Some(_), None) => return Err("--audit-log-path needs --audit-policy-file".into()),
        _ => None,
    };
    let app = Arc::new(App {
        api,
        authenticator,
        auditor,
        address: format!("{host}:{}", local.port()),
    });
    tracing::info!(address = %local, "Serving securely on {local}");
    transport::serve(listener, tls, move |request, peer| {
        let app = app.clone();
        async move { app.handle(request, peer).await }
    })
    .await;
    Ok(())
}

impl App {
    /// One request through every stage.
    pub async fn handle(&self, request: Request<Incoming>, peer: Arc<Peer>) -> Response<Body> {
        let (parts, body) = request.into_parts();
        let query = Query::parse(parts.uri.query());
        let output = Output::negotiate(&parts.headers, &query);
        let route = request::route(&parts.method, parts.uri.path(), query.flag("watch"));
        let mut record = Record {
            received: Some(time::OffsetDateTime::now_utc()),
            attributes: Some(attributes_of(&route, &parts.method)),
            api_version: match &route {
                Route::Resource(r) if r.group.is_empty() => r.version.clone(),
                Route::Resource(r) => format!("{}/{}", r.group, r.version),
                Route::NonResource(_) => String::new(),
            },
            ..Record::default()
        };
        let result = self
            .stages(&parts, &route, &query, output, body, &peer, &mut record)
            .await;
        let (mut response, status) = match result {
            Ok(response) => {
                let code = response.status().as_u16();
                (response, json!({ "metadata": {}, "code": code }))
            }
            Err(error) => {
                let mut status = json!({ "metadata": {}, "code": error.code, "status": "Failure", "message": error.message });
                if !error.reason.is_empty() {
                    status["reason"] = json!(error.reason);
                }
                (codec::error(&error, output), status)
            }
        };
        if let Some(auditor) = &self.auditor {
            let level = auditor.level(&record);
            if level != Level::None {
                let watch = record
                    .attributes
                    .as_ref()
                    .is_some_and(|a| a.verb == "watch");
                let mut body = None;
                if level == Level::RequestResponse && !watch {
                    let (head, whole) = response.into_parts();
                    let bytes = whole
                        .collect()
                        .await
                        .map(|c| c.to_bytes())
                        .unwrap_or_default();
                    body = Some(bytes.clone());
                    response = Response::from_parts(head, Full::new(bytes).boxed_unsync());
                }
                let agent = parts
                    .headers
                    .get(http::header::USER_AGENT)
                    .and_then(|v| v.to_str().ok());
                let source = peer.address.map(|a| a.ip());
                auditor
                    .log(
                        level,
                        &record,
                        &parts.uri.to_string(),
                        source,
                        agent,
                        status,
                        body.as_ref(),
                    )
                    .await;
            }
        }
        tracing::debug!(method = %parts.method, uri = %parts.uri, status = response.status().as_u16(), "request");
        response
    }

    /// Authentication, impersonation, then the request's own stages.
    #[allow(clippy::too_many_arguments)]
    async fn stages(
        &self,
        parts: &http::request::Parts,
        route: &Route,
        query: &Query,
        output: Output,
        body: Incoming,
        peer: &Peer,
        record: &mut Record,
    ) -> ApiResult<Response<Body>> {
        let user = self
            .authenticator
            .authenticate(&parts.headers, peer)
            .await?;
        record.user = Some(user.clone());
        let user = impersonation::apply(&self.api.authorizer, user, &parts.headers).await?;
        if record.user.as_ref() != Some(&user) {
            record.impersonated = Some(user.clone());
        }
        let attributes = record.attributes.clone().unwrap_or_default();
        let started = std::time::Instant::now();
        let decision = self.api.authorizer.decide(&user, &attributes).await;
        self.api.metrics.decided(decision.0, started.elapsed());
        record.decision = Some(decision.clone());
        if !decision.0 {
            return Err(authz::forbidden(&user, &attributes, &decision.1));
        }
        match route {
            Route::NonResource(path) => self.non_resource(parts, path).await,
            Route::Resource(resource_request) => {
                self.resource(&user, parts, resource_request, query, output, body, record)
                    .await
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn resource(
        &self,
        user: &User,
        parts: &http::request::Parts,
        request: &request::ResourceRequest,
        query: &Query,
        output: Output,
        body: Incoming,
        record: &mut Record,
    ) -> ApiResult<Response<Body>> {
        let resource = rest::resource_of(request)?;
        let body = codec::read_body(body).await?;
        if !body.is_empty() {
            record.body = Some((codec::content_type(&parts.headers), body.clone()));
        }
        let call = Call {
            request,
            resource,
            query,
            output,
            headers: &parts.headers,
            media: codec::content_type(&parts.headers),
            body,
            user,
            warnings: Default::default(),
        };
        let mut response = rest::handle(&self.api, &call).await?;
        let warnings = call.warnings.into_inner().expect("warnings lock");
        for warning in warnings {
            let quoted = warning.replace('\\', "\\\\").replace('"', "\\\"");
            if let Ok(value) = http::HeaderValue::from_str(&format!("299 - \"{quoted}\"")) {
                response.headers_mut().append(http::header::WARNING, value);
            }
        }
        Ok(response)
    }

    async fn store_ok(&self) -> bool {
        let check = self
            .api
            .storage
            .client()
            .get("\0", GetOptions::new().with_keys_only());
        matches!(
            tokio::time::timeout(STORE_CHECK_TIMEOUT, check).await,
            Ok(Ok(_))
        )
    }

    async fn non_resource(
        &self,
        parts: &http::request::Parts,
        path: &str,
    ) -> ApiResult<Response<Body>> {
        if parts.method != Method::GET && parts.method != Method::HEAD {
            return Err(ApiError::no_route());
        }
        let accept = parts
            .headers
            .get(http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let json = |value: Value| Ok(codec::respond(200, &value, Output::Json));
        let aggregated = |value: Value| {
            Ok(codec::bytes_response(
                200,
                codec::AGGREGATED_DISCOVERY,
                Bytes::from(value.to_string()),
            ))
        };
        let path = path.trim_end_matches('/');
        match path {
            "/livez" | "/livez/ping" => Ok(text("ok")),
            "/metrics" => Ok(codec::bytes_response(
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                Bytes::from(self.api.metrics.render()),
            )),
            "/healthz" | "/readyz" | "/healthz/etcd" | "/readyz/etcd" => {
                if self.store_ok().await {
                    Ok(text("ok"))
                } else {
                    Ok(codec::bytes_response(
                        500,
                        "text/plain; charset=utf-8",
                        Bytes::from_static(
                            b"[-]etcd failed: the store does not answer\nhealthz check failed\n",
                        ),
                    ))
                }
            }
            "/version" => json(json!({
                "major": "1",
                "minor": KUBE_MINOR,
                "gitVersion": format!("v1.{KUBE_MINOR}.0-ballast.{}", env!("CARGO_PKG_VERSION")),
                "gitCommit": "",
                "gitTreeState": "clean",
                "buildDate": "",
                "goVersion": "",
                "compiler": "rustc",
                "platform": format!("{}/{}", std::env::consts::OS, if cfg!(target_arch = "x86_64") { "amd64" } else { std::env::consts::ARCH }),
            })),
            "/api" if discovery::wants_aggregated(accept) => {
                aggregated(discovery::aggregated_core())
            }
            "/api" => json(discovery::api_versions(&self.address)),
            "/apis" if discovery::wants_aggregated(accept) => {
                aggregated(discovery::aggregated_groups())
            }
            "/apis" => json(discovery::group_list()),
            "/openapi/v3" => json(openapi::index()),
            _ => {
                if let Some(rest) = path.strip_prefix("/openapi/v3/") {
                    let doc = openapi::document(rest).ok_or_else(ApiError::no_route)?;
                    return Ok(codec::bytes_response(
                        200,
                        "application/json",
                        doc.json.clone(),
                    ));
                }
                let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
                let found = match parts.as_slice() {
                    ["api", version] => discovery::resource_list("", version),
                    ["apis", group] => discovery::group(group),
                    ["apis", group, version] => discovery::resource_list(group, version),
                    _ => None,
                };
                found.map_or_else(|| Err(ApiError::no_route()), json)
            }
        }
    }
}

/// What a request asks, for authorization and the audit log (kube's RequestInfo).
fn attributes_of(route: &Route, method: &Method) -> Attributes {
    match route {
        Route::Resource(request) => Attributes {
            verb: request.verb.to_string(),
            resource_request: true,
            // A namespace's own requests are in that namespace, for RoleBindings there.
            namespace: match (&request.namespace, request.resource.as_str(), &request.name) {
                (Some(ns), _, _) => ns.clone(),
                (None, "namespaces", Some(name)) if request.group.is_empty() => name.clone(),
                _ => String::new(),
            },
            group: request.group.clone(),
            resource: request.resource.clone(),
            subresource: request.subresource.clone().unwrap_or_default(),
            name: request.name.clone().unwrap_or_default(),
            path: String::new(),
        },
        Route::NonResource(path) => {
            let verb = match *method {
                Method::GET | Method::HEAD => "get",
                Method::POST => "post",
                Method::PUT => "put",
                Method::PATCH => "patch",
                Method::DELETE => "delete",
                _ => "",
            };
            Attributes::path(verb, path)
        }
    }
}

fn text(body: &'static str) -> Response<Body> {
    codec::bytes_response(
        200,
        "text/plain; charset=utf-8",
        Bytes::from_static(body.as_bytes()),
    )
}
