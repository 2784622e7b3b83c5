//! kill -9 during a stream of writes: every acknowledged write survives, the revision
//! continues where it was, and leases still expire.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ballast_client::{GetOptions, PutOptions};
use ballast_tests::{eventually, Node};

/// Concurrent writers while the node is killed.
const WRITERS: usize = 8;
/// Acknowledged writes before the kill.
const ACKED_BEFORE_KILL: usize = 400;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(&dir.path().join("n"));
    let client = node.client().await;
    let lease = client.lease_grant(3, 0).await.unwrap();
    client
        .put("leased", "x", PutOptions::new().with_lease(lease.id))
        .await
        .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let (acks_tx, mut acks) = tokio::sync::mpsc::unbounded_channel();
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let client = client.clone();
        let stop = stop.clone();
        let acks = acks_tx.clone();
        writers.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("w/{w}/{i:06}");
                let value = format!("value-{w}-{i}");
                match client.put(&key, &value, PutOptions::new()).await {
                    Ok(put) => {
                        let _ = acks.send((key, value, put.header.revision));
                    }
                    Err(_) => break, // the node is gone: the outcome of this one is unknown
                }
                i += 1;
            }
        }));
    }
    drop(acks_tx);

    let mut acked = Vec::new();
    while acked.len() < ACKED_BEFORE_KILL {
        acked.push(acks.recv().await.expect("writers are running"));
    }
    node.kill9();
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }
    while let Ok(ack) = acks.try_recv() {
        acked.push(ack);
    }
    let max_acked = acked.iter().map(|(_, _, r)| *r).max().unwrap();

    node.restart();
    let client = node.client().await;
    let all = client
        .get("w/", GetOptions::new().with_prefix())
        .await
        .unwrap();
    let stored: std::collections::HashMap<_, _> = all
        .kvs
        .iter()
        .map(|kv| {
            (
                kv.key_str().unwrap().to_string(),
                (kv.value_str().unwrap().to_string(), kv.mod_revision),
            )
        })
        .collect();
    for (key, value, revision) in &acked {
        let (found, found_revision) = stored
            .get(key)
            .unwrap_or_else(|| panic!("acknowledged write {key} lost"));
        assert_eq!(found, value);
        assert_eq!(
            found_revision, revision,
            "{key} kept the revision it was acknowledged with"
        );
    }
    assert!(all.header.revision >= max_acked);
    let next = client
        .put("after", "restart", PutOptions::new())
        .await
        .unwrap();
    assert_eq!(
        next.header.revision,
        all.header.revision + 1,
        "the revision continues"
    );

    let expired = eventually(Duration::from_secs(15), || {
        let client = client.clone();
        async move {
            client
                .get("leased", GetOptions::new())
                .await
                .unwrap()
                .kvs
                .is_empty()
        }
    })
    .await;
    assert!(expired, "the lease still expires after the crash");
}
