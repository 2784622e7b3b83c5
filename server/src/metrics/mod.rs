//! Prometheus metrics with etcd's names, types, labels and buckets, so etcd's alerts
//! and Grafana dashboard work unchanged; served on `/metrics` of the client URLs and of
//! `--listen-metrics-urls`. One registry per process (as etcd's): counters and
//! histograms are updated where things happen (the gRPC middleware in
//! `rpc/grpc_metrics.rs`, the raft driver, the peer transport and its prober in
//! `node/probe.rs`), gauges are set from [`Gauges`] when scraped. This module names
//! nothing of the node, so every layer can count into it.

use std::sync::LazyLock;

use prometheus::{
    exponential_buckets, Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter,
    IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::{CLUSTER_VERSION, ETCD_VERSION};

/// Every metric of this process.
pub(crate) struct Metrics {
    registry: Registry,
    has_leader: IntGauge,
    is_leader: IntGauge,
    pub(crate) leader_changes: IntCounter,
    proposals_committed: IntGauge,
    proposals_applied: IntGauge,
    proposals_pending: IntGauge,
    pub(crate) proposals_failed: IntCounter,
    quota_bytes: IntGauge,
    pub(crate) wal_fsync: Histogram,
    pub(crate) backend_commit: Histogram,
    db_total_size: IntGauge,
    db_in_use: IntGauge,
    /// etcd 3.4's name for the database size, still read by etcd's Grafana dashboard.
    db_total_size_debugging: IntGauge,
    keys_total: IntGauge,
    watchers: IntGauge,
    current_revision: IntGauge,
    compact_revision: IntGauge,
    pub(crate) peer_sent: IntCounterVec,
    pub(crate) peer_received: IntCounterVec,
    pub(crate) peer_round_trip: HistogramVec,
    pub(crate) client_received: IntCounter,
    pub(crate) client_sent: IntCounter,
    pub(crate) grpc_started: IntCounterVec,
    pub(crate) grpc_handled: IntCounterVec,
    rocksdb: IntGaugeVec,
}

/// RocksDB properties reported as `ballast_rocksdb{property=...}`, what explains a slow
/// disk or a write stall; each with whether it is per column family (then summed).
pub(crate) const ROCKSDB_PROPERTIES: [(&str, bool); 6] = [
    ("rocksdb.num-running-compactions", false),
    ("rocksdb.num-running-flushes", false),
    ("rocksdb.actual-delayed-write-rate", false),
    ("rocksdb.is-write-stopped", false),
    ("rocksdb.compaction-pending", true),
    ("rocksdb.estimate-pending-compaction-bytes", true),
];

/// This process's metrics.
pub(crate) fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let gauge = IntGauge::new(name, help).expect("a valid gauge");
    registry
        .register(Box::new(gauge.clone()))
        .expect("registered once");
    gauge
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let counter = IntCounter::new(name, help).expect("a valid counter");
    registry
        .register(Box::new(counter.clone()))
        .expect("registered once");
    counter
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let counter = IntCounterVec::new(Opts::new(name, help), labels).expect("a valid counter");
    registry
        .register(Box::new(counter.clone()))
        .expect("registered once");
    counter
}

/// etcd's buckets for disk latencies: 1 ms to 8 s.
fn disk_buckets() -> Vec<f64> {
    exponential_buckets(0.001, 2.0, 14).expect("valid buckets")
}

fn histogram(registry: &Registry, name: &str, help: &str) -> Histogram {
    let opts = HistogramOpts::new(name, help).buckets(disk_buckets());
    let histogram = Histogram::with_opts(opts).expect("a valid histogram");
    registry
        .register(Box::new(histogram.clone()))
        .expect("registered once");
    histogram
}

impl Metrics {
    fn new() -> Metrics {
        let r = Registry::new();
        #[cfg(target_os = "linux")]
        r.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))
        .expect("registered once");
        let versions = [
            ("etcd_server_version", "server_version", ETCD_VERSION),
            ("etcd_cluster_version", "cluster_version", CLUSTER_VERSION),
        ];
        for (name, label, value) in versions {
            let help =
                format!("Which version is running. 1 for '{label}' label with current version.");
            let info = IntGaugeVec::new(Opts::new(name, help), &[label]).expect("a valid gauge");
            info.with_label_values(&[value]).set(1);
            r.register(Box::new(info)).expect("registered once");
        }
        let peer_round_trip = HistogramVec::new(
            HistogramOpts::new(
                "etcd_network_peer_round_trip_time_seconds",
                "Round-Trip-Time histogram between peers",
            )
            .buckets(exponential_buckets(0.0001, 2.0, 14).expect("valid buckets")),
            &["To"],
        )
        .expect("a valid histogram");
        r.register(Box::new(peer_round_trip.clone()))
            .expect("registered once");
        let rocksdb = IntGaugeVec::new(
            Opts::new(
                "ballast_rocksdb",
                "RocksDB properties of the store, summed over its column families.",
            ),
            &["property"],
        )
        .expect("a valid gauge");
        r.register(Box::new(rocksdb.clone()))
            .expect("registered once");
        Metrics {
            has_leader: gauge(
                &r,
                "etcd_server_has_leader",
                "Whether or not a leader exists. 1 is existence, 0 is not.",
            ),
            is_leader: gauge(
                &r,
                "etcd_server_is_leader",
                "Whether or not this member is a leader. 1 if is, 0 otherwise.",
            ),
            leader_changes: counter(
                &r,
                "etcd_server_leader_changes_seen_total",
                "The number of leader changes seen.",
            ),
            proposals_committed: gauge(
                &r,
                "etcd_server_proposals_committed_total",
                "The total number of consensus proposals committed.",
            ),
            proposals_applied: gauge(
                &r,
                "etcd_server_proposals_applied_total",
                "The total number of consensus proposals applied.",
            ),
            proposals_pending: gauge(
                &r,
                "etcd_server_proposals_pending",
                "The current number of pending proposals to commit.",
            ),
            proposals_failed: counter(
                &r,
                "etcd_server_proposals_failed_total",
                "The total number of failed proposals seen.",
            ),
            quota_bytes: gauge(
                &r,
                "etcd_server_quota_backend_bytes",
                "Current backend storage quota size in bytes.",
            ),
            wal_fsync: histogram(
                &r,
                "etcd_disk_wal_fsync_duration_seconds",
                "The latency distributions of fsync called by WAL.",
            ),
            backend_commit: histogram(
                &r,
                "etcd_disk_backend_commit_duration_seconds",
                "The latency distributions of commit called by backend.",
            ),
            db_total_size: gauge(
                &r,
                "etcd_mvcc_db_total_size_in_bytes",
                "Total size of the underlying database physically allocated in bytes.",
            ),
            db_in_use: gauge(
                &r,
                "etcd_mvcc_db_total_size_in_use_in_bytes",
                "Total size of the underlying database logically in use in bytes.",
            ),
            keys_total: gauge(
                &r,
                "etcd_debugging_mvcc_keys_total",
                "Total number of keys.",
            ),
            watchers: gauge(
                &r,
                "etcd_debugging_mvcc_watcher_total",
                "Total number of watchers.",
            ),
            current_revision: gauge(
                &r,
                "etcd_debugging_mvcc_current_revision",
                "The current revision of store.",
            ),
            compact_revision: gauge(
                &r,
                "etcd_debugging_mvcc_compact_revision",
                "The revision of the last compaction in store.",
            ),
            peer_sent: counter_vec(
                &r,
                "etcd_network_peer_sent_bytes_total",
                "The total number of bytes sent to peers.",
                &["To"],
            ),
            peer_received: counter_vec(
                &r,
                "etcd_network_peer_received_bytes_total",
                "The total number of bytes received from peers.",
                &["From"],
            ),
            peer_round_trip,
            client_received: counter(
                &r,
                "etcd_network_client_grpc_received_bytes_total",
                "The total number of bytes received from grpc clients.",
            ),
            client_sent: counter(
                &r,
                "etcd_network_client_grpc_sent_bytes_total",
                "The total number of bytes sent to grpc clients.",
            ),
            db_total_size_debugging: gauge(
                &r,
                "etcd_debugging_mvcc_db_total_size_in_bytes",
                "Total size of the underlying database physically allocated in bytes.",
            ),
            grpc_started: counter_vec(
                &r,
                "grpc_server_started_total",
                "Total number of RPCs started on the server.",
                &["grpc_type", "grpc_service", "grpc_method"],
            ),
            grpc_handled: counter_vec(
                &r,
                "grpc_server_handled_total",
                "Total number of RPCs completed on the server, regardless of success or failure.",
                &["grpc_type", "grpc_service", "grpc_method", "grpc_code"],
            ),
            rocksdb,
            registry: r,
        }
    }
}

/// The gauges, read from the node at a scrape.
#[derive(Debug, Default)]
pub(crate) struct Gauges {
    pub has_leader: bool,
    pub is_leader: bool,
    pub committed: u64,
    pub applied: u64,
    pub pending: usize,
    /// -1: no quota.
    pub quota_bytes: i64,
    pub db_bytes: u64,
    pub db_bytes_in_use: u64,
    pub keys: i64,
    pub watchers: usize,
    pub revision: i64,
    pub compacted: i64,
    /// Each of [`ROCKSDB_PROPERTIES`] with its value.
    pub rocksdb: Vec<(&'static str, u64)>,
}

/// The metrics as of now, in Prometheus' text format (`text/plain; version=0.0.4`).
pub(crate) fn render(gauges: &Gauges) -> String {
    let m = metrics();
    m.has_leader.set(i64::from(gauges.has_leader));
    m.is_leader.set(i64::from(gauges.is_leader));
    m.proposals_committed.set(gauges.committed as i64);
    m.proposals_applied.set(gauges.applied as i64);
    m.proposals_pending.set(gauges.pending as i64);
    m.quota_bytes.set(gauges.quota_bytes);
    m.db_total_size.set(gauges.db_bytes as i64);
    m.db_total_size_debugging.set(gauges.db_bytes as i64);
    m.db_in_use.set(gauges.db_bytes_in_use as i64);
    m.keys_total.set(gauges.keys);
    m.watchers.set(gauges.watchers as i64);
    m.current_revision.set(gauges.revision);
    m.compact_revision.set(gauges.compacted);
    for (property, value) in &gauges.rocksdb {
        m.rocksdb
            .with_label_values(&[property.trim_start_matches("rocksdb.")])
            .set(*value as i64);
    }
    let mut out = Vec::new();
    TextEncoder::new()
        .encode(&m.registry.gather(), &mut out)
        .expect("metrics encode");
    String::from_utf8(out).expect("the text format is UTF-8")
}
