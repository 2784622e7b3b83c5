//! Connections to the cluster's endpoints, the auth token, and the retry rules.
//!
//! Each endpoint has its own lazily connected channel. Calls go to the endpoint that
//! last worked; a call that fails with `Unavailable` moves on to the next endpoint and is
//! retried when that is safe: always for reads, for writes only when the request never
//! left the client (the connection could not be made). Attempts are bounded and backed
//! off. A token rejected as expired or stale is renewed once and the call repeated.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use ballast_proto::etcdserverpb::auth_client::AuthClient;
use ballast_proto::etcdserverpb::AuthenticateRequest;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Status};

use crate::error::{Error, Result};

/// Retries of one call at most, across endpoints.
pub const CALL_ATTEMPTS_MAX: usize = 5;
/// First wait between attempts; doubled each time up to [`RETRY_BACKOFF_MAX`].
pub const RETRY_BACKOFF_MIN: Duration = Duration::from_millis(25);
/// Longest wait between attempts.
pub const RETRY_BACKOFF_MAX: Duration = Duration::from_millis(1000);

/// etcd's messages meaning "authenticate again".
const TOKEN_INVALID: &str = "etcdserver: invalid auth token";
const AUTH_STORE_OLD: &str = "etcdserver: revision of auth store is old";

/// TLS settings: the CA that signs the servers' certificates, and optionally a client
/// certificate for servers that ask for one.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// PEM of the CA certificate(s) to trust.
    pub ca_pem: Option<Vec<u8>>,
    /// PEM of the client certificate and its key.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
    /// Name to verify the server certificate against (default: the endpoint's host).
    pub domain: Option<String>,
}

/// How a call may be retried after `Unavailable`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// A read: retry on any `Unavailable`.
    Read,
    /// A write: retry only if it never reached a server.
    Write,
}

/// Adds the auth token to every request.
#[derive(Clone, Default)]
pub(crate) struct TokenInterceptor {
    token: Arc<RwLock<Option<MetadataValue<Ascii>>>>,
}

impl tonic::service::Interceptor for TokenInterceptor {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(token) = self.token.read().expect("token lock poisoned").clone() {
            request.metadata_mut().insert("token", token);
        }
        Ok(request)
    }
}

/// The service every generated client is built on.
pub(crate) type Service = InterceptedService<Channel, TokenInterceptor>;

/// Endpoints, credentials and the call policy shared by a client and its clones.
pub(crate) struct Transport {
    endpoints: Vec<(String, Channel)>,
    preferred: AtomicUsize,
    tokens: TokenInterceptor,
    credentials: Option<(String, String)>,
    pub(crate) request_timeout: Duration,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.endpoints.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Transport")
            .field("endpoints", &names)
            .finish()
    }
}

/// Builds the endpoint for `text` (`host:port` or a URL).
pub(crate) fn endpoint(
    text: &str,
    connect_timeout: Duration,
    keep_alive: Option<(Duration, Duration)>,
    tls: Option<&TlsOptions>,
) -> Result<Endpoint> {
    let url = if text.contains("://") {
        text.to_string()
    } else if tls.is_some() {
        format!("https://{text}")
    } else {
        format!("http://{text}")
    };
    let mut endpoint = Endpoint::from_shared(url)
        .map_err(|_| Error::InvalidEndpoint(text.to_string()))?
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true);
    if let Some((interval, timeout)) = keep_alive {
        endpoint = endpoint
            .http2_keep_alive_interval(interval)
            .keep_alive_timeout(timeout)
            .keep_alive_while_idle(true);
    }
    if let Some(tls) = tls {
        let mut config = ClientTlsConfig::new();
        if let Some(ca) = &tls.ca_pem {
            config = config.ca_certificate(Certificate::from_pem(ca));
        }
        if let Some((cert, key)) = &tls.identity {
            config = config.identity(Identity::from_pem(cert, key));
        }
        if let Some(domain) = &tls.domain {
            config = config.domain_name(domain.clone());
        }
        endpoint = endpoint.tls_config(config)?;
    }
    Ok(endpoint)
}

/// True if the failure happened before the request reached any server: the client
/// could not connect. Only then is a write safe to send again elsewhere.
fn never_reached_server(status: &Status) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            if matches!(
                io.kind(),
                ConnectionRefused | AddrNotAvailable | NotFound | TimedOut
            ) {
                return true;
            }
        }
        let text = err.to_string();
        if text.contains("tcp connect error") || text.contains("error trying to connect") {
            return true;
        }
        source = err.source();
    }
    false
}

impl Transport {
    pub(crate) fn new(
        endpoints: Vec<(String, Endpoint)>,
        credentials: Option<(String, String)>,
        request_timeout: Duration,
    ) -> Self {
        Transport {
            endpoints: endpoints
                .into_iter()
                .map(|(name, e)| (name, e.connect_lazy()))
                .collect(),
            preferred: AtomicUsize::new(0),
            tokens: TokenInterceptor::default(),
            credentials,
            request_timeout,
        }
    }

    /// The endpoint to use now and its index.
    pub(crate) fn current(&self) -> (usize, Service) {
        let index = self.preferred.load(Ordering::Relaxed) % self.endpoints.len();
        let channel = self.endpoints[index].1.clone();
        (index, InterceptedService::new(channel, self.tokens.clone()))
    }

    /// Moves off endpoint `failed` (unless another caller already did).
    pub(crate) fn rotate(&self, failed: usize) {
        let next = (failed + 1) % self.endpoints.len();
        let _ = self
            .preferred
            .compare_exchange(failed, next, Ordering::Relaxed, Ordering::Relaxed);
    }

    pub(crate) fn endpoint_count(&self) -> usize {
        self.endpoints.len()
    }

    /// Obtains a token with the configured user and password (no-op without them).
    pub(crate) async fn authenticate(&self) -> Result<()> {
        let Some((name, password)) = &self.credentials else {
            return Ok(());
        };
        let mut last_error = Error::StreamClosed;
        for _ in 0..self.endpoint_count().max(1) {
            let (index, _) = self.current();
            let mut client = AuthClient::new(self.endpoints[index].1.clone());
            let request = AuthenticateRequest {
                name: name.clone(),
                password: password.clone(),
            };
            match tokio::time::timeout(self.request_timeout, client.authenticate(request)).await {
                Ok(Ok(response)) => {
                    let token = response.into_inner().token;
                    let value = MetadataValue::try_from(token.as_str()).map_err(|_| {
                        Error::InvalidEndpoint("server sent a malformed token".into())
                    })?;
                    *self.tokens.token.write().expect("token lock poisoned") = Some(value);
                    return Ok(());
                }
                Ok(Err(status)) if status.code() == Code::Unavailable => {
                    self.rotate(index);
                    last_error = status.into();
                }
                Ok(Err(status)) => return Err(status.into()),
                Err(_) => return Err(Error::timeout()),
            }
        }
        Err(last_error)
    }

    /// A status the transport made up (the connection broke mid-request) reads as
    /// `Cancelled` or `Unknown`; to a caller it means the same as for etcd's Go client:
    /// the member is unavailable, and the request may or may not have been applied.
    fn normalize(status: Status) -> Status {
        let from_transport = std::error::Error::source(&status).is_some();
        if from_transport && matches!(status.code(), Code::Cancelled | Code::Unknown) {
            return Status::unavailable(status.message().to_string());
        }
        status
    }

    /// A unary call of `req`, sent again (cloned) on every attempt [`Transport::call`]
    /// makes.
    pub(crate) async fn unary<Req, T, F, Fut>(&self, retry: Retry, req: Req, call: F) -> Result<T>
    where
        Req: Clone,
        F: Fn(Service, Req) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        self.call(retry, |service| call(service, req.clone())).await
    }

    /// Runs a unary call under the request timeout, with the retry rules of the module.
    pub(crate) async fn call<T, F, Fut>(&self, retry: Retry, mut call: F) -> Result<T>
    where
        F: FnMut(Service) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let mut backoff = RETRY_BACKOFF_MIN;
        let mut renewed_token = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (index, service) = self.current();
            let status = match tokio::time::timeout(self.request_timeout, call(service)).await {
                Ok(Ok(response)) => return Ok(response.into_inner()),
                Ok(Err(status)) => status,
                Err(_) => return Err(Error::timeout()),
            };
            // etcd sends the first as Unauthenticated, the second as InvalidArgument.
            let stale_token =
                status.message() == TOKEN_INVALID || status.message() == AUTH_STORE_OLD;
            if stale_token && self.credentials.is_some() && !renewed_token {
                renewed_token = true;
                self.authenticate().await?;
                continue;
            }
            let unsent = never_reached_server(&status);
            let status = Self::normalize(status);
            let retryable = status.code() == Code::Unavailable && (retry == Retry::Read || unsent);
            if !retryable || attempt >= CALL_ATTEMPTS_MAX {
                return Err(status.into());
            }
            tracing::debug!(endpoint = %self.endpoints[index].0, %status, "retrying on another endpoint");
            self.rotate(index);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
        }
    }

    /// Waits before reconnecting a stream, and moves to the next endpoint.
    pub(crate) async fn stream_backoff(&self, failed: usize, attempt: u32) {
        self.rotate(failed);
        let wait = RETRY_BACKOFF_MIN
            .saturating_mul(1 << attempt.min(6))
            .min(RETRY_BACKOFF_MAX);
        tokio::time::sleep(wait).await;
    }
}
