//! A bounded soak: a 3-member cluster under mixed load for `SOAK` while clients
//! misbehave (watch streams that never read, streams dropped mid-read, floods of watch
//! creates, lease churn) and a follower is killed and restarted. Every member's RSS
//! stays under `RSS_MAX` throughout, and every write that was acknowledged is there at
//! the end.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ballast_client::{Client, ConnectOptions, GetOptions, PutOptions, WatchOptions};
use ballast_proto::etcdserverpb::watch_client::WatchClient;
use ballast_proto::etcdserverpb::watch_request::RequestUnion;
use ballast_proto::etcdserverpb::{WatchCreateRequest, WatchRequest};
use ballast_tests::{rss_of, TestCluster};

/// How long the load runs.
const SOAK: Duration = Duration::from_secs(60);
/// The bound each member's RSS keeps to (debug build, 256 B values; a member idles near
/// 40 MiB and its block cache may take 128 MiB; peaks of 120 to 174 MiB measured).
const RSS_MAX: u64 = 384 << 20;
const WRITERS: usize = 8;
const VALUE: &[u8] = &[b'v'; 256];

fn create(key: &str, start_revision: i64) -> WatchRequest {
    WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: key.as_bytes().to_vec().into(),
            range_end: b"\0".to_vec().into(),
            start_revision,
            prev_kv: true,
            ..Default::default()
        })),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn members_hold_bounded_memory_and_lose_no_acknowledged_write_under_misbehaving_clients() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = TestCluster::start(dir.path(), 3, &[]);
    let endpoints = cluster.endpoints();
    let urls: Vec<String> = cluster.nodes.iter().map(|n| n.url()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();

    // Writers: unique keys, each acknowledged put recorded.
    for w in 0..WRITERS {
        let client = Client::connect(endpoints.clone(), ConnectOptions::default())
            .await
            .unwrap();
        let (stop, acknowledged) = (stop.clone(), acknowledged.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("soak/{w}/{n:08}");
                if client.put(&key, VALUE, PutOptions::new()).await.is_ok() {
                    acknowledged.lock().unwrap().push(key);
                }
                n += 1;
            }
        }));
    }
    // Watch streams from revision 1 that never read, one per member.
    let mut idle = Vec::new();
    for url in &urls {
        let mut watch = WatchClient::connect(url.clone()).await.unwrap();
        let (keep_open, requests) = tokio::sync::mpsc::channel(1);
        keep_open.send(create("soak/", 1)).await.unwrap();
        let responses = watch
            .watch(tokio_stream::wrappers::ReceiverStream::new(requests))
            .await
            .unwrap();
        idle.push((keep_open, responses, watch));
    }
    // Streams dropped mid-read, and floods of creates on one stream, over and over.
    for url in urls.clone() {
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let Ok(mut watch) = WatchClient::connect(url.clone()).await else {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                };
                let flood: Vec<WatchRequest> =
                    (0..500).map(|i| create(&format!("soak/{i}"), 0)).collect();
                if let Ok(response) = watch.watch(tokio_stream::iter(flood)).await {
                    let mut stream = response.into_inner();
                    for _ in 0..50 {
                        if !matches!(stream.message().await, Ok(Some(_))) {
                            break;
                        }
                    }
                }
                // Dropped here, mid-stream.
            }
        }));
    }
    // Lease churn.
    {
        let client = Client::connect(endpoints.clone(), ConnectOptions::default())
            .await
            .unwrap();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(lease) = client.lease_grant(30, 0).await {
                    let _ = client
                        .put("soak-lease", "x", PutOptions::new().with_lease(lease.id))
                        .await;
                    let _ = client.lease_revoke(lease.id).await;
                }
            }
        }));
    }

    // Sample RSS; kill and restart a follower halfway.
    let started = Instant::now();
    let mut peak = vec![0u64; cluster.nodes.len()];
    let mut killed = false;
    while started.elapsed() < SOAK {
        tokio::time::sleep(Duration::from_secs(1)).await;
        for (i, node) in cluster.nodes.iter().enumerate() {
            if node.is_running() {
                peak[i] = peak[i].max(rss_of(node.pid()));
            }
        }
        if !killed && started.elapsed() > SOAK / 2 {
            let leader = cluster.leader().await;
            let follower = (leader + 1) % 3;
            cluster.nodes[follower].kill9();
            tokio::time::sleep(Duration::from_secs(2)).await;
            cluster.nodes[follower].respawn();
            cluster.nodes[follower].wait_ready().unwrap();
            killed = true;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
    }
    drop(idle);

    for (i, peak) in peak.iter().enumerate() {
        assert!(*peak < RSS_MAX, "member {i} peaked at {} MiB", peak >> 20);
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() > 1000,
        "only {} writes",
        acknowledged.len()
    );
    let client = Client::connect(cluster.endpoints(), ConnectOptions::default())
        .await
        .unwrap();
    let stored = client
        .get("soak/", GetOptions::new().with_prefix().with_keys_only())
        .await
        .unwrap();
    let stored: std::collections::HashSet<Vec<u8>> =
        stored.kvs.into_iter().map(|kv| kv.key.to_vec()).collect();
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|key| !stored.contains(key.as_bytes()))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost: {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    // A watcher that reads gets the history the idle ones were owed.
    let (_watcher, mut events) = client
        .watch(
            "soak/0/",
            WatchOptions::new().with_prefix().with_start_revision(1),
        )
        .await
        .unwrap();
    let mut seen = 0;
    let written = acknowledged
        .iter()
        .filter(|k| k.starts_with("soak/0/"))
        .count();
    while seen < written {
        seen += events.message().await.unwrap().expect("open").events.len();
    }
}
