//! Leases: grant, revoke, time-to-live, list, and a keep-alive handle that renews in the
//! background until dropped.

use std::time::Duration;

use ballast_proto::etcdserverpb as pb;
use std::sync::Arc;

use ballast_proto::etcdserverpb::lease_client::LeaseClient;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;

use crate::error::{Error, Result};
use crate::transport::Transport;
use crate::types::Header;

/// Answer to a lease grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseGrantResponse {
    /// The responding member and the store revision.
    pub header: Header,
    /// The lease id.
    pub id: i64,
    /// The TTL the server granted (it may raise a small request to its minimum).
    pub ttl: i64,
}

/// Answer to a time-to-live query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseTimeToLiveResponse {
    /// The responding member and the store revision.
    pub header: Header,
    /// The lease id.
    pub id: i64,
    /// Remaining seconds; -1 if the lease does not exist.
    pub ttl: i64,
    /// The TTL the lease was granted with.
    pub granted_ttl: i64,
    /// Keys attached to the lease, when asked for.
    pub keys: Vec<bytes::Bytes>,
}

/// The state a keep-alive reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseState {
    /// Renewed; the TTL the server answered.
    Alive(i64),
    /// Expired or revoked: keys attached to it are gone.
    Lost,
}

/// Keeps a lease alive until dropped.
#[derive(Debug)]
pub struct KeepAlive {
    id: i64,
    state: watch::Receiver<LeaseState>,
    task: JoinHandle<()>,
}

impl KeepAlive {
    /// The lease id.
    pub fn id(&self) -> i64 {
        self.id
    }

    /// The latest state.
    pub fn state(&self) -> LeaseState {
        self.state.borrow().clone()
    }

    /// Resolves when the lease is lost, with the error to report.
    pub async fn lost(&mut self) -> Error {
        let id = self.id;
        let _ = self.state.wait_for(|s| *s == LeaseState::Lost).await;
        Error::LeaseLost(id)
    }
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How long to wait between renewals of a lease with this TTL: a third of it, as the Go
/// client does, so two renewals may fail before the lease expires.
fn renew_interval(ttl: i64) -> Duration {
    Duration::from_millis((ttl.max(1) as u64 * 1000) / 3)
}

/// Keep-alive requests queued on the stream.
const KEEPALIVE_QUEUE_CAPACITY: usize = 4;
/// Wait after a broken keep-alive stream before reconnecting.
const KEEPALIVE_RETRY_DELAY: Duration = Duration::from_millis(200);

pub(crate) async fn keep_alive(transport: Arc<Transport>, id: i64) -> Result<KeepAlive> {
    // The first renewal happens before returning, so an unknown lease fails here.
    let (requests, responses, ttl) = open_stream(&transport, id).await?;
    if ttl <= 0 {
        return Err(Error::LeaseLost(id));
    }
    let (mut requests, mut responses) = (Some(requests), Some(responses));
    let (state_tx, state) = watch::channel(LeaseState::Alive(ttl));
    let task = tokio::spawn(async move {
        let mut wait = renew_interval(ttl);
        loop {
            tokio::time::sleep(wait).await;
            let renewed = match &mut requests {
                Some(requests) => {
                    renew_once(requests, responses.as_mut().expect("opened together"), id).await
                }
                None => Err(Error::StreamClosed),
            };
            let renewed = match renewed {
                Err(err) => {
                    // The stream broke: reconnect (elsewhere if need be), renewing on the
                    // new stream. If the lease expired meanwhile, that reports it lost.
                    tracing::debug!(%err, lease = id, "keep-alive stream broke; reconnecting");
                    let (index, _) = transport.current();
                    transport.rotate(index);
                    match open_stream(&transport, id).await {
                        Ok((r, s, ttl)) => {
                            (requests, responses) = (Some(r), Some(s));
                            Ok(ttl)
                        }
                        Err(err) => {
                            (requests, responses) = (None, None);
                            Err(err)
                        }
                    }
                }
                ok => ok,
            };
            match renewed {
                Ok(ttl) if ttl > 0 => {
                    wait = renew_interval(ttl);
                    state_tx.send_replace(LeaseState::Alive(ttl));
                }
                Ok(_) => {
                    state_tx.send_replace(LeaseState::Lost);
                    return;
                }
                Err(err) => {
                    tracing::debug!(%err, lease = id, "keep-alive reconnect failed; retrying");
                    wait = KEEPALIVE_RETRY_DELAY;
                }
            }
        }
    });
    Ok(KeepAlive { id, state, task })
}

type Responses = tonic::Streaming<pb::LeaseKeepAliveResponse>;
type Requests = mpsc::Sender<pb::LeaseKeepAliveRequest>;

/// Opens a keep-alive stream with a first renewal already in it: a server may hold its
/// response headers back until it has an answer to send (etcd does). Returns the
/// stream and the TTL of that first renewal.
async fn open_stream(transport: &Transport, id: i64) -> Result<(Requests, Responses, i64)> {
    let (_, service) = transport.current();
    let mut client = LeaseClient::new(service);
    let (requests, outbound) = mpsc::channel(KEEPALIVE_QUEUE_CAPACITY);
    requests
        .send(pb::LeaseKeepAliveRequest { id })
        .await
        .map_err(|_| Error::StreamClosed)?;
    let mut responses = client
        .lease_keep_alive(ReceiverStream::new(outbound))
        .await?
        .into_inner();
    let ttl = match responses.message().await? {
        Some(response) => response.ttl,
        None => return Err(Error::StreamClosed),
    };
    Ok((requests, responses, ttl))
}

async fn renew_once(requests: &mut Requests, responses: &mut Responses, id: i64) -> Result<i64> {
    requests
        .send(pb::LeaseKeepAliveRequest { id })
        .await
        .map_err(|_| Error::StreamClosed)?;
    match responses.message().await? {
        Some(response) => Ok(response.ttl),
        None => Err(Error::StreamClosed),
    }
}
