//! Starting and stopping a node: open the store, recover raft, start the driver, serve
//! gRPC and HTTP on every client URL, expire leases, and on shutdown take it all down in
//! reverse order so that every answered write is in the store when RocksDB closes.

use std::sync::Arc;
use std::time::Duration;

use ballast_proto::ballast::transport::raft_transport_server::RaftTransportServer;
use ballast_proto::etcdserverpb::auth_server::AuthServer;
use ballast_proto::etcdserverpb::cluster_server::ClusterServer;
use ballast_proto::etcdserverpb::kv_server::KvServer;
use ballast_proto::etcdserverpb::lease_server::LeaseServer;
use ballast_proto::etcdserverpb::maintenance_server::MaintenanceServer;
use ballast_proto::etcdserverpb::watch_server::WatchServer;
use ballast_proto::etcdserverpb::Member;
use ballast_proto::v3electionpb::election_server::ElectionServer;
use ballast_proto::v3lockpb::lock_server::LockServer;
use ballast_store::{LogStore, Store};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::service::Routes;

use crate::cluster::{Bootstrap, Cluster};
use crate::config::Config;
use crate::corrupt;
use crate::error::{Error, Result};
use crate::lessor::Lessor;
use crate::limits::GRPC_OVERHEAD_BYTES;
use crate::limits::{peer_message_bytes_received, PEER_MESSAGE_BYTES_MAX};
use crate::listeners::Listeners;
use crate::node::expire_leases;
use crate::node::probe_peers;
use crate::node::Node;
use crate::peer::PeerTransport;
use crate::quota::Quota;
use crate::raft::{Raft, RaftConfig, RaftParts};
use crate::rpc::auth::AuthService;
use crate::rpc::cluster::ClusterService;
use crate::rpc::election::ElectionService;
use crate::rpc::grpc_metrics::count_grpc;
use crate::rpc::kv::KvService;
use crate::rpc::lease::LeaseService;
use crate::rpc::lock::LockService;
use crate::rpc::maintenance::MaintenanceService;
use crate::rpc::peer::PeerService;
use crate::rpc::watch::WatchService;
use crate::tls::{
    incoming, PeerConnector, Reloading, TlsSettings, CLIENT_CONNECTIONS_MAX, PEER_CONNECTIONS_MAX,
};
use crate::tokens::Tokens;
use crate::url_authority::AuthorityFix;
use rustls::ServerConfig;

/// How long open client connections may take to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// HTTP/2 connection window of a client connection: what a client may send ahead of the
/// server's reading, across its streams. h2 ends a connection that sends more than half
/// of it in small frames not read yet (ENHANCE_YOUR_CALM); 4 MiB lets a burst of ~8,000
/// watch creates through (grpc-go's own window grows to 16 MiB).
const CLIENT_CONNECTION_WINDOW_BYTES: u32 = 4 << 20;

/// Runs a node on `listeners` until `shutdown` is cancelled (or the node fails), then
/// stops it cleanly. Peers are served at once, clients once the member has a leader
/// (connections made before wait in the sockets' backlog, as etcd's do).
pub async fn run(config: Config, listeners: Listeners, shutdown: CancellationToken) -> Result<()> {
    config.validate().map_err(|e| Error::Config(e.0))?;
    let data_dir = config.data_dir();
    std::fs::create_dir_all(&data_dir)?;
    let db_dir = data_dir.join("member").join("db");
    let store = tokio::task::spawn_blocking(move || Store::open(&db_dir))
        .await
        .map_err(|e| Error::Fatal(e.to_string()))??;
    let result = serve(config, listeners, store.clone(), shutdown).await;
    let store_for_close = store.clone();
    tokio::task::spawn_blocking(move || store_for_close.close())
        .await
        .map_err(|e| Error::Fatal(e.to_string()))?;
    drop(store);
    tracing::info!("stopped");
    result
}

async fn serve(
    config: Config,
    listeners: Listeners,
    store: Arc<Store>,
    shutdown: CancellationToken,
) -> Result<()> {
    let tls = Tls::new(&config).map_err(Error::Config)?;
    let Bootstrap {
        cluster,
        founding_voters,
    } = Cluster::bootstrap(&store, &config, tls.peer_client.as_ref()).await?;
    let cluster = Arc::new(cluster);
    let log = LogStore::open(store.clone())?;
    if let Some(voters) = founding_voters {
        if !log.is_initialized() {
            log.bootstrap(voters)?;
        }
    }
    let lessor = Arc::new(Lessor::new(&store.leases()?));
    let tokens = Arc::new(
        Tokens::from_flag(
            &config.auth_token,
            Duration::from_secs(config.auth_token_ttl),
        )
        .map_err(Error::Config)?,
    );
    let transport = PeerTransport::new(
        cluster.local_id,
        cluster.cluster_id,
        tokio::runtime::Handle::current(),
        tls.peer_client.clone(),
    );
    let raft = Raft::start(
        RaftConfig {
            id: cluster.local_id,
            heartbeat_interval: Duration::from_millis(config.heartbeat_interval),
            election_ticks: config.election_ticks(),
            request_timeout: config.request_timeout(),
            max_request_bytes: config.max_request_bytes as usize,
            snapshot_count: config.snapshot_count,
            catch_up_entries: config.experimental_snapshot_catchup_entries,
            leader_lease_reads: config.experimental_leader_lease_reads,
        },
        RaftParts {
            store: store.clone(),
            log,
            lessor: lessor.clone(),
            tokens: tokens.clone(),
            cluster: cluster.clone(),
            transport: transport.clone(),
        },
        shutdown.clone(),
    )?;
    tracing::info!(
        name = %config.name,
        member_id = format!("{:x}", cluster.local_id),
        cluster_id = format!("{:x}", cluster.cluster_id),
        "starting member"
    );
    let quota = Quota::from_flag(config.quota_backend_bytes);
    let node = Arc::new(Node {
        config,
        store,
        raft: raft.clone(),
        lessor,
        tokens,
        cluster,
        transport,
        quota,
        shutdown: shutdown.clone(),
        tasks: TaskTracker::new(),
    });

    let mut servers = JoinSet::new();
    let started = start_servers(&node, listeners, &tls, &mut servers).await;
    if started.is_err() {
        // Whatever did start must stop before the store closes.
        shutdown.cancel();
    }
    let mut result = Ok(());
    // After shutdown, connections get a grace period to finish; a client that keeps a
    // stream half-open does not hold the node up for longer.
    let grace = async {
        shutdown.cancelled().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::pin!(grace);
    let mut grace_over = false;
    loop {
        let joined = tokio::select! {
            joined = servers.join_next() => joined,
            _ = &mut grace, if !grace_over => {
                tracing::warn!(grace = ?SHUTDOWN_GRACE, "client connections still open; closing them");
                grace_over = true;
                servers.abort_all();
                continue;
            }
        };
        match joined {
            None => break,
            Some(Ok(Ok(()))) => {}
            Some(Ok(Err(err))) => {
                tracing::error!(%err, "client server failed");
                result = Err(Error::Fatal(err.to_string()));
                shutdown.cancel();
            }
            Some(Err(err)) if err.is_cancelled() => {}
            Some(Err(err)) => {
                result = Err(Error::Fatal(err.to_string()));
                shutdown.cancel();
            }
        }
    }
    // Streams and revokes end on the shutdown signal; wait for them, within the grace.
    node.tasks.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, node.tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            tasks = node.tasks.len(),
            "tasks still running after the grace; stopping anyway"
        );
    }
    drop(node);
    tracing::info!("client servers and their tasks stopped; stopping raft");
    let stopped = tokio::task::spawn_blocking(move || raft.stop())
        .await
        .map_err(|e| Error::Fatal(e.to_string()))?;
    started.and(result).and(stopped)
}

type ServerSet = JoinSet<std::result::Result<(), tonic::transport::Error>>;

/// Serves peers, waits for a leader, then serves clients and runs the lease expiry and
/// attribute publishing tasks, all in `servers`.
async fn start_servers(
    node: &Arc<Node>,
    listeners: Listeners,
    tls: &Tls,
    servers: &mut ServerSet,
) -> Result<()> {
    let shutdown = node.shutdown.clone();
    let raft = node.raft.clone();
    // Peers first: electing a leader needs them.
    for listener in listeners.peer {
        let https = listener.https;
        let listener = TcpListener::from_std(listener.socket)?;
        let address = listener.local_addr()?;
        tracing::info!(%address, https, "listening for peers");
        let incoming = incoming(
            listener,
            tls.server(https, &tls.peer)?,
            PEER_CONNECTIONS_MAX,
            shutdown.clone(),
        );
        let stop = shutdown.clone();
        let service = RaftTransportServer::new(PeerService::new(node.clone()))
            .max_decoding_message_size(peer_message_bytes_received(
                node.config.max_request_bytes as usize,
            ))
            .max_encoding_message_size(PEER_MESSAGE_BYTES_MAX);
        let server = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(incoming, async move { stop.cancelled().await });
        servers.spawn(server);
    }

    // Like etcd, serve clients only once the member has a leader: before that every
    // request would fail anyway.
    let mut status = raft.watch_status();
    tokio::select! {
        _ = shutdown.cancelled() => {}
        waited = status.wait_for(|s| s.has_leader()) => {
            waited.map_err(|_| Error::Fatal("raft driver stopped before electing a leader".into()))?;
        }
    }
    if node.config.experimental_initial_corrupt_check {
        corrupt::initial_check(node).await?;
    }
    let every = node.config.experimental_corrupt_check_time;
    if !every.is_zero() {
        node.tasks.spawn(corrupt::run_periodic(node.clone(), every));
    }
    let routes = routes(node);
    for listener in listeners.client {
        let https = listener.https;
        let listener = TcpListener::from_std(listener.socket)?;
        let address = listener.local_addr()?;
        tracing::info!(%address, https, "ready to serve client requests");
        let incoming = incoming(
            listener,
            tls.server(https, &tls.client)?,
            CLIENT_CONNECTIONS_MAX,
            shutdown.clone(),
        )
        .map(|conn| conn.map(AuthorityFix::new));
        let stop = shutdown.clone();
        let server = tonic::transport::Server::builder()
            .accept_http1(true)
            // 0 disables the pings, as in etcd.
            .http2_keepalive_interval(
                Some(node.config.grpc_keepalive_interval).filter(|every| !every.is_zero()),
            )
            .http2_keepalive_timeout(Some(node.config.grpc_keepalive_timeout))
            .max_concurrent_streams(node.config.max_concurrent_streams)
            .initial_connection_window_size(CLIENT_CONNECTION_WINDOW_BYTES)
            .add_routes(routes.clone())
            .serve_with_incoming_shutdown(incoming, async move { stop.cancelled().await });
        servers.spawn(server);
    }
    for listener in listeners.metrics {
        let https = listener.https;
        let listener = TcpListener::from_std(listener.socket)?;
        tracing::info!(address = %listener.local_addr()?, https, "serving metrics");
        let incoming = incoming(
            listener,
            tls.server(https, &tls.client)?,
            CLIENT_CONNECTIONS_MAX,
            shutdown.clone(),
        );
        let stop = shutdown.clone();
        let server = tonic::transport::Server::builder()
            .accept_http1(true)
            .add_routes(Routes::from(crate::http::metrics_routes(node.clone())))
            .serve_with_incoming_shutdown(incoming, async move { stop.cancelled().await });
        servers.spawn(server);
    }
    servers.spawn(probe_peers(node.clone()));
    servers.spawn(expire_leases(node.clone()));
    servers.spawn(publish_attributes(node.clone()));

    Ok(())
}

/// The TLS configurations of this member, built once from its flags and files.
struct Tls {
    client: Option<Arc<Reloading<ServerConfig>>>,
    peer: Option<Arc<Reloading<ServerConfig>>>,
    peer_client: Option<PeerConnector>,
}

impl Tls {
    fn new(config: &Config) -> std::result::Result<Tls, String> {
        let server = |settings: Option<TlsSettings>| {
            settings
                .map(|s| Reloading::new(s, TlsSettings::server_config).map(Arc::new))
                .transpose()
        };
        let peer_settings = TlsSettings::peer(config)?;
        let peer_client = peer_settings
            .clone()
            .map(|s| Reloading::new(s, TlsSettings::client_config))
            .transpose()?
            .map(|r| PeerConnector::new(Arc::new(r)));
        Ok(Tls {
            client: server(TlsSettings::client(config)?)?,
            peer: server(peer_settings)?,
            peer_client,
        })
    }

    /// The configuration for a socket, if its URL is https.
    fn server(
        &self,
        https: bool,
        side: &Option<Arc<Reloading<ServerConfig>>>,
    ) -> Result<Option<Arc<Reloading<ServerConfig>>>> {
        match (https, side) {
            (false, _) => Ok(None),
            (true, Some(tls)) => Ok(Some(tls.clone())),
            (true, None) => Err(Error::Config("an https URL without TLS files".into())),
        }
    }
}

fn routes(node: &Arc<Node>) -> Routes {
    let decode_max = node.config.max_request_bytes as usize + GRPC_OVERHEAD_BYTES;
    let grpc = Routes::new(
        KvServer::new(KvService::new(node.clone())).max_decoding_message_size(decode_max),
    )
    .add_service(
        WatchServer::new(WatchService::new(node.clone())).max_decoding_message_size(decode_max),
    )
    .add_service(
        LeaseServer::new(LeaseService::new(node.clone())).max_decoding_message_size(decode_max),
    )
    .add_service(
        ClusterServer::new(ClusterService::new(node.clone())).max_decoding_message_size(decode_max),
    )
    .add_service(
        AuthServer::new(AuthService::new(node.clone())).max_decoding_message_size(decode_max),
    )
    .add_service(
        MaintenanceServer::new(MaintenanceService::new(node.clone()))
            .max_decoding_message_size(decode_max),
    )
    .add_service(
        LockServer::new(LockService::new(node.clone())).max_decoding_message_size(decode_max),
    )
    .add_service(
        ElectionServer::new(ElectionService::new(node.clone()))
            .max_decoding_message_size(decode_max),
    );
    let grpc = grpc
        .into_axum_router()
        .layer(axum::middleware::from_fn(count_grpc));
    let router = grpc
        .clone()
        .merge(crate::gateway::routes(grpc, decode_max))
        .merge(crate::http::routes(node.clone()))
        .fallback(crate::http::fallback);
    Routes::from(router)
}

/// Announces this member's name and client URLs through raft (etcd's "publish"), so
/// every member lists them; retried until it goes through.
async fn publish_attributes(node: Arc<Node>) -> std::result::Result<(), tonic::transport::Error> {
    let local = node.cluster.local_id;
    loop {
        let current = node.cluster.member(local).unwrap_or_default();
        if current.name == node.config.name
            && current.client_urls == node.config.advertise_client_urls
        {
            return Ok(());
        }
        let attributes = Member {
            id: local,
            name: node.config.name.clone(),
            client_urls: node.config.advertise_client_urls.clone(),
            ..current
        };
        tokio::select! {
            _ = node.shutdown.cancelled() => return Ok(()),
            published = node.raft.propose(attributes) => {
                if let Err(err) = published {
                    tracing::debug!(%err, "publishing member attributes failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }
}
