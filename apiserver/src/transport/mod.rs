//! Transport: HTTPS (HTTP/2 and HTTP/1.1) connections, the request's route and its body's
//! encoding. What it hands on is a parsed request; what it writes back is JSON, YAML or a
//! stream of watch events.

pub mod codec;
pub mod protobuf;
pub mod request;
pub mod tls;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

/// Every response body: whole, or streamed (watches).
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Connections served at once; more wait in the accept backlog.
pub const CONNECTIONS_MAX: usize = 4096;
/// Time a client has to complete its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the server knows of a connection.
#[derive(Debug, Clone, Default)]
pub struct Peer {
    /// The client's address.
    pub address: Option<SocketAddr>,
    /// The verified client certificate chain's first certificate (DER), if one was sent.
    pub certificate: Option<Vec<u8>>,
}

/// Serves `listener` with TLS until the process ends; each request goes to `handle`.
pub async fn serve<H, F>(listener: TcpListener, tls: rustls::ServerConfig, handle: H)
where
    H: Fn(hyper::Request<Incoming>, Arc<Peer>) -> F + Clone + Send + Sync + 'static,
    F: std::future::Future<Output = hyper::Response<Body>> + Send + 'static,
{
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let slots = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (socket, address) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        let acceptor = acceptor.clone();
        let handle = handle.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let stream =
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(socket)).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(error)) => {
                        tracing::debug!(%address, %error, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
            let certificate = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|c| c.to_vec());
            let peer = Arc::new(Peer {
                address: Some(address),
                certificate,
            });
            let service = hyper::service::service_fn(move |request| {
                let response = handle(request, peer.clone());
                async move { Ok::<_, Infallible>(response.await) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(error) = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%address, %error, "connection ended");
            }
        });
    }
}
