//! `/metrics` read by a Prometheus text parser: etcd's names, types and labels are
//! there, and they move with what the cluster does.

use std::net::SocketAddr;

use ballast_client::{PutOptions, WatchOptions};
use ballast_tests::{eventually, free_port, http_get, Etcdctl, Node, TestCluster, WAIT};
use prometheus_parse::{Scrape, Value};

/// Parses the body of a `/metrics` answer.
async fn scrape(address: SocketAddr) -> Scrape {
    let response = http_get(address, "/metrics").await;
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).expect("Prometheus text format")
}

/// The sum of the samples of `name` whose labels include `labels`; None if it has none.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<f64> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
            Value::Summary(_) => panic!("etcd reports no summaries"),
        })
        .collect();
    (!matching.is_empty()).then(|| matching.iter().sum())
}

fn get(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    value(scrape, name, labels).unwrap_or_else(|| panic!("{name} {labels:?} is reported"))
}

/// What etcd's dashboard and alerts read, with its type.
const NAMES: [(&str, &str); 21] = [
    ("etcd_network_client_grpc_received_bytes_total", "counter"),
    ("etcd_network_client_grpc_sent_bytes_total", "counter"),
    ("etcd_debugging_mvcc_db_total_size_in_bytes", "gauge"),
    ("etcd_server_has_leader", "gauge"),
    ("etcd_server_is_leader", "gauge"),
    ("etcd_server_leader_changes_seen_total", "counter"),
    ("etcd_server_proposals_committed_total", "gauge"),
    ("etcd_server_proposals_applied_total", "gauge"),
    ("etcd_server_proposals_pending", "gauge"),
    ("etcd_server_proposals_failed_total", "counter"),
    ("etcd_disk_wal_fsync_duration_seconds", "histogram"),
    ("etcd_disk_backend_commit_duration_seconds", "histogram"),
    ("etcd_mvcc_db_total_size_in_bytes", "gauge"),
    ("etcd_mvcc_db_total_size_in_use_in_bytes", "gauge"),
    ("etcd_network_peer_sent_bytes_total", "counter"),
    ("etcd_debugging_mvcc_keys_total", "gauge"),
    ("etcd_debugging_mvcc_watcher_total", "gauge"),
    ("grpc_server_started_total", "counter"),
    ("grpc_server_handled_total", "counter"),
    ("process_resident_memory_bytes", "gauge"),
    ("process_cpu_seconds_total", "counter"),
];

/// Every series etcd's sample Grafana dashboard (`Documentation/op-guide/grafana.json` in
/// etcd's repository) queries.
const DASHBOARD: [&str; 16] = [
    "etcd_server_has_leader",
    "grpc_server_started_total",
    "grpc_server_handled_total",
    "etcd_debugging_mvcc_db_total_size_in_bytes",
    "etcd_disk_wal_fsync_duration_seconds_bucket",
    "etcd_disk_backend_commit_duration_seconds_bucket",
    "process_resident_memory_bytes",
    "etcd_network_client_grpc_received_bytes_total",
    "etcd_network_client_grpc_sent_bytes_total",
    "etcd_network_peer_received_bytes_total",
    "etcd_network_peer_sent_bytes_total",
    "etcd_server_proposals_failed_total",
    "etcd_server_proposals_pending",
    "etcd_server_proposals_committed_total",
    "etcd_server_proposals_applied_total",
    "etcd_server_leader_changes_seen_total",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_metrics_are_reported_and_move() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = TestCluster::start(dir.path(), 3, &[]);
    let leader = cluster.leader().await;
    let node = &cluster.nodes[leader];
    let address = node.address();
    let before = scrape(address).await;
    let response = http_get(address, "/metrics").await;
    for (name, kind) in NAMES {
        assert!(
            response.contains(&format!("# TYPE {name} {kind}\n")),
            "{name} is a {kind}"
        );
    }
    assert_eq!(get(&before, "etcd_server_has_leader", &[]), 1.0);
    for series in DASHBOARD {
        assert!(
            response.lines().any(|line| line.starts_with(series)),
            "etcd's dashboard queries {series}"
        );
    }
    assert_eq!(get(&before, "etcd_server_is_leader", &[]), 1.0);

    let client = ballast_client::Client::connect([node.endpoint()], Default::default())
        .await
        .unwrap();
    let _watch = client.watch("w", WatchOptions::new()).await.unwrap();
    for i in 0..50 {
        client
            .put(format!("k{i}"), "v", PutOptions::new())
            .await
            .unwrap();
    }
    let future = client
        .get(
            "k0",
            ballast_client::GetOptions::new().with_revision(1_000_000),
        )
        .await;
    assert!(future.is_err());
    let after = scrape(address).await;

    let grew = |name: &str, labels: &[(&str, &str)], by: f64| {
        let (was, is) = (
            value(&before, name, labels).unwrap_or(0.0),
            get(&after, name, labels),
        );
        assert!(
            is - was >= by,
            "{name} {labels:?} went from {was} to {is}, not up by {by}"
        );
    };
    grew("etcd_server_proposals_committed_total", &[], 50.0);
    grew("etcd_server_proposals_applied_total", &[], 50.0);
    grew("etcd_debugging_mvcc_keys_total", &[], 50.0);
    // 50 puts of a 2-byte key and 1-byte value, framed: more than 50 * 3 bytes each way.
    grew("etcd_network_client_grpc_received_bytes_total", &[], 150.0);
    grew("etcd_network_client_grpc_sent_bytes_total", &[], 150.0);
    grew("etcd_disk_wal_fsync_duration_seconds_count", &[], 1.0);
    grew("etcd_disk_backend_commit_duration_seconds_count", &[], 1.0);
    let put = [("grpc_service", "etcdserverpb.KV"), ("grpc_method", "Put")];
    grew(
        "grpc_server_started_total",
        &[put[0], put[1], ("grpc_type", "unary")],
        50.0,
    );
    grew(
        "grpc_server_handled_total",
        &[put[0], put[1], ("grpc_code", "OK")],
        50.0,
    );
    grew(
        "grpc_server_handled_total",
        &[("grpc_method", "Range"), ("grpc_code", "OutOfRange")],
        1.0,
    );
    grew(
        "grpc_server_started_total",
        &[("grpc_method", "Watch"), ("grpc_type", "bidi_stream")],
        1.0,
    );
    assert!(get(&after, "etcd_debugging_mvcc_watcher_total", &[]) >= 1.0);
    assert!(get(&after, "etcd_mvcc_db_total_size_in_bytes", &[]) > 0.0);
    assert!(get(&after, "process_resident_memory_bytes", &[]) > 0.0);

    // Raft traffic to each follower, and their round trips probed.
    let members = client.member_list().await.unwrap();
    let leader_id = client.status().await.unwrap().leader;
    for member in members.iter().filter(|m| m.id != leader_id) {
        let to = format!("{:x}", member.id);
        grew("etcd_network_peer_sent_bytes_total", &[("To", &to)], 1.0);
        let probed = eventually(WAIT, || {
            let to = to.clone();
            async move {
                let now = scrape(address).await;
                value(
                    &now,
                    "etcd_network_peer_round_trip_time_seconds_count",
                    &[("To", &to)],
                )
                .is_some_and(|n| n >= 1.0)
            }
        })
        .await;
        assert!(probed, "the round trip to {to} was measured");
    }

    // A leader change is counted by the member that sees it.
    let follower = members.iter().find(|m| m.id != leader_id).unwrap();
    let changes = get(&after, "etcd_server_leader_changes_seen_total", &[]);
    let (ok, _, stderr) = Etcdctl::V35.run(
        &node.endpoint(),
        &["move-leader", &format!("{:x}", follower.id)],
    );
    assert!(ok, "{stderr}");
    let counted = eventually(WAIT, || async {
        let now = scrape(address).await;
        get(&now, "etcd_server_leader_changes_seen_total", &[]) > changes
            && get(&now, "etcd_server_is_leader", &[]) == 0.0
    })
    .await;
    assert!(counted, "the leader change was counted");
}

#[tokio::test]
async fn listen_metrics_urls_serve_metrics_and_health() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let _node = Node::start_with(&dir.path().join("n"), &["--listen-metrics-urls", &url]);
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let scraped = scrape(address).await;
    assert_eq!(get(&scraped, "etcd_server_has_leader", &[]), 1.0);
    let health = http_get(address, "/health").await;
    assert!(health.contains(r#""health":"true""#), "{health}");
}
