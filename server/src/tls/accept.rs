//! Accepting connections on a client or peer socket: plain TCP, or TLS handshakes run
//! concurrently (one slow client holds up no one), each within a time limit and with a
//! bound on how many run at once. What comes out is one connection type for tonic,
//! carrying the client certificate's common name when there is one.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::Connected;

use super::{common_name, Reloading};

/// Time a client has to complete its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// TLS handshakes in progress at once per socket; more wait in the accept backlog.
const HANDSHAKES_MAX: usize = 256;
/// Accepted connections not yet taken by the server.
const ACCEPTED_QUEUE: usize = 64;

/// The client certificate's common name: the user of a request without a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CertificateName(pub(crate) String);

/// What the server knows of a connection: in each request's extensions.
#[derive(Debug, Clone)]
pub(crate) struct ConnInfo {
    pub(crate) certificate: Option<CertificateName>,
}

/// A plain or TLS connection.
#[derive(Debug)]
pub(crate) enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>, Option<CertificateName>),
}

impl Connected for Conn {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> ConnInfo {
        match self {
            Conn::Plain(_) => ConnInfo { certificate: None },
            Conn::Tls(_, name) => ConnInfo {
                certificate: name.clone(),
            },
        }
    }
}

/// Connections accepted on `listener` until `shutdown`: TLS ones when `tls` is set.
pub(crate) fn incoming(
    listener: TcpListener,
    tls: Option<Arc<Reloading<ServerConfig>>>,
    shutdown: CancellationToken,
) -> ReceiverStream<io::Result<Conn>> {
    let (accepted, stream) = mpsc::channel(ACCEPTED_QUEUE);
    tokio::spawn(async move {
        let handshakes = Arc::new(Semaphore::new(HANDSHAKES_MAX));
        loop {
            let permit = tokio::select! {
                _ = shutdown.cancelled() => return,
                permit = handshakes.clone().acquire_owned() => permit.expect("never closed"),
            };
            let (tcp, remote) = tokio::select! {
                _ = shutdown.cancelled() => return,
                conn = listener.accept() => match conn {
                    Ok(conn) => conn,
                    Err(err) => {
                        // Out of file descriptors and the like: back off, do not spin.
                        tracing::warn!(%err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let _ = tcp.set_nodelay(true);
            let Some(tls) = &tls else {
                drop(permit);
                if accepted.send(Ok(Conn::Plain(tcp))).await.is_err() {
                    return;
                }
                continue;
            };
            let config = tls.current();
            let allowed_cn = tls.settings().allowed_cn.clone();
            let accepted = accepted.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let handshake = TlsAcceptor::from(config).accept(tcp);
                let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(err)) => {
                        tracing::debug!(%remote, %err, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%remote, "TLS handshake timed out");
                        return;
                    }
                };
                let name = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .and_then(|cert| common_name(cert));
                if let Some(allowed) = &allowed_cn {
                    if name.as_deref() != Some(allowed) {
                        tracing::warn!(%remote, cn = ?name, %allowed, "refused a peer certificate with another CN");
                        return;
                    }
                }
                let conn = Conn::Tls(Box::new(stream), name.map(CertificateName));
                let _ = accepted.send(Ok(conn)).await;
            });
        }
    });
    ReceiverStream::new(stream)
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s, _) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s, _) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Tls(s, _) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(s) => s.is_write_vectored(),
            Conn::Tls(s, _) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s, _) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s, _) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
