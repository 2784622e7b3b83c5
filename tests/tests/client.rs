//! ballast-client against real Ballast nodes: failover, watch resume and keep-alive
//! across restarts, and the lock/election recipes interoperating with etcdctl.

use std::process::{Command, Stdio};
use std::time::Duration;

use ballast_client::{
    Client, ConnectOptions, Election, GetOptions, LeaseState, Mutex, PutOptions, Session, Txn,
    TxnOp, WatchOptions, WatchStream,
};
use ballast_tests::{eventually, free_port, Node, WAIT};
use futures::StreamExt;

/// Waits until `count` keys exist under `prefix`: a lock or election contender has
/// registered its key and is waiting for the ones before it.
async fn wait_for_contenders(client: &Client, prefix: &str, count: usize) {
    let registered = eventually(WAIT, || async {
        client
            .get(prefix, GetOptions::new().with_prefix())
            .await
            .is_ok_and(|r| r.kvs.len() == count)
    })
    .await;
    assert!(registered, "{count} contenders under {prefix}");
}

async fn revisions(stream: &mut WatchStream, count: usize) -> Vec<i64> {
    let mut seen = Vec::new();
    while seen.len() < count {
        let response = tokio::time::timeout(WAIT, stream.message())
            .await
            .expect("events in time")
            .expect("no watch error")
            .expect("watch open");
        seen.extend(response.events.iter().map(|e| e.kv.mod_revision));
    }
    seen
}

#[tokio::test]
async fn calls_fail_over_from_an_unreachable_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("n"));
    let dead = format!("127.0.0.1:{}", free_port());
    let client = Client::connect([dead.as_str(), &node.endpoint()], ConnectOptions::default())
        .await
        .unwrap();
    // Put first: a write may move on only because it never reached the dead endpoint.
    client.put("k", "v", PutOptions::new()).await.unwrap();
    assert_eq!(
        client.get("k", GetOptions::new()).await.unwrap().kvs.len(),
        1
    );
    let nobody = Client::connect([dead.as_str()], ConnectOptions::default()).await;
    assert!(nobody.is_err(), "connecting to nothing fails");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resumes_after_a_server_restart_without_gap_or_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(&dir.path().join("n"));
    let client = node.client().await;
    let (_watcher, mut stream) = client
        .watch("r/", WatchOptions::new().with_prefix())
        .await
        .unwrap();
    for i in 0..3 {
        client
            .put(format!("r/{i}"), "x", PutOptions::new())
            .await
            .unwrap();
    }
    assert_eq!(revisions(&mut stream, 3).await, [2, 3, 4]);

    node.kill9();
    node.restart_same_port();
    // Written while the watcher was cut off, through another client.
    let other = node.client().await;
    for i in 3..6 {
        other
            .put(format!("r/{i}"), "x", PutOptions::new())
            .await
            .unwrap();
    }
    assert_eq!(revisions(&mut stream, 3).await, [5, 6, 7]);
    other.put("r/6", "x", PutOptions::new()).await.unwrap();
    assert_eq!(revisions(&mut stream, 1).await, [8]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_survives_a_server_restart_within_the_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(&dir.path().join("n"));
    let client = node.client().await;
    let lease = client.lease_grant(3, 0).await.unwrap();
    client
        .put("held", "x", PutOptions::new().with_lease(lease.id))
        .await
        .unwrap();
    let keep = client.lease_keep_alive(lease.id).await.unwrap();
    node.kill9();
    node.restart_same_port();
    // Three TTLs later the key is still there: the keep-alive reconnected and renewed.
    tokio::time::sleep(Duration::from_secs(9)).await;
    assert_eq!(keep.state(), LeaseState::Alive(3));
    assert_eq!(
        client
            .get("held", GetOptions::new())
            .await
            .unwrap()
            .kvs
            .len(),
        1
    );
}

#[tokio::test]
async fn mutex_excludes_fences_and_hands_over() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("n"));
    let client = node.client().await;
    let first = Session::new(&client, 10).await.unwrap();
    let second = Session::new(&client, 10).await.unwrap();
    let mut a = Mutex::new(&first, "jobs");
    let mut b = Mutex::new(&second, "jobs");
    a.lock().await.unwrap();
    assert!(!b.try_lock().await.unwrap(), "held by a");
    let waiter = tokio::spawn(async move {
        b.lock().await.unwrap();
        b
    });
    wait_for_contenders(&client, "jobs/", 2).await;
    assert!(!waiter.is_finished(), "b waits while a holds the lock");
    // A write fenced on ownership goes through for the holder only.
    let fenced = client
        .txn(Txn::new().when([a.is_owner()]).and_then([TxnOp::put(
            "protected",
            "a",
            PutOptions::new(),
        )]))
        .await
        .unwrap();
    assert!(fenced.succeeded);
    let a_revision = a.revision();
    a.unlock().await.unwrap();
    let b = tokio::time::timeout(WAIT, waiter).await.unwrap().unwrap();
    assert!(
        b.revision() > a_revision,
        "fencing revisions grow from holder to holder"
    );
    let stale = client
        .txn(Txn::new().when([a.is_owner()]).and_then([TxnOp::put(
            "protected",
            "late",
            PutOptions::new(),
        )]))
        .await
        .unwrap();
    assert!(!stale.succeeded, "the old holder's fence no longer holds");
}

fn etcdctl(node: &Node) -> Command {
    let mut command = Command::new("etcdctl");
    command
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", node.endpoint()));
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutex_and_etcdctl_lock_exclude_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("n"));
    let client = node.client().await;

    // etcdctl holds the lock: our Mutex waits until it lets go.
    let mut holder = etcdctl(&node)
        .args(["lock", "shared"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let holder_key = {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(holder.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        line.trim().to_string()
    };
    assert!(holder_key.starts_with("shared/"), "{holder_key}");
    let session = Session::new(&client, 10).await.unwrap();
    let mut ours = Mutex::new(&session, "shared");
    assert!(!ours.try_lock().await.unwrap(), "etcdctl holds it");
    let waiter = tokio::spawn(async move {
        ours.lock().await.unwrap();
        ours
    });
    wait_for_contenders(&client, "shared/", 2).await;
    assert!(
        !waiter.is_finished(),
        "our Mutex waits while etcdctl holds the lock"
    );
    // SIGINT: etcdctl releases the lock and exits.
    Command::new("kill")
        .args(["-INT", &holder.id().to_string()])
        .status()
        .unwrap();
    holder.wait().unwrap();
    let mut ours = tokio::time::timeout(WAIT, waiter).await.unwrap().unwrap();

    // We hold it: `etcdctl lock shared <cmd>` only runs its command after we unlock.
    let mut contender = etcdctl(&node)
        .args(["lock", "shared", "echo", "etcdctl-got-it"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_contenders(&client, "shared/", 2).await;
    assert!(
        contender.try_wait().unwrap().is_none(),
        "etcdctl waits for our lock"
    );
    ours.unlock().await.unwrap();
    let out = tokio::task::spawn_blocking(move || contender.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("etcdctl-got-it"));
}

/// The next line `etcdctl elect -l` printed; kills it and fails if none comes in time.
async fn next_line(lines: &mut tokio::sync::mpsc::Receiver<String>, pid: u32) -> String {
    match tokio::time::timeout(WAIT, lines.recv()).await {
        Ok(Some(line)) => line,
        Ok(None) | Err(_) => {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            panic!("etcdctl elect -l printed no more lines");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn election_is_seen_by_etcdctl_elect_and_observers() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("n"));
    let client = node.client().await;
    let session = Session::new(&client, 10).await.unwrap();
    let mut election = Election::new(&session, "leader-of");
    let mut observer = election.observe();
    let leader = election.campaign("rust-1").await.unwrap();
    assert!(leader.key.starts_with(b"leader-of/"));
    let seen = tokio::time::timeout(WAIT, observer.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(seen.value_str().unwrap(), "rust-1");

    // etcdctl's observer sees our leader and value.
    let listener = etcdctl(&node)
        .args(["elect", "-l", "leader-of"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let listener_pid = listener.id();
    // Its lines arrive one by one: we proclaim only once it has printed the first leader,
    // so it is observing when the value changes.
    let (line_tx, mut line_rx) = tokio::sync::mpsc::channel::<String>(8);
    let reader = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let mut listener = listener;
        let stdout = std::io::BufReader::new(listener.stdout.take().unwrap());
        for line in stdout.lines().take(4) {
            if line_tx.blocking_send(line.unwrap()).is_err() {
                break;
            }
        }
        let _ = listener.kill();
        let _ = listener.wait();
    });
    let mut lines = Vec::new();
    for _ in 0..2 {
        lines.push(next_line(&mut line_rx, listener_pid).await);
    }
    election.proclaim("rust-2").await.unwrap();
    let seen = tokio::time::timeout(WAIT, observer.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(seen.value_str().unwrap(), "rust-2");
    for _ in 0..2 {
        lines.push(next_line(&mut line_rx, listener_pid).await);
    }
    tokio::time::timeout(WAIT, reader).await.unwrap().unwrap();
    let key = String::from_utf8(leader.key.to_vec()).unwrap();
    assert_eq!(lines, [key.clone(), "rust-1".into(), key, "rust-2".into()]);

    // A second candidate waits, and leads once we resign.
    let other = Session::new(&client, 10).await.unwrap();
    let mut rival = Election::new(&other, "leader-of");
    let campaign = tokio::spawn(async move {
        rival.campaign("rival").await.unwrap();
        rival
    });
    wait_for_contenders(&client, "leader-of/", 2).await;
    assert!(!campaign.is_finished(), "the rival waits while we lead");
    assert_eq!(
        election
            .leader()
            .await
            .unwrap()
            .unwrap()
            .value_str()
            .unwrap(),
        "rust-2"
    );
    election.resign().await.unwrap();
    let rival = tokio::time::timeout(WAIT, campaign).await.unwrap().unwrap();
    assert_eq!(
        rival.leader().await.unwrap().unwrap().value_str().unwrap(),
        "rival"
    );
    assert!(election.proclaim("too late").await.is_err());
}

#[tokio::test]
async fn every_client_example_runs_against_a_node() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("n"));
    let examples = ballast_tests::client_examples_dir();
    let expectations = [
        ("put_get", "greeting = hello"),
        ("txn", "updated at revision"),
        ("watch", "Delete example/watched/a"),
        ("lease_keep_alive", "after revoking, the key is gone"),
        ("lock", "guarded write applied: true"),
        ("election", "the leader says: candidate-1, now with news"),
    ];
    for (example, expected) in expectations {
        let binary = examples.join(example);
        let out = tokio::process::Command::new(&binary)
            .env("BALLAST_ENDPOINTS", node.endpoint())
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{example}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains(expected), "{example} printed:\n{stdout}");
    }
}

#[tokio::test]
async fn maintenance_and_cluster_calls_against_ballast() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("n"));
    let client = node.client().await;
    client.put("k", "v", PutOptions::new()).await.unwrap();
    let status = client.status().await.unwrap();
    assert!(status.version.starts_with("3.5."));
    assert_eq!(status.leader, status.header.member_id);
    assert!(status.raft_applied_index >= 2);
    assert!(client.alarms().await.unwrap().is_empty());
    client.defragment().await.unwrap();
    let hash = client.hash_kv(0).await.unwrap();
    assert_eq!(hash.hash_revision, 2);
    client.put("k", "w", PutOptions::new()).await.unwrap();
    assert_ne!(client.hash_kv(0).await.unwrap().hash, hash.hash);
    assert_eq!(
        client.hash_kv(2).await.unwrap().hash,
        hash.hash,
        "a past revision hashes the same"
    );
    assert_ne!(client.hash().await.unwrap(), 0);
    let members = client.member_list().await.unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].id, status.header.member_id);
    assert_eq!(members[0].client_urls, [node.url()]);
    client.move_leader(status.header.member_id).await.unwrap();
    let refused = client.move_leader(1).await.unwrap_err();
    assert_eq!(refused.message(), Some("etcdserver: bad leader transferee"));

    // etcd's headers: none on a defragment or on a move to the leader itself, no
    // revision on a member list.
    use ballast_proto::etcdserverpb::cluster_client::ClusterClient;
    use ballast_proto::etcdserverpb::maintenance_client::MaintenanceClient;
    use ballast_proto::etcdserverpb::{DefragmentRequest, MemberListRequest, MoveLeaderRequest};
    let mut maintenance = MaintenanceClient::connect(node.url()).await.unwrap();
    let defragmented = maintenance.defragment(DefragmentRequest {}).await.unwrap();
    assert_eq!(defragmented.into_inner().header, None);
    let moved = maintenance
        .move_leader(MoveLeaderRequest {
            target_id: status.header.member_id,
        })
        .await
        .unwrap();
    assert_eq!(moved.into_inner().header, None);
    let listed = ClusterClient::connect(node.url())
        .await
        .unwrap()
        .member_list(MemberListRequest::default())
        .await
        .unwrap()
        .into_inner()
        .header
        .unwrap();
    assert_eq!(
        (listed.member_id, listed.revision),
        (status.header.member_id, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_give_up_after_bounded_retries_when_nothing_answers() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(&dir.path().join("n"));
    let client = node.client().await;
    client.put("k", "v", PutOptions::new()).await.unwrap();
    node.kill9();
    let read = tokio::time::timeout(WAIT, client.get("k", GetOptions::new()))
        .await
        .expect("a bounded number of attempts, not a hang");
    assert_eq!(
        read.unwrap_err().code(),
        Some(ballast_client::Code::Unavailable)
    );
    let write = tokio::time::timeout(WAIT, client.put("k", "w", PutOptions::new()))
        .await
        .expect("a bounded number of attempts, not a hang");
    assert_eq!(
        write.unwrap_err().code(),
        Some(ballast_client::Code::Unavailable)
    );
}
