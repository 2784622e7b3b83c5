//! Replication: real 3- and 5-member clusters of `ballast` processes on loopback.

use std::time::Duration;

use ballast_client::{Client, ConnectOptions, GetOptions, PutOptions, WatchOptions};
use ballast_tests::{eventually, TestCluster, WAIT};

async fn client_of(endpoint: String) -> Client {
    Client::connect([endpoint], ConnectOptions::default())
        .await
        .unwrap()
}

/// The raft id of the member serving `endpoint`.
async fn member_id_of(endpoint: String) -> u64 {
    client_of(endpoint)
        .await
        .status()
        .await
        .unwrap()
        .header
        .member_id
}

/// A snapshot every 50 entries, and the log kept only 20 behind it: a member that was
/// down for more catches up by snapshot.
const SNAPSHOT_OFTEN: [&str; 4] = [
    "--snapshot-count",
    "50",
    "--experimental-snapshot-catchup-entries",
    "20",
];

/// Restarts member `down` of a cluster started with [`SNAPSHOT_OFTEN`], waits until
/// `caught_up` holds for a client of it, and checks that it needed a snapshot.
async fn respawn_to_catch_up_by_snapshot<F, Fut>(
    cluster: &mut TestCluster,
    down: usize,
    caught_up: F,
) -> Client
where
    F: Fn(Client) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    cluster.nodes[down].respawn();
    cluster.nodes[down].wait_ready().unwrap();
    let log = cluster.nodes[down].log();
    let back = client_of(cluster.nodes[down].endpoint()).await;
    let done = eventually(WAIT, || caught_up(back.clone())).await;
    assert!(done, "the member that was down caught up");
    let log = cluster.nodes[down].log() + &log;
    assert!(
        log.contains("snapshot installed"),
        "it needed a snapshot:\n{log}"
    );
    back
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

/// The raft driver is a task that blocks its worker while it writes
/// (`server/src/raft/mod.rs`): with one worker, anything it waited for from another task
/// would stop the member. Members with one worker must still do all of a member's work:
/// replicate concurrent writes, answer linearizable reads and watches on a follower,
/// leases, and catch a member up by snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_with_one_runtime_worker_do_everything() {
    let dir = tempfile::tempdir().unwrap();
    // Tokio reads the variable for the runtime's worker count.
    let one_worker = [("TOKIO_WORKER_THREADS", "1")];
    let mut cluster = TestCluster::start_env(dir.path(), 3, &one_worker, &SNAPSHOT_OFTEN);
    let leader = cluster.leader().await;
    let follower = (leader + 1) % 3;
    let down = (leader + 2) % 3;
    let through_leader = client_of(cluster.nodes[leader].endpoint()).await;
    let through_follower = client_of(cluster.nodes[follower].endpoint()).await;
    let (_w, mut events) = through_follower
        .watch("one/", WatchOptions::new().with_prefix())
        .await
        .unwrap();
    cluster.nodes[down].kill9();

    // Sixteen writers at once, half through the follower.
    let writers = (0..16).map(|w| {
        let client = if w % 2 == 0 {
            through_leader.clone()
        } else {
            through_follower.clone()
        };
        async move {
            for i in 0..20 {
                client
                    .put(format!("one/{w:02}/{i:02}"), "v", PutOptions::new())
                    .await
                    .unwrap();
            }
        }
    });
    futures::future::join_all(writers).await;
    let lease = through_follower.lease_grant(60, 0).await.unwrap().id;
    through_follower.lease_keep_alive(lease).await.unwrap();
    through_follower.lease_revoke(lease).await.unwrap();

    let got = through_follower
        .get("one/", GetOptions::new().with_prefix().with_count_only())
        .await
        .unwrap();
    assert_eq!(got.count, 320, "a linearizable read on the follower");
    let mut seen = 0;
    while seen < 320 {
        let response = tokio::time::timeout(WAIT, events.message())
            .await
            .expect("the follower's watch keeps up")
            .unwrap()
            .unwrap();
        seen += response.events.len();
    }
    assert_eq!(seen, 320);

    respawn_to_catch_up_by_snapshot(&mut cluster, down, |back| async move {
        back.get("one/", GetOptions::new().with_prefix().with_count_only())
            .await
            .is_ok_and(|r| r.count == 320)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_was_down_while_the_log_was_truncated_catches_up_by_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = TestCluster::start(dir.path(), 3, &SNAPSHOT_OFTEN);
    let leader = cluster.leader().await;
    let down = (leader + 1) % 3;
    cluster.nodes[down].kill9();
    let client = client_of(cluster.nodes[leader].endpoint()).await;
    for i in 0..300 {
        client
            .put(format!("s/{i:03}"), i.to_string(), PutOptions::new())
            .await
            .unwrap();
    }
    client.compact(100, false).await.unwrap();
    let last = client
        .put("s/last", "x", PutOptions::new())
        .await
        .unwrap()
        .header
        .revision;

    let back = respawn_to_catch_up_by_snapshot(&mut cluster, down, |back| async move {
        back.get("s/last", GetOptions::new().with_serializable())
            .await
            .is_ok_and(|r| r.kvs.len() == 1)
    })
    .await;
    let all = back
        .get("s/", GetOptions::new().with_prefix().with_serializable())
        .await
        .unwrap();
    assert_eq!(all.kvs.len(), 301);
    // History survived the trip: the compaction point and reads above it.
    assert_eq!(back.hash_kv(last).await.unwrap(), {
        let mut theirs = client.hash_kv(last).await.unwrap();
        theirs.header = back.hash_kv(last).await.unwrap().header;
        theirs
    });
    let old = back
        .get("s/", GetOptions::new().with_prefix().with_revision(99))
        .await;
    assert_eq!(
        old.unwrap_err().code(),
        Some(ballast_client::Code::OutOfRange)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn move_leader_with_the_client_and_with_etcdctl() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = TestCluster::start(dir.path(), 3, &[]);
    let leader = cluster.leader().await;
    let target = (leader + 1) % 3;
    let to_leader = client_of(cluster.nodes[leader].endpoint()).await;
    let target_id = member_id_of(cluster.nodes[target].endpoint()).await;
    to_leader.move_leader(target_id).await.unwrap();
    assert_eq!(cluster.leader().await, target);

    // etcdctl finds the leader itself and moves leadership on.
    let next = (target + 1) % 3;
    let next_id = member_id_of(cluster.nodes[next].endpoint()).await;
    let endpoints = cluster.endpoints().join(",");
    let (ok, out, err) =
        ballast_tests::etcdctl(&endpoints, &["move-leader", &format!("{next_id:x}")]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("Leadership transferred"), "{out}");
    assert_eq!(cluster.leader().await, next);

    // A follower refuses, and so does the leader for a stranger.
    let follower = client_of(cluster.nodes[target].endpoint()).await;
    assert_eq!(
        follower.move_leader(next_id).await.unwrap_err().message(),
        Some("etcdserver: not leader")
    );
    let leader_client = client_of(cluster.nodes[next].endpoint()).await;
    assert_eq!(
        leader_client.move_leader(42).await.unwrap_err().message(),
        Some("etcdserver: bad leader transferee")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_survive_a_leader_change_and_still_expire() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = TestCluster::start(dir.path(), 3, &[]);
    let leader = cluster.leader().await;
    let follower = (leader + 1) % 3;
    let via_follower = client_of(cluster.nodes[follower].endpoint()).await;
    let kept = via_follower.lease_grant(3, 0).await.unwrap();
    let dropped = via_follower.lease_grant(3, 0).await.unwrap();
    via_follower
        .put("kept", "x", PutOptions::new().with_lease(kept.id))
        .await
        .unwrap();
    via_follower
        .put("dropped", "x", PutOptions::new().with_lease(dropped.id))
        .await
        .unwrap();
    // Keep-alives sent to a follower reach the leader.
    let keep = via_follower.lease_keep_alive(kept.id).await.unwrap();
    let ttl = via_follower
        .lease_time_to_live(kept.id, true)
        .await
        .unwrap();
    assert_eq!(ttl.granted_ttl, 3);
    assert_eq!(ttl.keys.len(), 1);

    cluster.nodes[leader].kill9();
    let new_leader = cluster.leader().await;
    assert_ne!(new_leader, leader);
    let gone = eventually(WAIT, || {
        let client = via_follower.clone();
        async move {
            client
                .get("dropped", GetOptions::new())
                .await
                .is_ok_and(|r| r.kvs.is_empty())
        }
    })
    .await;
    assert!(gone, "the new leader expired the lease nobody kept alive");
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        via_follower
            .get("kept", GetOptions::new())
            .await
            .unwrap()
            .kvs
            .len(),
        1
    );
    drop(keep);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_are_added_as_learners_promoted_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = TestCluster::start(dir.path(), 3, &[]);
    let client = cluster.client().await;
    for i in 0..20 {
        client
            .put(format!("m/{i}"), "x", PutOptions::new())
            .await
            .unwrap();
    }
    let endpoints = cluster.endpoints().join(",");

    // etcdctl adds the new member as a learner; it joins with --initial-cluster-state existing.
    let peer = ballast_tests::bind_port();
    let peer_url = format!("http://127.0.0.1:{}", ballast_tests::port_of(&peer));
    let (ok, out, err) = ballast_tests::etcdctl(
        &endpoints,
        &[
            "member",
            "add",
            "n3",
            &format!("--peer-urls={peer_url}"),
            "--learner",
        ],
    );
    assert!(
        ok,
        "{out}{err}\n{}",
        cluster
            .nodes
            .iter()
            .map(|n| n.log())
            .collect::<Vec<_>>()
            .join("\n-----\n")
    );
    let initial = out
        .lines()
        .find_map(|l| l.strip_prefix("ETCD_INITIAL_CLUSTER=\""))
        .map(|l| l.trim_end_matches('"').to_string())
        .unwrap_or_else(|| panic!("no ETCD_INITIAL_CLUSTER in {out}"));
    let mut joiner =
        ballast_tests::Node::new(&dir.path().join("n3"), "n3", peer, Some(initial), &[]);
    joiner.cluster_state = "existing".into();
    joiner.spawn();
    joiner.wait_ready().unwrap();
    let learner = client_of(joiner.endpoint()).await;
    let caught_up = eventually(WAIT, || {
        let learner = learner.clone();
        async move {
            learner
                .get("m/", GetOptions::new().with_prefix().with_serializable())
                .await
                .is_ok_and(|r| r.kvs.len() == 20)
        }
    })
    .await;
    assert!(caught_up, "the learner replicated the data");
    let status = learner.status().await.unwrap();
    assert!(status.is_learner);
    let learner_id = status.header.member_id;

    // Asked of a follower, which forwards it to the leader over the peer port.
    let leader = cluster.leader().await;
    let follower = cluster.nodes[(leader + 1) % 3].endpoint();
    let (ok, out, err) = ballast_tests::etcdctl(
        &follower,
        &["member", "promote", &format!("{learner_id:x}")],
    );
    assert!(ok, "{out}{err}");
    // The member that answered applied the promotion; the learner applies it when it
    // hears the commit.
    let promoted = eventually(WAIT, || {
        let learner = learner.clone();
        async move { learner.status().await.is_ok_and(|s| !s.is_learner) }
    })
    .await;
    assert!(promoted, "the learner applied its promotion");
    let (ok, out, _) = ballast_tests::etcdctl(&endpoints, &["member", "list"]);
    assert!(ok);
    assert_eq!(out.lines().count(), 4, "{out}");
    assert!(
        out.contains(&joiner.url()),
        "the new member published its client URL: {out}"
    );
    // Promoting a voter is refused.
    let again = client.member_promote(learner_id).await.unwrap_err();
    assert_eq!(
        again.message(),
        Some("etcdserver: can only promote a learner member")
    );

    // Remove the leader, asked of the members that stay: the leader commits its own
    // removal, and the others must hear that before it stops, or the member that proposed
    // the change answers "leader changed".
    let leader = cluster.leader().await;
    let removed_id = member_id_of(cluster.nodes[leader].endpoint()).await;
    let mut staying = (0..cluster.nodes.len())
        .filter(|&i| i != leader)
        .map(|i| cluster.nodes[i].endpoint())
        .collect::<Vec<_>>();
    staying.push(joiner.endpoint());
    let (ok, out, err) = ballast_tests::etcdctl(
        &staying.join(","),
        &["member", "remove", &format!("{removed_id:x}")],
    );
    assert!(ok, "{out}{err}");
    let stopped = eventually(WAIT, || {
        let running = cluster.nodes[leader]
            .log()
            .contains("removed from the cluster");
        async move { running }
    })
    .await;
    assert!(stopped, "the removed member stops");
    cluster.nodes[leader].kill9();
    let rest = Client::connect(staying.clone(), ConnectOptions::default())
        .await
        .unwrap();
    // The first write may meet the election of the next leader ("leader changed").
    let written = eventually(WAIT, || {
        let rest = rest.clone();
        async move {
            rest.put("after", "removal", PutOptions::new())
                .await
                .is_ok()
        }
    })
    .await;
    assert!(written);
    assert_eq!(rest.member_list().await.unwrap().len(), 3);

    // A member asked to remove itself answers, though it may stop before it applies the
    // removal (its peers refuse it once they have).
    let (ok, out, err) = ballast_tests::etcdctl(
        &staying[0],
        &[
            "member",
            "remove",
            &format!("{:x}", member_id_of(staying[0].clone()).await),
        ],
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains("removed from cluster"), "{out}");
    let left = client_of(staying[1].clone()).await;
    let applied = eventually(WAIT, || {
        let left = left.clone();
        async move { left.member_list().await.is_ok_and(|m| m.len() == 2) }
    })
    .await;
    assert!(applied, "the members left applied the removal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_members_tolerate_two_failures_but_not_three() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = TestCluster::start(dir.path(), 5, &[]);
    let client = cluster.client().await;
    client.put("k", "0", PutOptions::new()).await.unwrap();
    let leader = cluster.leader().await;
    cluster.nodes[leader].kill9();
    cluster.nodes[(leader + 1) % 5].kill9();
    cluster.leader().await;
    let survivors = cluster.client().await;
    survivors.put("k", "1", PutOptions::new()).await.unwrap();
    assert_eq!(
        survivors.get("k", GetOptions::new()).await.unwrap().kvs[0]
            .value_str()
            .unwrap(),
        "1"
    );

    cluster.nodes[(leader + 2) % 5].kill9();
    let minority = Client::connect(
        cluster.endpoints(),
        ConnectOptions::default().with_request_timeout(Duration::from_secs(10)),
    )
    .await
    .unwrap();
    // No quorum: the write is not acknowledged (its outcome is unknown: a stale leader
    // may hold it in its log, and it may commit once a majority is back).
    assert!(
        minority.put("k", "2", PutOptions::new()).await.is_err(),
        "no quorum, no write"
    );
    assert!(
        minority.get("k", GetOptions::new()).await.is_err(),
        "no quorum, no linearizable read"
    );
    let stale = minority
        .get("k", GetOptions::new().with_serializable())
        .await
        .unwrap();
    assert_eq!(
        stale.kvs[0].value_str().unwrap(),
        "1",
        "serializable reads are served locally"
    );

    // Back to a majority: the cluster serves again and nothing was lost.
    cluster.nodes[leader].respawn();
    cluster.nodes[leader].wait_ready().unwrap();
    let healed = cluster.client().await;
    healed.put("k", "3", PutOptions::new()).await.unwrap();
    let k = healed.get("k", GetOptions::new()).await.unwrap();
    assert_eq!(k.kvs[0].value_str().unwrap(), "3");
    assert!(k.kvs[0].version >= 3, "both acknowledged writes are there");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_of_another_cluster_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let peers: Vec<_> = (0..3).map(|_| ballast_tests::bind_port()).collect();
    let initial = peers
        .iter()
        .enumerate()
        .map(|(i, peer)| format!("n{i}=http://127.0.0.1:{}", ballast_tests::port_of(peer)))
        .collect::<Vec<_>>()
        .join(",");
    let mut nodes: Vec<ballast_tests::Node> = peers
        .into_iter()
        .enumerate()
        .map(|(i, peer)| {
            // The third member was given another cluster token: another cluster.
            let token = if i == 2 {
                "another-cluster"
            } else {
                "etcd-cluster"
            };
            ballast_tests::Node::new(
                &dir.path().join(format!("n{i}")),
                &format!("n{i}"),
                peer,
                Some(initial.clone()),
                &["--initial-cluster-token", token],
            )
        })
        .collect();
    for node in &mut nodes {
        node.spawn();
    }
    nodes[0].wait_ready().unwrap();
    nodes[1].wait_ready().unwrap();
    let refused = eventually(WAIT, || {
        let logs = nodes[0].log() + &nodes[1].log() + &nodes[2].log();
        async move { logs.contains("cluster ID mismatch") }
    })
    .await;
    assert!(refused, "members refuse each other's messages");
    assert!(
        !nodes[2].log().contains("ready to serve"),
        "the stranger never serves"
    );
    let client = Client::connect([nodes[0].endpoint()], ConnectOptions::default())
        .await
        .unwrap();
    client.put("k", "v", PutOptions::new()).await.unwrap();
    assert_eq!(client.member_list().await.unwrap().len(), 3);

    // A member that was never added cannot join with --initial-cluster-state existing.
    let stranger_peer = ballast_tests::bind_port();
    let joined = format!(
        "{initial},n9=http://127.0.0.1:{}",
        ballast_tests::port_of(&stranger_peer)
    );
    let mut stranger = ballast_tests::Node::new(
        &dir.path().join("n9"),
        "n9",
        stranger_peer,
        Some(joined),
        &[],
    );
    stranger.cluster_state = "existing".into();
    stranger.spawn();
    let error = stranger.wait_ready().unwrap_err();
    assert!(error.contains("couldn't find local name"), "{error}");
}
