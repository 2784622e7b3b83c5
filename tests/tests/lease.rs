//! Leases over gRPC against a real node, with ballast-client.

use std::time::Duration;

use ballast_client::{Code, EventKind, GetOptions, LeaseState, PutOptions, WatchOptions};
use ballast_tests::{eventually, Node};

#[tokio::test]
async fn grant_attach_time_to_live_list_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("n"));
    let c = node.client().await;
    let lease = c.lease_grant(60, 0).await.unwrap();
    assert!(lease.id > 0);
    assert_eq!(lease.ttl, 60);
    assert_eq!(
        lease.header.revision, 1,
        "granting does not bump the revision"
    );
    let chosen = c.lease_grant(30, 4242).await.unwrap();
    assert_eq!(chosen.id, 4242);
    let again = c.lease_grant(30, 4242).await.unwrap_err();
    assert_eq!(again.code(), Some(Code::FailedPrecondition));
    assert_eq!(again.message(), Some("etcdserver: lease already exists"));
    let huge = c.lease_grant(9_000_000_001, 0).await.unwrap_err();
    assert_eq!(huge.code(), Some(Code::OutOfRange));
    assert_eq!(huge.message(), Some("etcdserver: too large lease TTL"));
    let short = c.lease_grant(1, 0).await.unwrap();
    assert_eq!(
        short.ttl, 2,
        "TTLs below 1.5 election timeouts are raised (as etcd)"
    );

    c.put("a", "1", PutOptions::new().with_lease(lease.id))
        .await
        .unwrap();
    c.put("b", "1", PutOptions::new().with_lease(lease.id))
        .await
        .unwrap();
    let ttl = c.lease_time_to_live(lease.id, true).await.unwrap();
    assert_eq!(ttl.granted_ttl, 60);
    assert!(ttl.ttl > 50 && ttl.ttl <= 60, "{ttl:?}");
    assert_eq!(
        ttl.keys,
        vec![bytes::Bytes::from("a"), bytes::Bytes::from("b")]
    );
    let mut leases = c.lease_leases().await.unwrap();
    leases.sort();
    assert!(leases.contains(&lease.id) && leases.contains(&4242));

    let before = c.get("a", GetOptions::new()).await.unwrap().header.revision;
    c.lease_revoke(lease.id).await.unwrap();
    let after = c.get("a", GetOptions::new()).await.unwrap();
    assert!(after.kvs.is_empty());
    assert_eq!(
        after.header.revision,
        before + 1,
        "both keys deleted in one revision"
    );
    assert_eq!(c.lease_time_to_live(lease.id, false).await.unwrap().ttl, -1);
    let gone = c.lease_revoke(lease.id).await.unwrap_err();
    assert_eq!(gone.code(), Some(Code::NotFound));
    assert_eq!(
        gone.message(),
        Some("etcdserver: requested lease not found")
    );
}

#[tokio::test]
async fn expiry_deletes_keys_and_watchers_see_it() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("n"));
    let c = node.client().await;
    let lease = c.lease_grant(2, 0).await.unwrap();
    c.put("e", "1", PutOptions::new().with_lease(lease.id))
        .await
        .unwrap();
    let (_w, mut stream) = c.watch("e", WatchOptions::new()).await.unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("the lease expires within its TTL and a little")
        .unwrap()
        .unwrap();
    assert_eq!(response.events[0].kind, EventKind::Delete);
    assert!(c.get("e", GetOptions::new()).await.unwrap().kvs.is_empty());
    assert_eq!(c.lease_time_to_live(lease.id, false).await.unwrap().ttl, -1);
}

#[tokio::test]
async fn keep_alive_holds_a_lease_past_its_ttl_and_reports_its_loss() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("n"));
    let c = node.client().await;
    let lease = c.lease_grant(2, 0).await.unwrap();
    c.put("kept", "1", PutOptions::new().with_lease(lease.id))
        .await
        .unwrap();
    let mut keep = c.lease_keep_alive(lease.id).await.unwrap();
    // Well past the TTL, the key is still there.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(keep.state(), LeaseState::Alive(2));
    assert_eq!(c.get("kept", GetOptions::new()).await.unwrap().kvs.len(), 1);
    c.lease_revoke(lease.id).await.unwrap();
    let lost = tokio::time::timeout(Duration::from_secs(5), keep.lost())
        .await
        .unwrap();
    assert!(matches!(lost, ballast_client::Error::LeaseLost(id) if id == lease.id));
    // Keeping an unknown lease alive fails at once.
    assert!(c.lease_keep_alive(777).await.is_err());
}

#[tokio::test]
async fn leases_still_expire_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(&dir.path().join("n"));
    let c = node.client().await;
    let lease = c.lease_grant(3, 0).await.unwrap();
    c.put("r", "1", PutOptions::new().with_lease(lease.id))
        .await
        .unwrap();
    node.kill9();
    node.restart();
    let c = node.client().await;
    assert_eq!(c.get("r", GetOptions::new()).await.unwrap().kvs.len(), 1);
    let gone = eventually(Duration::from_secs(15), || {
        let c = c.clone();
        async move { c.get("r", GetOptions::new()).await.unwrap().kvs.is_empty() }
    })
    .await;
    assert!(gone, "the lease expired after the restart and took its key");
}
