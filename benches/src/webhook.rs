//! Two admission webhooks for the API benchmark, served over HTTPS in-process: `/mutate`
//! adds a label with a JSON patch, `/validate` allows. Their certificate comes from a CA
//! made here, handed to the API server as the configurations' caBundle. Each counts its
//! calls, so the benchmark can tell that every create went through both.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::kube::Result;

/// The label the mutating webhook adds.
pub const LABEL: &str = "bench-mutated";

/// The running webhooks.
#[derive(Debug)]
pub struct Webhooks {
    /// Where they listen.
    pub port: u16,
    /// The PEM of the CA their certificate chains to.
    pub ca_pem: String,
    calls: Arc<[AtomicU64; 2]>,
    connections: Arc<AtomicU64>,
}

fn answer(path: &str, review: &Value) -> Value {
    let mut response = json!({ "uid": review["request"]["uid"], "allowed": true });
    if path == "/mutate" {
        let labels = &review["request"]["object"]["metadata"]["labels"];
        let patch = if labels.is_object() {
            json!([{ "op": "add", "path": format!("/metadata/labels/{LABEL}"), "value": "yes" }])
        } else {
            json!([{ "op": "add", "path": "/metadata/labels", "value": { LABEL: "yes" } }])
        };
        response["patchType"] = json!("JSONPatch");
        response["patch"] =
            json!(base64::engine::general_purpose::STANDARD.encode(patch.to_string()));
    }
    json!({ "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response })
}

async fn serve(
    request: Request<Incoming>,
    calls: Arc<[AtomicU64; 2]>,
) -> std::result::Result<Response<Full<Bytes>>, hyper::Error> {
    let path = request.uri().path().to_string();
    let body = request.into_body().collect().await?.to_bytes();
    let review: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    calls[usize::from(path == "/validate")].fetch_add(1, Ordering::Relaxed);
    Ok(Response::builder()
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(answer(&path, &review).to_string())))
        .expect("a response"))
}

impl Webhooks {
    /// Starts both on a free port of 127.0.0.1.
    pub async fn start() -> Result<Webhooks> {
        let (ca_pem, chain, key) = certificates().map_err(|e| e.to_string())?;
        let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| e.to_string())?;
        let acceptor = TlsAcceptor::from(Arc::new(tls));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let calls: Arc<[AtomicU64; 2]> = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        let counted = calls.clone();
        let connections = Arc::new(AtomicU64::new(0));
        let accepted = connections.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::Relaxed);
                let _ = tcp.set_nodelay(true);
                let (acceptor, calls) = (acceptor.clone(), counted.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |r| serve(r, calls.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Ok(Webhooks {
            port,
            ca_pem,
            calls,
            connections,
        })
    }

    /// Calls to (`/mutate`, `/validate`) so far.
    pub fn calls(&self) -> (u64, u64) {
        (
            self.calls[0].load(Ordering::Relaxed),
            self.calls[1].load(Ordering::Relaxed),
        )
    }

    /// Connections the API server opened to them so far.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// The Mutating and Validating WebhookConfiguration objects, for creates of
    /// configmaps in `namespace`, failurePolicy Fail.
    pub fn configurations(&self, namespace: &str) -> [(&'static str, Value); 2] {
        let bundle = base64::engine::general_purpose::STANDARD.encode(&self.ca_pem);
        let config = |kind: &str, name: &str, path: &str| {
            json!({
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": kind,
                "metadata": { "name": name },
                "webhooks": [{
                    "name": name,
                    "clientConfig": {
                        "url": format!("https://127.0.0.1:{}{path}", self.port),
                        "caBundle": bundle,
                    },
                    "rules": [{
                        "operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                        "resources": ["configmaps"],
                    }],
                    "namespaceSelector": {
                        "matchLabels": { "kubernetes.io/metadata.name": namespace },
                    },
                    "failurePolicy": "Fail",
                    "sideEffects": "None",
                    "admissionReviewVersions": ["v1"],
                    "timeoutSeconds": 5,
                }],
            })
        };
        [
            (
                "mutatingwebhookconfigurations",
                config(
                    "MutatingWebhookConfiguration",
                    "label.bench.ballast",
                    "/mutate",
                ),
            ),
            (
                "validatingwebhookconfigurations",
                config(
                    "ValidatingWebhookConfiguration",
                    "allow.bench.ballast",
                    "/validate",
                ),
            ),
        ]
    }
}

type Certificates = (
    String,
    Vec<rustls::pki_types::CertificateDer<'static>>,
    rustls::pki_types::PrivateKeyDer<'static>,
);

/// A CA and a certificate for 127.0.0.1 it signs.
fn certificates() -> std::result::Result<Certificates, rcgen::Error> {
    let ca_key = rcgen::KeyPair::generate()?;
    let mut ca = rcgen::CertificateParams::new(Vec::new())?;
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "bench webhook CA");
    let ca = ca.self_signed(&ca_key)?;
    let key = rcgen::KeyPair::generate()?;
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])?
        .signed_by(&key, &ca, &ca_key)?;
    Ok((
        ca.pem(),
        vec![leaf.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    ))
}
