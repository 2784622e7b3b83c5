//! Plain HTTP on the client port, beside gRPC, as etcd serves it: `/health`,
//! `/version` and `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use ballast_proto::etcdserverpb::AlarmType;

use crate::metrics::{render, Gauges, ROCKSDB_PROPERTIES};
use crate::node::Node;
use crate::{CLUSTER_VERSION, ETCD_VERSION};

/// How long `/health` waits for a linearizable read barrier before reporting unhealthy.
const HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// The HTTP routes, to be merged with the gRPC ones.
pub fn routes(node: Arc<Node>) -> Router {
    let mut router = Router::new()
        .route("/health", get(health))
        .route("/version", get(version))
        .route("/metrics", get(metrics));
    if node.config.experimental_test_hooks {
        router = router.route("/debug/block-peer", get(block_peer));
    }
    router.with_state(node)
}

/// Test hook: `/debug/block-peer?peer=<id in hex>&on=<true|false>` drops all raft
/// traffic between this member and that peer, both ways: a partition without touching
/// the network.
async fn block_peer(
    State(node): State<Arc<Node>>,
    request: axum::extract::Request,
) -> impl IntoResponse {
    let query = request.uri().query().unwrap_or_default();
    let mut peer = None;
    let mut on = true;
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("peer", value)) => peer = u64::from_str_radix(value, 16).ok(),
            Some(("on", value)) => on = value != "false",
            _ => {}
        }
    }
    match peer {
        Some(peer) => {
            node.transport.set_blocked(peer, on);
            tracing::warn!(
                peer = format!("{peer:x}"),
                on,
                "test hook: peer traffic blocked"
            );
            (StatusCode::OK, "ok\n")
        }
        None => (
            StatusCode::BAD_REQUEST,
            "usage: /debug/block-peer?peer=<hex id>&on=true|false\n",
        ),
    }
}

/// What answers a path nothing else serves: gRPC's Unimplemented for gRPC requests (as
/// clients expect for an unknown method), a plain 404 for everything else.
pub async fn fallback(request: axum::extract::Request) -> axum::response::Response {
    let is_grpc = request
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    if is_grpc {
        tonic::Status::unimplemented(format!("unknown method {}", request.uri().path())).into_http()
    } else {
        (StatusCode::NOT_FOUND, "404 page not found\n").into_response()
    }
}

fn json(status: StatusCode, body: String) -> impl IntoResponse {
    (status, [(header::CONTENT_TYPE, "application/json")], body)
}

/// Healthy when no alarm is active (but those named by `?exclude=NOSPACE`, repeatable),
/// there is a leader and a linearizable read barrier completes; etcd's reasons.
async fn health(
    State(node): State<Arc<Node>>,
    request: axum::extract::Request,
) -> impl IntoResponse {
    let query = request.uri().query().unwrap_or_default();
    let excluded: Vec<&str> = query
        .split('&')
        .filter_map(|pair| pair.strip_prefix("exclude="))
        .collect();
    let alarm = node.store.alarms().into_iter().find_map(|a| {
        let name = AlarmType::try_from(a.alarm).map_or("UNKNOWN", |t| t.as_str_name());
        (!excluded.contains(&name)).then(|| format!("ALARM {name}"))
    });
    let reason = if alarm.is_some() {
        alarm
    } else if !node.raft.status().has_leader() {
        Some("RAFT NO LEADER".to_string())
    } else {
        match tokio::time::timeout(HEALTH_CHECK_TIMEOUT, node.raft.read_barrier()).await {
            Ok(Ok(())) => None,
            Ok(Err(err)) => Some(err.to_string()),
            Err(_) => Some("timed out".to_string()),
        }
    };
    match reason {
        None => json(
            StatusCode::OK,
            r#"{"health":"true","reason":""}"#.to_string(),
        ),
        Some(reason) => json(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(r#"{{"health":"false","reason":{reason:?}}}"#),
        ),
    }
}

async fn version() -> impl IntoResponse {
    json(
        StatusCode::OK,
        format!(r#"{{"etcdserver":"{ETCD_VERSION}","etcdcluster":"{CLUSTER_VERSION}"}}"#),
    )
}

/// The metrics in Prometheus' text format, under etcd's names (`crate::metrics`).
async fn metrics(State(node): State<Arc<Node>>) -> impl IntoResponse {
    let raft = node.raft.status();
    let store = &node.store;
    let backend = store.backend();
    let revisions = store.revisions();
    let gauges = Gauges {
        has_leader: raft.has_leader(),
        is_leader: raft.is_leader(),
        committed: raft.commit,
        applied: store.applied_index(),
        pending: node.raft.pending_proposals(),
        quota_bytes: node.quota.limit().map_or(-1, |q| q as i64),
        db_bytes: backend.size_bytes(),
        db_bytes_in_use: backend.live_bytes(),
        keys: store.keys_total(),
        watchers: store.watch_hub().watcher_count(),
        revision: revisions.current,
        compacted: revisions.compacted,
        rocksdb: ROCKSDB_PROPERTIES
            .iter()
            .map(|&(property, per_cf)| {
                let value = if per_cf {
                    backend.cf_property_total(property)
                } else {
                    backend.db_property(property)
                };
                (property, value)
            })
            .collect(),
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
        render(&gauges),
    )
}

/// What `--listen-metrics-urls` serve: `/metrics` and `/health`, as etcd's do.
pub fn metrics_routes(node: Arc<Node>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(node)
}
