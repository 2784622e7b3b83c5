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
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::Connected;

use super::{common_name, Reloading};
use crate::coalesced::Coalesced;
use crate::log_limit::{LogLimit, LOG_INTERVAL};

/// Time a client has to complete its TLS handshake, or to send its first bytes.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections being opened (TLS handshakes, first bytes) at once per socket; more wait
/// in the accept backlog.
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

/// A plain or TLS connection, holding its place among the listener's connections.
#[derive(Debug)]
pub(crate) struct Conn {
    stream: Stream,
    certificate: Option<CertificateName>,
    _slot: OwnedSemaphorePermit,
}

#[derive(Debug)]
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connected for Conn {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> ConnInfo {
        ConnInfo {
            certificate: self.certificate.clone(),
        }
    }
}

/// Connections a client listener keeps open at most; past it, new ones wait in the
/// accept backlog until one closes.
pub(crate) const CLIENT_CONNECTIONS_MAX: usize = 4096;
/// Connections a peer listener keeps open at most: a member has a few per peer.
pub(crate) const PEER_CONNECTIONS_MAX: usize = 256;

/// Connections accepted on `listener` until `shutdown`: TLS ones when `tls` is set, at
/// most `connections_max` open at once, each writing what it is given at flushes.
pub(crate) fn incoming(
    listener: TcpListener,
    tls: Option<Arc<Reloading<ServerConfig>>>,
    connections_max: usize,
    shutdown: CancellationToken,
) -> ReceiverStream<io::Result<Coalesced<Conn>>> {
    let (accepted, stream) = mpsc::channel(ACCEPTED_QUEUE);
    tokio::spawn(async move {
        let handshakes = Arc::new(Semaphore::new(HANDSHAKES_MAX));
        let slots = Arc::new(Semaphore::new(connections_max));
        loop {
            let (slot, permit) = tokio::select! {
                _ = shutdown.cancelled() => return,
                permits = async {
                    let slot = slots.clone().acquire_owned().await;
                    let permit = handshakes.clone().acquire_owned().await;
                    (slot, permit)
                } => match permits {
                    (Ok(slot), Ok(permit)) => (slot, permit),
                    _ => return,
                },
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
            let tls = tls
                .as_ref()
                .map(|tls| (tls.current(), tls.settings().allowed_cn.clone()));
            let accepted = accepted.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let opened = match tls {
                    None => first_bytes(tcp).await.map(|tcp| (Stream::Plain(tcp), None)),
                    Some((config, allowed_cn)) => handshake(tcp, config, allowed_cn).await,
                };
                match opened {
                    Ok((stream, certificate)) => {
                        let conn = Conn {
                            stream,
                            certificate,
                            _slot: slot,
                        };
                        let _ = accepted.send(Ok(Coalesced::new(conn))).await;
                    }
                    Err(why) => tracing::debug!(%remote, "connection dropped: {why}"),
                }
            });
        }
    });
    ReceiverStream::new(stream)
}

/// A plain connection that sends nothing within the handshake time is dropped: it would
/// hold a slot for nothing.
async fn first_bytes(tcp: TcpStream) -> Result<TcpStream, String> {
    // `readable` may wake spuriously; a peek waits for a byte (or the end).
    let mut first = [0u8; 1];
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, tcp.peek(&mut first)).await {
        Ok(Ok(_)) => Ok(tcp),
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err("nothing sent within the handshake time".into()),
    }
}

/// The TLS handshake, within its time, and the allowed-CN check.
async fn handshake(
    tcp: TcpStream,
    config: Arc<ServerConfig>,
    allowed_cn: Option<String>,
) -> Result<(Stream, Option<CertificateName>), String> {
    let handshake = TlsAcceptor::from(config).accept(tcp);
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(err)) => return Err(format!("TLS handshake failed: {err}")),
        Err(_) => return Err("TLS handshake timed out".into()),
    };
    let name = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|cert| common_name(cert));
    if let Some(allowed) = &allowed_cn {
        if name.as_deref() != Some(allowed) {
            if let Some(held_back) = REFUSED_CN_LOG.admit() {
                tracing::warn!(cn = ?name, %allowed, held_back, "refused a peer certificate with another CN");
            }
            return Err("certificate with another CN".into());
        }
    }
    Ok((Stream::Tls(Box::new(stream)), name.map(CertificateName)))
}

/// Refused certificates: logged at most once per interval (anyone can present one).
static REFUSED_CN_LOG: LogLimit = LogLimit::new(LOG_INTERVAL);

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().stream {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().stream {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.stream {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
