//! Replication: real 3- and 5-member clusters of `ballast` processes on loopback.

use std::time::Duration;

use ballast_client::{Client, ConnectOptions, GetOptions, PutOptions, WatchOptions};
use ballast_tests::{eventually, TestCluster};

const WAIT: Duration = Duration::from_secs(20);

async fn client_of(endpoint: String) -> Client {
    Client::connect([endpoint], ConnectOptions::default())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_replicate_and_followers_serve_reads_writes_and_watches() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = TestCluster::start(dir.path(), 3, &[]);
    let leader = cluster.leader().await;
    let follower = (leader + 1) % 3;
    let through_leader = client_of(cluster.nodes[leader].endpoint()).await;
    let through_follower = client_of(cluster.nodes[follower].endpoint()).await;

    // A watch on the follower sees writes made anywhere.
    let (_w, mut events) = through_follower
        .watch("k/", WatchOptions::new().with_prefix())
        .await
        .unwrap();

    let a = through_leader
        .put("k/a", "1", PutOptions::new())
        .await
        .unwrap();
    let b = through_follower
        .put("k/b", "2", PutOptions::new())
        .await
        .unwrap();
    assert_eq!(
        b.header.revision,
        a.header.revision + 1,
        "one revision sequence"
    );

    // A linearizable read on any member sees both writes.
    for node in &cluster.nodes {
        let client = client_of(node.endpoint()).await;
        let got = client
            .get("k/", GetOptions::new().with_prefix())
            .await
            .unwrap();
        assert_eq!(got.kvs.len(), 2, "member {}", node.name);
        assert_eq!(got.header.revision, b.header.revision);
    }
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let response = tokio::time::timeout(WAIT, events.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.extend(
            response
                .events
                .into_iter()
                .map(|e| e.kv.key_str().unwrap().to_string()),
        );
    }
    assert_eq!(seen, ["k/a", "k/b"]);

    // Every member lists every member with its client URL.
    let members = through_follower.member_list().await.unwrap();
    assert_eq!(members.len(), 3);
    for node in &cluster.nodes {
        let published = eventually(WAIT, || {
            let client = through_follower.clone();
            let url = node.url();
            async move {
                client
                    .member_list()
                    .await
                    .unwrap()
                    .iter()
                    .any(|m| m.client_urls == [url.clone()])
            }
        })
        .await;
        assert!(published, "{} published its client URL", node.name);
    }

    // All members hold the same history.
    let hashes = futures::future::join_all(cluster.nodes.iter().map(|n| async move {
        let client = client_of(n.endpoint()).await;
        client.hash_kv(b.header.revision).await.unwrap().hash
    }))
    .await;
    assert!(hashes.windows(2).all(|w| w[0] == w[1]), "{hashes:?}");
}
