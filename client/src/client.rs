//! The client: connection options, and every call of the API as a method.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ballast_proto::etcdserverpb as pb;
use ballast_proto::etcdserverpb::auth_client::AuthClient;
use ballast_proto::etcdserverpb::cluster_client::ClusterClient;
use ballast_proto::etcdserverpb::kv_client::KvClient;
use ballast_proto::etcdserverpb::lease_client::LeaseClient;
use ballast_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use bytes::Bytes;
use futures::Stream;
use tokio::sync::{mpsc, Mutex};

use crate::auth::{Permission, RoleInfo};
use crate::error::{Error, Result};
use crate::kv::{DeleteOptions, DeleteResponse, GetOptions, GetResponse, PutOptions, PutResponse};
use crate::lease::{self, KeepAlive, LeaseGrantResponse, LeaseTimeToLiveResponse};
use crate::maintenance::{Alarm, HashKvResponse, Member, StatusResponse};
use crate::transport::{endpoint, Retry, Service, TlsOptions, Transport};
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
    /// User and password: the client authenticates and sends the token with every call.
    pub credentials: Option<(String, String)>,
    /// TLS; endpoints given as host:port then use https.
    pub tls: Option<TlsOptions>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            keep_alive: Some((Duration::from_secs(30), Duration::from_secs(10))),
            credentials: None,
            tls: None,
        }
    }
}

impl ConnectOptions {
    /// The defaults: 5 s to connect, 30 s per call, keep-alive pings every 30 s.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the connection timeout.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }
    /// Sets the per-call timeout.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }
    /// Sets the HTTP/2 keep-alive ping interval and timeout.
    pub fn with_keep_alive(mut self, interval: Duration, timeout: Duration) -> Self {
        self.keep_alive = Some((interval, timeout));
        self
    }
    /// Authenticates as `user`.
    pub fn with_user(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.credentials = Some((user.into(), password.into()));
        self
    }
    /// Connects over TLS.
    pub fn with_tls(mut self, tls: TlsOptions) -> Self {
        self.tls = Some(tls);
        self
    }
}

/// A client of one cluster. Cheap to clone; clones share connections, the auth token
/// and the watch stream.
#[derive(Debug, Clone)]
pub struct Client {
    transport: Arc<Transport>,
    watch: Arc<Mutex<Option<mpsc::Sender<Command>>>>,
    next_watch_id: Arc<AtomicI64>,
}

fn kv(service: Service) -> KvClient<Service> {
    KvClient::new(service).max_decoding_message_size(RESPONSE_BYTES_MAX)
}

fn leases(service: Service) -> LeaseClient<Service> {
    LeaseClient::new(service).max_decoding_message_size(RESPONSE_BYTES_MAX)
}

fn maintenance(service: Service) -> MaintenanceClient<Service> {
    MaintenanceClient::new(service).max_decoding_message_size(RESPONSE_BYTES_MAX)
}

fn cluster(service: Service) -> ClusterClient<Service> {
    ClusterClient::new(service).max_decoding_message_size(RESPONSE_BYTES_MAX)
}

fn auth(service: Service) -> AuthClient<Service> {
    AuthClient::new(service).max_decoding_message_size(RESPONSE_BYTES_MAX)
}

impl Client {
    /// Connects to the cluster at `endpoints` (`host:port` or `http(s)://host:port`).
    /// Fails if no endpoint answers; with credentials, also if authentication fails.
    pub async fn connect<E: AsRef<str>>(
        endpoints: impl IntoIterator<Item = E>,
        options: ConnectOptions,
    ) -> Result<Client> {
        let endpoints = endpoints
            .into_iter()
            .map(|e| {
                let text = e.as_ref();
                endpoint(
                    text,
                    options.connect_timeout,
                    options.keep_alive,
                    options.tls.as_ref(),
                )
                .map(|endpoint| (text.to_string(), endpoint))
            })
            .collect::<Result<Vec<_>>>()?;
        if endpoints.is_empty() {
            return Err(Error::InvalidEndpoint(String::new()));
        }
        // Fail early if nothing answers: one connection attempt per endpoint.
        let mut reachable = None;
        let mut last_error = None;
        for (index, (_, endpoint)) in endpoints.iter().enumerate() {
            match endpoint.connect().await {
                Ok(_) => {
                    reachable = Some(index);
                    break;
                }
                Err(err) => last_error = Some(err),
            }
        }
        let Some(first) = reachable else {
            return Err(last_error.expect("at least one endpoint").into());
        };
        let transport = Transport::new(endpoints, options.credentials, options.request_timeout);
        for _ in 0..first {
            let (index, _) = transport.current();
            transport.rotate(index);
        }
        transport.authenticate().await?;
        Ok(Client {
            transport: Arc::new(transport),
            watch: Arc::new(Mutex::new(None)),
            next_watch_id: Arc::new(AtomicI64::new(1)),
        })
    }

    // ------------------------------------------------------------------ KV

    /// Reads a key, or a range of keys (see [`GetOptions`]).
    pub async fn get(&self, key: impl AsRef<[u8]>, options: GetOptions) -> Result<GetResponse> {
        let req = options.request(Bytes::copy_from_slice(key.as_ref()));
        let response = self
            .transport
            .unary(
                Retry::Read,
                req,
                |s, req| async move { kv(s).range(req).await },
            )
            .await?;
        Ok(response.into())
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
        let response = self
            .transport
            .unary(
                Retry::Write,
                req,
                |s, req| async move { kv(s).put(req).await },
            )
            .await?;
        Ok(response.into())
    }

    /// Deletes a key, or a range of keys.
    pub async fn delete(
        &self,
        key: impl AsRef<[u8]>,
        options: DeleteOptions,
    ) -> Result<DeleteResponse> {
        let req = options.request(Bytes::copy_from_slice(key.as_ref()));
        let response = self
            .transport
            .unary(Retry::Write, req, |s, req| async move {
                kv(s).delete_range(req).await
            })
            .await?;
        Ok(response.into())
    }

    /// Runs a transaction.
    pub async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        let req = txn.into_request();
        let retry = if crate::txn::is_read_only(&req) {
            Retry::Read
        } else {
            Retry::Write
        };
        let response = self
            .transport
            .call(retry, |s| {
                let req = req.clone();
                async move { kv(s).txn(req).await }
            })
            .await?;
        Ok(response.into())
    }

    /// Drops history below `revision`; with `physical`, answers once it is gone from disk.
    pub async fn compact(&self, revision: i64, physical: bool) -> Result<Header> {
        let req = pb::CompactionRequest { revision, physical };
        let response = self
            .transport
            .call(Retry::Write, |s| async move { kv(s).compact(req).await })
            .await?;
        Ok(response.header.into())
    }

    // ------------------------------------------------------------------ Watch

    /// Watches a key or range. All watches of a client share one gRPC stream, which is
    /// re-established (on another endpoint if need be) when it breaks: each watcher
    /// resumes after the last revision it delivered.
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
                    let commands = watch::spawn_mux(self.transport.clone());
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
        let req = pb::LeaseGrantRequest { ttl, id };
        let r = self
            .transport
            .call(
                Retry::Write,
                |s| async move { leases(s).lease_grant(req).await },
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
        let req = pb::LeaseRevokeRequest { id };
        let r = self
            .transport
            .call(Retry::Write, |s| async move {
                leases(s).lease_revoke(req).await
            })
            .await?;
        Ok(r.header.into())
    }

    /// The remaining TTL of a lease (and its keys, if asked); TTL -1 if it is gone.
    pub async fn lease_time_to_live(&self, id: i64, keys: bool) -> Result<LeaseTimeToLiveResponse> {
        let req = pb::LeaseTimeToLiveRequest { id, keys };
        let r = self
            .transport
            .call(Retry::Read, |s| async move {
                leases(s).lease_time_to_live(req).await
            })
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
            .transport
            .call(Retry::Read, |s| async move {
                leases(s).lease_leases(pb::LeaseLeasesRequest {}).await
            })
            .await?;
        Ok(r.leases.into_iter().map(|l| l.id).collect())
    }

    /// Renews a lease in the background until the handle is dropped. Fails if the lease
    /// does not exist.
    pub async fn lease_keep_alive(&self, id: i64) -> Result<KeepAlive> {
        lease::keep_alive(self.transport.clone(), id).await
    }

    // ------------------------------------------------------------------ Maintenance

    /// The contacted member's status.
    pub async fn status(&self) -> Result<StatusResponse> {
        let r = self
            .transport
            .call(Retry::Read, |s| async move {
                maintenance(s).status(pb::StatusRequest {}).await
            })
            .await?;
        Ok(r.into())
    }

    /// The active alarms of the cluster.
    pub async fn alarms(&self) -> Result<Vec<Alarm>> {
        let req = pb::AlarmRequest::default();
        let r = self
            .transport
            .call(
                Retry::Read,
                |s| async move { maintenance(s).alarm(req).await },
            )
            .await?;
        Ok(r.alarms.into_iter().map(Alarm::from).collect())
    }

    /// Clears an alarm of one member (0: every member).
    pub async fn alarm_disarm(&self, alarm: Alarm) -> Result<Vec<Alarm>> {
        let req = pb::AlarmRequest {
            action: pb::alarm_request::AlarmAction::Deactivate as i32,
            member_id: alarm.member_id,
            alarm: alarm.kind as i32,
        };
        let r = self
            .transport
            .call(
                Retry::Write,
                |s| async move { maintenance(s).alarm(req).await },
            )
            .await?;
        Ok(r.alarms.into_iter().map(Alarm::from).collect())
    }

    /// Defragments the contacted member's storage.
    pub async fn defragment(&self) -> Result<Header> {
        let r = self
            .transport
            .call(Retry::Write, |s| async move {
                maintenance(s).defragment(pb::DefragmentRequest {}).await
            })
            .await?;
        Ok(r.header.into())
    }

    /// A hash of the contacted member's whole store.
    pub async fn hash(&self) -> Result<u32> {
        let r = self
            .transport
            .call(Retry::Read, |s| async move {
                maintenance(s).hash(pb::HashRequest {}).await
            })
            .await?;
        Ok(r.hash)
    }

    /// A hash of the contacted member's history up to `revision` (0 = current).
    pub async fn hash_kv(&self, revision: i64) -> Result<HashKvResponse> {
        let req = pb::HashKvRequest { revision };
        let r = self
            .transport
            .call(
                Retry::Read,
                |s| async move { maintenance(s).hash_kv(req).await },
            )
            .await?;
        Ok(HashKvResponse {
            header: r.header.into(),
            hash: r.hash,
            compact_revision: r.compact_revision,
            hash_revision: r.hash_revision,
        })
    }

    /// Streams a snapshot of the contacted member's store, chunk by chunk. For etcd it is
    /// the bbolt file followed by its SHA-256.
    pub async fn snapshot(&self) -> Result<impl Stream<Item = Result<Bytes>> + Send + 'static> {
        let (_, service) = self.transport.current();
        let stream = maintenance(service)
            .snapshot(pb::SnapshotRequest {})
            .await?
            .into_inner();
        Ok(futures::StreamExt::map(stream, |chunk| {
            chunk.map(|c| c.blob).map_err(Error::from)
        }))
    }

    /// Asks the leader to hand leadership to member `target`; must reach the leader.
    pub async fn move_leader(&self, target: u64) -> Result<Header> {
        let req = pb::MoveLeaderRequest { target_id: target };
        let r = self
            .transport
            .call(Retry::Write, |s| async move {
                maintenance(s).move_leader(req).await
            })
            .await?;
        Ok(r.header.into())
    }

    // ------------------------------------------------------------------ Cluster

    /// The members of the cluster.
    pub async fn member_list(&self) -> Result<Vec<Member>> {
        let req = pb::MemberListRequest {
            linearizable: false,
        };
        let r = self
            .transport
            .call(
                Retry::Read,
                |s| async move { cluster(s).member_list(req).await },
            )
            .await?;
        Ok(r.members.into_iter().map(Member::from).collect())
    }

    /// Adds a member (as a non-voting learner if `learner`); returns it.
    pub async fn member_add(&self, peer_urls: Vec<String>, learner: bool) -> Result<Member> {
        let req = pb::MemberAddRequest {
            peer_urls,
            is_learner: learner,
        };
        let r = self
            .transport
            .unary(Retry::Write, req, |s, req| async move {
                cluster(s).member_add(req).await
            })
            .await?;
        Ok(r.member.map(Member::from).unwrap_or_default())
    }

    /// Removes a member; returns the members left.
    pub async fn member_remove(&self, id: u64) -> Result<Vec<Member>> {
        let req = pb::MemberRemoveRequest { id };
        let r = self
            .transport
            .call(Retry::Write, |s| async move {
                cluster(s).member_remove(req).await
            })
            .await?;
        Ok(r.members.into_iter().map(Member::from).collect())
    }

    /// Changes a member's peer URLs.
    pub async fn member_update(&self, id: u64, peer_urls: Vec<String>) -> Result<Vec<Member>> {
        let req = pb::MemberUpdateRequest { id, peer_urls };
        let r = self
            .transport
            .unary(Retry::Write, req, |s, req| async move {
                cluster(s).member_update(req).await
            })
            .await?;
        Ok(r.members.into_iter().map(Member::from).collect())
    }

    /// Makes a learner a voting member (refused until it has caught up).
    pub async fn member_promote(&self, id: u64) -> Result<Vec<Member>> {
        let req = pb::MemberPromoteRequest { id };
        let r = self
            .transport
            .call(Retry::Write, |s| async move {
                cluster(s).member_promote(req).await
            })
            .await?;
        Ok(r.members.into_iter().map(Member::from).collect())
    }

    // ------------------------------------------------------------------ Auth

    /// Turns authentication on (a `root` user with the `root` role must exist).
    pub async fn auth_enable(&self) -> Result<()> {
        self.transport
            .call(Retry::Write, |s| async move {
                auth(s).auth_enable(pb::AuthEnableRequest {}).await
            })
            .await?;
        Ok(())
    }

    /// Turns authentication off.
    pub async fn auth_disable(&self) -> Result<()> {
        self.transport
            .call(Retry::Write, |s| async move {
                auth(s).auth_disable(pb::AuthDisableRequest {}).await
            })
            .await?;
        Ok(())
    }

    /// Whether authentication is on, and the auth store's revision.
    pub async fn auth_status(&self) -> Result<(bool, u64)> {
        let r = self
            .transport
            .call(Retry::Read, |s| async move {
                auth(s).auth_status(pb::AuthStatusRequest {}).await
            })
            .await?;
        Ok((r.enabled, r.auth_revision))
    }

    /// Adds a user.
    pub async fn user_add(&self, name: &str, password: &str) -> Result<()> {
        self.user_add_request(pb::AuthUserAddRequest {
            name: name.to_string(),
            password: password.to_string(),
            ..Default::default()
        })
        .await
    }

    /// Adds a user without a password, who can only be named by a client certificate's
    /// common name (etcdctl's `user add --no-password`).
    pub async fn user_add_no_password(&self, name: &str) -> Result<()> {
        self.user_add_request(pb::AuthUserAddRequest {
            name: name.to_string(),
            options: Some(ballast_proto::authpb::UserAddOptions { no_password: true }),
            ..Default::default()
        })
        .await
    }

    async fn user_add_request(&self, req: pb::AuthUserAddRequest) -> Result<()> {
        self.transport
            .unary(Retry::Write, req, |s, req| async move {
                auth(s).user_add(req).await
            })
            .await?;
        Ok(())
    }

    /// The roles of a user.
    pub async fn user_get(&self, name: &str) -> Result<Vec<String>> {
        let req = pb::AuthUserGetRequest {
            name: name.to_string(),
        };
        let r = self
            .transport
            .unary(Retry::Read, req, |s, req| async move {
                auth(s).user_get(req).await
            })
            .await?;
        Ok(r.roles)
    }

    /// Every user name.
    pub async fn user_list(&self) -> Result<Vec<String>> {
        let r = self
            .transport
            .call(Retry::Read, |s| async move {
                auth(s).user_list(pb::AuthUserListRequest {}).await
            })
            .await?;
        Ok(r.users)
    }

    /// Deletes a user.
    pub async fn user_delete(&self, name: &str) -> Result<()> {
        let req = pb::AuthUserDeleteRequest {
            name: name.to_string(),
        };
        self.transport
            .unary(Retry::Write, req, |s, req| async move {
                auth(s).user_delete(req).await
            })
            .await?;
        Ok(())
    }

    /// Sets a user's password.
    pub async fn user_change_password(&self, name: &str, password: &str) -> Result<()> {
        let req = pb::AuthUserChangePasswordRequest {
            name: name.to_string(),
            password: password.to_string(),
            ..Default::default()
        };
        self.transport
            .unary(Retry::Write, req, |s, req| async move {
                auth(s).user_change_password(req).await
            })
            .await?;
        Ok(())
    }

    /// Grants a role to a user.
    pub async fn user_grant_role(&self, user: &str, role: &str) -> Result<()> {
        let req = pb::AuthUserGrantRoleRequest {
            user: user.to_string(),
            role: role.to_string(),
        };
        self.transport
            .unary(Retry::Write, req, |s, req| async move {
                auth(s).user_grant_role(req).await
            })
            .await?;
        Ok(())
    }

    /// Takes a role away from a user.
    pub async fn user_revoke_role(&self, user: &str, role: &str) -> Result<()> {
        let req = pb::AuthUserRevokeRoleRequest {
            name: user.to_string(),
            role: role.to_string(),
        };
        self.transport
            .unary(Retry::Write, req, |s, req| async move {
                auth(s).user_revoke_role(req).await
            })
            .await?;
        Ok(())
    }

    /// Adds a role.
    pub async fn role_add(&self, name: &str) -> Result<()> {
        let req = pb::AuthRoleAddRequest {
            name: name.to_string(),
        };
        self.transport
            .unary(Retry::Write, req, |s, req| async move {
                auth(s).role_add(req).await
            })
            .await?;
        Ok(())
    }

    /// A role's permissions.
    pub async fn role_get(&self, name: &str) -> Result<RoleInfo> {
        let req = pb::AuthRoleGetRequest {
            role: name.to_string(),
        };
        let r = self
            .transport
            .unary(Retry::Read, req, |s, req| async move {
                auth(s).role_get(req).await
            })
            .await?;
        Ok(RoleInfo {
            name: name.to_string(),
            permissions: r.perm.into_iter().map(Permission::from).collect(),
        })
    }

    /// Every role name.
    pub async fn role_list(&self) -> Result<Vec<String>> {
        let r = self
            .transport
            .call(Retry::Read, |s| async move {
                auth(s).role_list(pb::AuthRoleListRequest {}).await
            })
            .await?;
        Ok(r.roles)
    }

    /// Deletes a role.
    pub async fn role_delete(&self, name: &str) -> Result<()> {
        let req = pb::AuthRoleDeleteRequest {
            role: name.to_string(),
        };
        self.transport
            .unary(Retry::Write, req, |s, req| async move {
                auth(s).role_delete(req).await
            })
            .await?;
        Ok(())
    }

    /// Grants a role a permission on a key or range.
    pub async fn role_grant_permission(&self, role: &str, permission: Permission) -> Result<()> {
        let req = pb::AuthRoleGrantPermissionRequest {
            name: role.to_string(),
            perm: Some(permission.into()),
        };
        self.transport
            .unary(Retry::Write, req, |s, req| async move {
                auth(s).role_grant_permission(req).await
            })
            .await?;
        Ok(())
    }

    /// Takes a permission on `[key, range_end)` away from a role.
    pub async fn role_revoke_permission(
        &self,
        role: &str,
        key: impl AsRef<[u8]>,
        range_end: impl AsRef<[u8]>,
    ) -> Result<()> {
        let req = pb::AuthRoleRevokePermissionRequest {
            role: role.to_string(),
            key: Bytes::copy_from_slice(key.as_ref()),
            range_end: Bytes::copy_from_slice(range_end.as_ref()),
        };
        self.transport
            .unary(Retry::Write, req, |s, req| async move {
                auth(s).role_revoke_permission(req).await
            })
            .await?;
        Ok(())
    }
}
