//! Snapshots in etcd's format: `etcdctl snapshot save` against Ballast writes a file
//! `etcdutl` 3.5.1 reads and restores, and a real etcd 3.5.1 serves the restored data
//! with the same keys, revisions, versions, leases, users and compaction point; a
//! snapshot taken while a writer runs does not stall it.

use std::path::Path;
use std::time::{Duration, Instant};

use ballast_client::{PutOptions, WatchOptions};
use ballast_tests::{
    etcd_35_dir, snapshot_status_json, stalls, BackgroundWriter, Etcd, Etcdctl, Node, Stalls,
};
use serde_json::Value;

fn ctl(endpoint: &str, args: &[&str]) -> String {
    let (ok, stdout, stderr) = Etcdctl::V35.run(endpoint, args);
    assert!(ok, "etcdctl {args:?}: {stderr}");
    stdout
}

/// Every key with its revisions, version, value and lease, and the store revision.
fn listing(endpoint: &str) -> (Vec<Value>, i64) {
    let out: Value = serde_json::from_str(&ctl(endpoint, &["get", "", "--prefix", "-w", "json"]))
        .expect("etcdctl's JSON");
    let revision = out["header"]["revision"].as_i64().unwrap();
    (out["kvs"].as_array().cloned().unwrap_or_default(), revision)
}

fn etcdutl_status(file: &Path) -> Value {
    let etcdutl = etcd_35_dir().join("etcdutl");
    serde_json::from_str(&snapshot_status_json(&etcdutl, file)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ballast_snapshot_is_restored_and_served_by_etcd() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("ballast"));
    let ep = node.endpoint();
    // "old" is written once, below the compaction point: its one version must come along.
    ctl(&ep, &["put", "old", "0"]);
    ctl(&ep, &["put", "a", "1"]);
    ctl(&ep, &["put", "b", "2"]);
    ctl(&ep, &["put", "a", "3"]);
    ctl(&ep, &["del", "b"]);
    let lease = ctl(&ep, &["lease", "grant", "600"]);
    let lease_id = lease.split_whitespace().nth(1).unwrap().to_string();
    ctl(&ep, &["put", "leased", "x", "--lease", &lease_id]);
    ctl(&ep, &["compact", "4", "--physical"]);
    ctl(&ep, &["put", "c", "4"]);
    ctl(&ep, &["user", "add", "alice:secret"]);
    ctl(&ep, &["role", "add", "reader"]);
    ctl(&ep, &["role", "grant-permission", "reader", "read", "a"]);
    ctl(&ep, &["user", "grant-role", "alice", "reader"]);

    let file = dir.path().join("ballast.db");
    ctl(&ep, &["snapshot", "save", file.to_str().unwrap()]);
    let status = etcdutl_status(&file);
    let (kvs, revision) = listing(&ep);
    assert_eq!(status["revision"], revision);
    assert!(status["totalKey"].as_i64().unwrap() >= 7, "{status}");

    let etcd = Etcd::start_restored(&dir.path().join("etcd"), &file);
    let served = etcd.endpoint();
    let (etcd_kvs, etcd_revision) = listing(&served);
    assert_eq!(
        etcd_kvs, kvs,
        "etcd serves the same keys, revisions, versions, leases"
    );
    assert_eq!(etcd_revision, revision);
    assert!(ctl(&served, &["lease", "list"]).contains(&lease_id));
    let (ok, _, stderr) = Etcdctl::V35.run(&served, &["get", "a", "--rev", "3"]);
    assert!(
        !ok && stderr.contains("required revision has been compacted"),
        "{stderr}"
    );
    // At the compaction point, the versions below it that it still shows.
    for (rev, key, value) in [("4", "a", "1"), ("4", "old", "0"), ("5", "a", "3")] {
        let got = ctl(&served, &["get", key, "--rev", rev, "--print-value-only"]);
        assert_eq!(got.trim(), value, "{key} at {rev}");
    }
    assert!(ctl(&served, &["user", "get", "alice"]).contains("reader"));
    let role = ctl(&served, &["role", "get", "reader"]);
    assert!(role.contains("KV Read:\n\ta\n"), "{role}");
    // The restored etcd takes writes at the next revision.
    assert!(ctl(&served, &["put", "d", "5", "-w", "json"])
        .contains(&format!("\"revision\":{}", revision + 1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_taken_while_writes_run_does_not_stall_them() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("ballast"));
    let client = node.client().await;
    let value = vec![b'v'; 100 << 10];
    for i in 0..200 {
        client
            .put(format!("big/{i}"), &value, PutOptions::new())
            .await
            .unwrap();
    }
    // A watcher sees every write the snapshot races with, so none is lost silently.
    let _watch = client.watch("writer", WatchOptions::new()).await.unwrap();

    let writer = BackgroundWriter::start(&client, "writer");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let file = dir.path().join("during.db");
    let endpoint = node.endpoint();
    let started = Instant::now();
    let path = file.to_str().unwrap().to_string();
    tokio::task::spawn_blocking(move || ctl(&endpoint, &["snapshot", "save", &path]))
        .await
        .unwrap();
    let took = started.elapsed();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let done = writer.stop().await;
    let Stalls {
        during,
        longest_gap,
    } = stalls(&done, started, took);
    println!("snapshot save took {took:?}; {during} writes completed meanwhile, longest gap {longest_gap:?}");
    assert!(during > 0, "no write completed during a {took:?} snapshot");
    assert!(
        longest_gap < took,
        "writes stalled {longest_gap:?} of {took:?}"
    );
    // The file is one consistent point in the writer's run.
    let revision = etcdutl_status(&file)["revision"].as_i64().unwrap();
    let (first, last) = (done.first().unwrap().1, done.last().unwrap().1);
    assert!(
        (first..=last).contains(&revision),
        "{revision} within {first}..={last}"
    );
}
