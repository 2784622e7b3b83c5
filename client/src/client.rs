//! The client: connection, and every call of the API as a method.

use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ballast_proto::etcdserverpb as pb;
use ballast_proto::etcdserverpb::cluster_client::ClusterClient;
use ballast_proto::etcdserverpb::kv_client::KvClient;
use ballast_proto::etcdserverpb::lease_client::LeaseClient;
use ballast_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use ballast_proto::etcdserverpb::watch_client::WatchClient;
use bytes::Bytes;
use tokio::sync::{mpsc, Mutex};
use tonic::transport::{Channel, Endpoint};

use crate::error::{Error, Result};
use crate::kv::{DeleteOptions, DeleteResponse, GetOptions, GetResponse, PutOptions, PutResponse};
use crate::lease::{self, KeepAlive, LeaseGrantResponse, LeaseTimeToLiveResponse};
use crate::maintenance::{HashKvResponse, Member, StatusResponse};
use crate::txn::{Txn, TxnResponse};
use crate::types::Header;
use crate::watch::{self, Command, WatchOptions, WatchStream, Watcher};

/// Largest response the client accepts (the Go client's default is also 2 GiB).
pub const RESPONSE_BYTES_MAX: usize = i32::MAX as usize;

/// How to connect.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Time allowed to establish a connection.
    pub connect_timeout: Duration,
    /// Time allowed for one unary call (streams are not limited).
    pub request_timeout: Duration,
    /// HTTP/2 keep-alive ping interval and timeout; None disables pings.
    pub keep_alive: Option<(Duration, Duration)>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            keep_alive: Some((Duration::from_secs(30), Duration::from_secs(10))),
        }
    }
}

impl ConnectOptions {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }
    pub fn with_keep_alive(mut self, interval: Duration, timeout: Duration) -> Self {
        self.keep_alive = Some((interval, timeout));
        self
    }
}

/// A client of one cluster. Cheap to clone; clones share connections and the watch
/// stream.
#[derive(Debug, Clone)]
pub struct Client {
    channel: Channel,
    options: Arc<ConnectOptions>,
    watch: Arc<Mutex<Option<mpsc::Sender<Command>>>>,
    next_watch_id: Arc<AtomicI64>,
}

fn endpoint(text: &str, options: &ConnectOptions) -> Result<Endpoint> {
    let url = if text.contains("://") {
        text.to_string()
    } else {
        format!("http://{text}")
    };
    let mut endpoint = Endpoint::from_shared(url)
        .map_err(|_| Error::InvalidEndpoint(text.to_string()))?
        .connect_timeout(options.connect_timeout)
        .tcp_nodelay(true);
    if let Some((interval, timeout)) = options.keep_alive {
        endpoint = endpoint
            .http2_keep_alive_interval(interval)
            .keep_alive_timeout(timeout)
            .keep_alive_while_idle(true);
    }
    Ok(endpoint)
}

impl Client {
    /// Connects to the cluster at `endpoints` (`host:port` or `http://host:port`). With
    /// several endpoints, requests are spread over the reachable ones.
    pub async fn connect<E: AsRef<str>>(
        endpoints: impl IntoIterator<Item = E>,
        options: ConnectOptions,
    ) -> Result<Client> {
        let endpoints = endpoints
            .into_iter()
            .map(|e| endpoint(e.as_ref(), &options))
            .collect::<Result<Vec<_>>>()?;
        let channel = match endpoints.as_slice() {
            [] => return Err(Error::InvalidEndpoint(String::new())),
            [only] => only.connect().await?,
            _ => Channel::balance_list(endpoints.into_iter()),
        };
        Ok(Client {
            channel,
            options: Arc::new(options),
            watch: Arc::new(Mutex::new(None)),
            next_watch_id: Arc::new(AtomicI64::new(1)),
        })
    }

    fn kv_client(&self) -> KvClient<Channel> {
        KvClient::new(self.channel.clone()).max_decoding_message_size(RESPONSE_BYTES_MAX)
    }

    fn lease_client(&self) -> LeaseClient<Channel> {
        LeaseClient::new(self.channel.clone()).max_decoding_message_size(RESPONSE_BYTES_MAX)
    }

    fn maintenance_client(&self) -> MaintenanceClient<Channel> {
        MaintenanceClient::new(self.channel.clone()).max_decoding_message_size(RESPONSE_BYTES_MAX)
    }

    /// Runs one unary call under the request timeout.
    async fn unary<T>(
        &self,
        call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.options.request_timeout, call).await {
            Ok(result) => Ok(result?.into_inner()),
            Err(_) => Err(Error::Status {
                code: tonic::Code::DeadlineExceeded,
                message: "client: request timed out".into(),
            }),
        }
    }

    // ------------------------------------------------------------------ KV

    /// Reads a key, or a range of keys (see [`GetOptions`]).
    pub async fn get(&self, key: impl AsRef<[u8]>, options: GetOptions) -> Result<GetResponse> {
        let req = options.request(Bytes::copy_from_slice(key.as_ref()));
        Ok(self.unary(self.kv_client().range(req)).await?.into())
    }

    /// Writes a key.
    pub async fn put(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        options: PutOptions,
    ) -> Result<PutResponse> {
        let req = options.request(
            Bytes::copy_from_slice(key.as_ref()),
            Bytes::copy_from_slice(value.as_ref()),
        );
        Ok(self.unary(self.kv_client().put(req)).await?.into())
    }

    /// Deletes a key, or a range of keys.
    pub async fn delete(
        &self,
        key: impl AsRef<[u8]>,
        options: DeleteOptions,
    ) -> Result<DeleteResponse> {
        let req = options.request(Bytes::copy_from_slice(key.as_ref()));
        Ok(self.unary(self.kv_client().delete_range(req)).await?.into())
    }

    /// Runs a transaction.
    pub async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        Ok(self
            .unary(self.kv_client().txn(txn.into_request()))
            .await?
            .into())
    }

    /// Drops history below `revision`; with `physical`, answers once it is gone from disk.
    pub async fn compact(&self, revision: i64, physical: bool) -> Result<Header> {
        let req = pb::CompactionRequest { revision, physical };
        Ok(self
            .unary(self.kv_client().compact(req))
            .await?
            .header
            .into())
    }

    // ------------------------------------------------------------------ Watch

    /// Watches a key or range. All watches of a client share one gRPC stream.
    pub async fn watch(
        &self,
        key: impl AsRef<[u8]>,
        options: WatchOptions,
    ) -> Result<(Watcher, WatchStream)> {
        let commands = {
            let mut mux = self.watch.lock().await;
            match mux.as_ref() {
                Some(commands) if !commands.is_closed() => commands.clone(),
                _ => {
                    let client = WatchClient::new(self.channel.clone())
                        .max_decoding_message_size(RESPONSE_BYTES_MAX);
                    let commands = watch::spawn_mux(client);
                    *mux = Some(commands.clone());
                    commands
                }
            }
        };
        let watch_id = self.next_watch_id.fetch_add(1, Ordering::Relaxed);
        watch::create(
            &commands,
            watch_id,
            Bytes::copy_from_slice(key.as_ref()),
            options,
        )
        .await
    }

    // ------------------------------------------------------------------ Lease

    /// Grants a lease of `ttl` seconds; `id` 0 lets the server choose the id.
    pub async fn lease_grant(&self, ttl: i64, id: i64) -> Result<LeaseGrantResponse> {
        let r = self
            .unary(
                self.lease_client()
                    .lease_grant(pb::LeaseGrantRequest { ttl, id }),
            )
            .await?;
        Ok(LeaseGrantResponse {
            header: r.header.into(),
            id: r.id,
            ttl: r.ttl,
        })
    }

    /// Revokes a lease, deleting the keys attached to it.
    pub async fn lease_revoke(&self, id: i64) -> Result<Header> {
        let r = self
            .unary(
                self.lease_client()
                    .lease_revoke(pb::LeaseRevokeRequest { id }),
            )
            .await?;
        Ok(r.header.into())
    }

    /// The remaining TTL of a lease (and its keys, if asked).
    pub async fn lease_time_to_live(&self, id: i64, keys: bool) -> Result<LeaseTimeToLiveResponse> {
        let r = self
            .unary(
                self.lease_client()
                    .lease_time_to_live(pb::LeaseTimeToLiveRequest { id, keys }),
            )
            .await?;
        Ok(LeaseTimeToLiveResponse {
            header: r.header.into(),
            id: r.id,
            ttl: r.ttl,
            granted_ttl: r.granted_ttl,
            keys: r.keys,
        })
    }

    /// The ids of every lease.
    pub async fn lease_leases(&self) -> Result<Vec<i64>> {
        let r = self
            .unary(self.lease_client().lease_leases(pb::LeaseLeasesRequest {}))
            .await?;
        Ok(r.leases.into_iter().map(|l| l.id).collect())
    }

    /// Renews a lease in the background until the handle is dropped.
    pub async fn lease_keep_alive(&self, id: i64) -> Result<KeepAlive> {
        lease::keep_alive(self.lease_client(), id).await
    }

    // ------------------------------------------------------------------ Maintenance

    /// The contacted member's status.
    pub async fn status(&self) -> Result<StatusResponse> {
        Ok(self
            .unary(self.maintenance_client().status(pb::StatusRequest {}))
            .await?
            .into())
    }

    /// A hash of the contacted member's history up to `revision` (0 = current).
    pub async fn hash_kv(&self, revision: i64) -> Result<HashKvResponse> {
        let r = self
            .unary(
                self.maintenance_client()
                    .hash_kv(pb::HashKvRequest { revision }),
            )
            .await?;
        Ok(HashKvResponse {
            header: r.header.into(),
            hash: r.hash,
            compact_revision: r.compact_revision,
            hash_revision: r.hash_revision,
        })
    }

    /// Defragments the contacted member's storage.
    pub async fn defragment(&self) -> Result<Header> {
        let r = self
            .unary(
                self.maintenance_client()
                    .defragment(pb::DefragmentRequest {}),
            )
            .await?;
        Ok(r.header.into())
    }

    // ------------------------------------------------------------------ Cluster

    /// The members of the cluster.
    pub async fn member_list(&self) -> Result<Vec<Member>> {
        let r = self
            .unary(
                ClusterClient::new(self.channel.clone()).member_list(pb::MemberListRequest {
                    linearizable: false,
                }),
            )
            .await?;
        Ok(r.members.into_iter().map(Member::from).collect())
    }
}
