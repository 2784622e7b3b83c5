//! How webhooks are reached: `clientConfig.url`, or `clientConfig.service` resolved
//! through the Service's Endpoints (there is no cluster network to route a cluster IP;
//! kube-apiserver does the same with --enable-aggregator-routing), over TLS trusted
//! through the caBundle, the server name `<service>.<namespace>.svc` for services.
//! Connections are kept: one TLS configuration per caBundle and idle HTTP/1.1
//! connections per endpoint, so a call costs a request, not a TCP and TLS handshake
//! (kube-apiserver's webhook client manager keeps its clients the same way).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::resources;
use crate::watch::Caches;

/// Idle connections kept per webhook endpoint.
const IDLE_PER_ENDPOINT: usize = 32;
/// Endpoints (and caBundles) connections and TLS configurations are kept for; past
/// this the least useful state, all of it, is dropped and rebuilt on demand.
const ENDPOINTS_MAX: usize = 256;
/// The largest AdmissionReview answer read.
const RESPONSE_BYTES_MAX: usize = 3 * 1024 * 1024;
/// The port of `clientConfig.service` when it names none.
const SERVICE_PORT_DEFAULT: i64 = 443;

/// Where one call goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Target {
    /// The address dialled.
    host: String,
    port: u16,
    /// The name the certificate must carry.
    server_name: String,
    /// The Host header.
    authority: String,
    /// The request path.
    path: String,
    /// The PEM bundle trusted.
    bundle: Vec<u8>,
}

/// The connection-independent part of a target: what a kept connection serves.
type Endpoint = (String, u16, String, Vec<u8>);

fn endpoint(target: &Target) -> Endpoint {
    (
        target.host.clone(),
        target.port,
        target.server_name.clone(),
        target.bundle.clone(),
    )
}

fn ca_bundle(config: &Value) -> Result<Vec<u8>, String> {
    config
        .get("caBundle")
        .and_then(Value::as_str)
        .map(|b| base64::engine::general_purpose::STANDARD.decode(b))
        .transpose()
        .map_err(|_| "caBundle is not base64".to_string())?
        .ok_or_else(|| "no caBundle to trust the webhook with".to_string())
}

fn from_url(url: &str, bundle: Vec<u8>) -> Result<Target, String> {
    let rest = url
        .strip_prefix("https://")
        .ok_or("the webhook URL must be https")?;
    let (authority, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(a, p)| (a, format!("/{p}")));
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (
            h.trim_matches(['[', ']']),
            p.parse::<u16>().map_err(|_| "a bad port")?,
        ),
        None => (authority, 443),
    };
    Ok(Target {
        host: host.to_string(),
        port,
        server_name: host.to_string(),
        authority: authority.to_string(),
        path,
        bundle,
    })
}

/// A service reference resolved through its Service's port and its Endpoints.
fn from_service(caches: &Caches, service: &Value, bundle: Vec<u8>) -> Result<Target, String> {
    let text = |k: &str| service.get(k).and_then(Value::as_str).unwrap_or_default();
    let (namespace, name) = (text("namespace"), text("name"));
    let port = service
        .get("port")
        .and_then(Value::as_i64)
        .unwrap_or(SERVICE_PORT_DEFAULT);
    let find = |plural: &str| {
        let resource = resources::find("", "v1", plural).expect("served");
        caches.of(resource).get(&format!("{namespace}/{name}"))
    };
    let svc = find("services").ok_or_else(|| format!("service {name:?} not found"))?;
    let service_port = svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|p| p.get("port").and_then(Value::as_i64) == Some(port))
        .ok_or_else(|| format!("no service port {port} found for service {name:?}"))?;
    let port_name = service_port.get("name").and_then(Value::as_str);
    let no_endpoints = || format!("no endpoints available for service {name:?}");
    let endpoints = find("endpoints").ok_or_else(no_endpoints)?;
    // The first ready address of the subset that carries the service port.
    let (ip, target_port) = endpoints
        .get("subsets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find_map(|subset| {
            let ip = subset.pointer("/addresses/0/ip").and_then(Value::as_str)?;
            let port = subset
                .get("ports")
                .and_then(Value::as_array)?
                .iter()
                .find(|p| {
                    port_name.is_none() || p.get("name").and_then(Value::as_str) == port_name
                })?
                .get("port")
                .and_then(Value::as_u64)?;
            Some((ip.to_string(), u16::try_from(port).ok()?))
        })
        .ok_or_else(no_endpoints)?;
    let server_name = format!("{name}.{namespace}.svc");
    let path = match text("path") {
        "" => "/".to_string(),
        p if p.starts_with('/') => p.to_string(),
        p => format!("/{p}"),
    };
    Ok(Target {
        host: ip,
        port: target_port,
        authority: format!("{server_name}:{port}"),
        server_name,
        path,
        bundle,
    })
}

/// Where a webhook's `clientConfig` sends its calls.
pub(crate) fn target(caches: &Caches, config: &Value) -> Result<Target, String> {
    let bundle = ca_bundle(config)?;
    match (
        config.get("url").and_then(Value::as_str),
        config.get("service"),
    ) {
        (Some(url), _) => from_url(url, bundle),
        (None, Some(service)) => from_service(caches, service, bundle),
        (None, None) => Err("the webhook's clientConfig names neither url nor service".into()),
    }
}

type Sender = SendRequest<Full<Bytes>>;

/// How a call failed.
enum Failed {
    /// Before an answer began: on a kept connection, worth asking again on a new one.
    Unanswered(String),
    /// The webhook answered (or the request could not be made): final.
    Answered(String),
}

impl Failed {
    fn into_text(self) -> String {
        match self {
            Failed::Unanswered(e) | Failed::Answered(e) => e,
        }
    }
}

/// TLS configurations and idle connections, shared by every call.
#[derive(Default)]
pub struct WebhookClients {
    tls: Mutex<HashMap<Vec<u8>, Arc<rustls::ClientConfig>>>,
    idle: Mutex<HashMap<Endpoint, Vec<Sender>>>,
}

impl std::fmt::Debug for WebhookClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookClients").finish_non_exhaustive()
    }
}

impl WebhookClients {
    fn tls(&self, bundle: &[u8]) -> Result<Arc<rustls::ClientConfig>, String> {
        if let Some(config) = self.tls.lock().expect("tls lock").get(bundle) {
            return Ok(config.clone());
        }
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(bundle) {
            roots
                .add(cert.map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        }
        let config = Arc::new(
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth(),
        );
        let mut all = self.tls.lock().expect("tls lock");
        if all.len() >= ENDPOINTS_MAX {
            all.clear();
        }
        all.insert(bundle.to_vec(), config.clone());
        Ok(config)
    }

    async fn connect(&self, target: &Target) -> Result<Sender, String> {
        let tls = self.tls(&target.bundle)?;
        let tcp = TcpStream::connect((target.host.as_str(), target.port))
            .await
            .map_err(|e| format!("dial tcp {}:{}: {e}", target.host, target.port))?;
        let _ = tcp.set_nodelay(true);
        let name = ServerName::try_from(target.server_name.clone()).map_err(|e| e.to_string())?;
        let stream = TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        // Ends when the sender is dropped or the webhook closes the connection.
        tokio::spawn(connection);
        Ok(sender)
    }

    fn take(&self, key: &Endpoint) -> Option<Sender> {
        let mut idle = self.idle.lock().expect("idle lock");
        let senders = idle.get_mut(key)?;
        // Closed ones (the webhook hung up) are dropped on the way.
        std::iter::from_fn(|| senders.pop()).find(|s| s.is_ready())
    }

    fn give_back(&self, key: Endpoint, sender: Sender) {
        if !sender.is_ready() {
            return;
        }
        let mut idle = self.idle.lock().expect("idle lock");
        if idle.len() >= ENDPOINTS_MAX && !idle.contains_key(&key) {
            idle.clear();
        }
        let senders = idle.entry(key).or_default();
        if senders.len() < IDLE_PER_ENDPOINT {
            senders.push(sender);
        }
    }

    /// One request on `sender`; the status and body, and the sender to keep. The
    /// error says whether the webhook got to answer (an answer is never asked twice).
    async fn send(
        target: &Target,
        mut sender: Sender,
        body: Bytes,
    ) -> Result<(http::StatusCode, Bytes, Sender), Failed> {
        let request = http::Request::post(target.path.as_str())
            .header(http::header::HOST, target.authority.as_str())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json")
            .body(Full::new(body))
            .map_err(|e| Failed::Answered(e.to_string()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| Failed::Unanswered(e.to_string()))?;
        let status = response.status();
        let body = http_body_util::Limited::new(response.into_body(), RESPONSE_BYTES_MAX)
            .collect()
            .await
            .map_err(|e| Failed::Answered(e.to_string()))?
            .to_bytes();
        Ok((status, body, sender))
    }

    /// Posts `body` to the target; the answer's body.
    pub(crate) async fn post(&self, target: &Target, body: Bytes) -> Result<Bytes, String> {
        let key = endpoint(target);
        // A kept connection the webhook closed meanwhile fails at once: then once more on
        // a new one (the review was not answered, so it is asked again).
        let kept = match self.take(&key) {
            Some(sender) => match Self::send(target, sender, body.clone()).await {
                Ok(done) => Some(done),
                Err(Failed::Unanswered(_)) => None,
                Err(Failed::Answered(e)) => return Err(e),
            },
            None => None,
        };
        let (status, answer, sender) = match kept {
            Some(done) => done,
            None => Self::send(target, self.connect(target).await?, body)
                .await
                .map_err(Failed::into_text)?,
        };
        self.give_back(key, sender);
        if !status.is_success() {
            return Err(format!("the webhook answered HTTP {status}"));
        }
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_host_port_and_path() {
        let t = from_url("https://127.0.0.1:8443/validate?x=1", b"pem".to_vec()).unwrap();
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 8443));
        assert_eq!(t.path, "/validate?x=1");
        assert_eq!(t.authority, "127.0.0.1:8443");
        let t = from_url("https://hooks.example.com", vec![]).unwrap();
        assert_eq!(
            (t.server_name.as_str(), t.port, t.path.as_str()),
            ("hooks.example.com", 443, "/")
        );
        assert!(from_url("http://127.0.0.1/", vec![]).is_err());
        assert!(from_url("https://127.0.0.1:x/", vec![]).is_err());
    }
}
