//! This member's outgoing peer connections over TLS: a connector for tonic's channels
//! that presents the peer certificate (as rotated on disk) and checks the peer's against
//! the peer CA.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use tonic::transport::{Channel, Endpoint};

use super::Reloading;

/// A channel to a peer at `urls`: over TLS through `tls` to the first URL when it is
/// https, else plain, balanced over every URL.
pub(crate) fn peer_channel(
    urls: &[String],
    tls: Option<&PeerConnector>,
    connect_timeout: std::time::Duration,
) -> Option<Channel> {
    let endpoint = |url: &str| {
        Endpoint::from_shared(url.to_string())
            .ok()
            .map(|e| e.connect_timeout(connect_timeout).tcp_nodelay(true))
    };
    let https = urls.first().is_some_and(|u| u.starts_with("https://"));
    if let (Some(tls), true) = (tls, https) {
        // The connector does the TLS; tonic sees a plain URL.
        let plain = urls[0].replacen("https://", "http://", 1);
        return Some(endpoint(&plain)?.connect_with_connector_lazy(tls.clone()));
    }
    let endpoints: Vec<Endpoint> = urls.iter().filter_map(|u| endpoint(u)).collect();
    match endpoints.as_slice() {
        [] => None,
        [one] => Some(one.connect_lazy()),
        _ => Some(Channel::balance_list(endpoints.into_iter())),
    }
}

/// Connects to a peer URL over TLS (tonic calls it with the URL as `http://`).
#[derive(Debug, Clone)]
pub(crate) struct PeerConnector {
    tls: Arc<Reloading<ClientConfig>>,
}

impl PeerConnector {
    pub(crate) fn new(tls: Arc<Reloading<ClientConfig>>) -> PeerConnector {
        PeerConnector { tls }
    }
}

type Connecting =
    Pin<Box<dyn Future<Output = std::io::Result<TokioIo<TlsStream<TcpStream>>>> + Send>>;

impl tower::Service<http::Uri> for PeerConnector {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = std::io::Error;
    type Future = Connecting;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let config = self.tls.current();
        Box::pin(async move {
            let invalid = |what: &str| {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, what.to_string())
            };
            let host = uri.host().ok_or_else(|| invalid("peer URL without host"))?;
            let port = uri
                .port_u16()
                .ok_or_else(|| invalid("peer URL without port"))?;
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let name = ServerName::try_from(host).map_err(|_| invalid("bad peer host name"))?;
            let tls = TlsConnector::from(config).connect(name, tcp).await?;
            Ok(TokioIo::new(tls))
        })
    }
}

/// Auto TLS: a peer's self-signed certificate vouches for nobody, so any is accepted
/// (etcd's peer auto TLS skips verification the same way); the link is still encrypted.
#[derive(Debug)]
pub(super) struct AnyServer {
    schemes: Vec<SignatureScheme>,
}

impl AnyServer {
    pub(super) fn new() -> AnyServer {
        AnyServer {
            schemes: rustls::crypto::ring::default_provider()
                .signature_verification_algorithms
                .supported_schemes(),
        }
    }
}

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &rustls::crypto::ring::default_provider().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &rustls::crypto::ring::default_provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes.clone()
    }
}
