//! The Lock and Election services beside etcd's client-side recipes on the same names:
//! etcdctl 3.5 (`lock`, `elect`, which run the recipes themselves) and ballast-client's
//! `Mutex` take part in the same locks and elections as callers of the services.

use std::process::Stdio;
use std::time::Duration;

use ballast_client::{Mutex, Session};
use ballast_proto::v3electionpb::election_client::ElectionClient;
use ballast_proto::v3electionpb::{CampaignRequest, LeaderRequest, ProclaimRequest, ResignRequest};
use ballast_proto::v3lockpb::lock_client::LockClient;
use ballast_proto::v3lockpb::{LockRequest, UnlockRequest};
use ballast_tests::{eventually, Etcdctl, Node, WAIT};
use tokio::io::{AsyncBufReadExt, BufReader};

/// How long a waiter is given to show it does not get what another holds.
const STILL_WAITING: Duration = Duration::from_millis(1500);

type Locking = tokio::task::JoinHandle<
    Result<tonic::Response<ballast_proto::v3lockpb::LockResponse>, tonic::Status>,
>;

/// Asks the service for lock "l" with `lease`, in a task.
fn lock_in_background(lock: &LockClient<tonic::transport::Channel>, lease: i64) -> Locking {
    let mut lock = lock.clone();
    tokio::spawn(async move {
        lock.lock(LockRequest {
            name: "l".into(),
            lease,
        })
        .await
    })
}

/// Whether `key` comes to exist (`count` 1) or to be gone (0) within the wait.
async fn count_becomes(client: &ballast_client::Client, key: &str, count: i64) -> bool {
    eventually(WAIT, || {
        let (client, key) = (client.clone(), key.to_string());
        async move {
            client
                .get(key, Default::default())
                .await
                .is_ok_and(|r| r.count == count)
        }
    })
    .await
}

type Lines = tokio::io::Lines<BufReader<tokio::process::ChildStdout>>;

async fn next_line(lines: &mut Lines) -> String {
    tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("etcdctl printed")
        .unwrap()
        .expect("etcdctl still running")
}

fn etcdctl(endpoint: &str, args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(Etcdctl::V35.program());
    command
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lock_service_and_the_recipes_exclude_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let client = node.client().await;
    let lease = client.lease_grant(60, 0).await.unwrap().id;
    let mut lock = LockClient::connect(node.url()).await.unwrap();
    let held = lock
        .lock(LockRequest {
            name: "l".into(),
            lease,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(held.key, format!("l/{lease:x}").as_bytes());

    // etcdctl's lock waits for the service's holder.
    let waiter = etcdctl(&node.endpoint(), &["lock", "l", "echo", "acquired"])
        .spawn()
        .unwrap();
    tokio::time::sleep(STILL_WAITING).await;
    let mut waiter = waiter;
    assert!(
        waiter.try_wait().unwrap().is_none(),
        "etcdctl took a held lock"
    );
    lock.unlock(UnlockRequest {
        key: held.key.clone(),
    })
    .await
    .unwrap();
    let out = tokio::time::timeout(WAIT, waiter.wait_with_output())
        .await
        .expect("etcdctl got the lock once it was free")
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("acquired"),
        "{out:?}"
    );

    // The service waits for ballast-client's Mutex.
    let session = Session::new(&client, 60).await.unwrap();
    let mut mutex = Mutex::new(&session, "l");
    mutex.lock().await.unwrap();
    let second = client.lease_grant(60, 0).await.unwrap().id;
    let waiting = lock_in_background(&lock, second);
    tokio::time::sleep(STILL_WAITING).await;
    assert!(!waiting.is_finished(), "the service took a held lock");
    mutex.unlock().await.unwrap();
    let got = waiting.await.unwrap().unwrap().into_inner();
    assert_eq!(got.key, format!("l/{second:x}").as_bytes());

    // A waiter whose client gives up leaves no key behind.
    let third = client.lease_grant(60, 0).await.unwrap().id;
    let gave_up = lock_in_background(&lock, third);
    let key = format!("l/{third:x}");
    assert!(
        count_becomes(&client, &key, 1).await,
        "the waiter queued its key"
    );
    gave_up.abort();
    assert!(
        count_becomes(&client, &key, 0).await,
        "the abandoned waiter's key was removed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_election_service_runs_etcds_election() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let client = node.client().await;
    let mut election = ElectionClient::connect(node.url()).await.unwrap();
    let none = election
        .leader(LeaderRequest { name: "e".into() })
        .await
        .unwrap_err();
    assert_eq!(
        (none.code(), none.message()),
        (tonic::Code::Unknown, "election: no leader")
    );

    let first = client.lease_grant(60, 0).await.unwrap().id;
    let leader = election
        .campaign(CampaignRequest {
            name: "e".into(),
            lease: first,
            value: "one".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .leader
        .unwrap();
    assert_eq!(leader.key, format!("e/{first:x}").as_bytes());
    assert!(leader.rev > 0);
    let kv = election
        .leader(LeaderRequest { name: "e".into() })
        .await
        .unwrap()
        .into_inner()
        .kv
        .unwrap();
    assert_eq!(kv.value, "one".as_bytes());

    // etcdctl observes the same election and sees the proclaimed value.
    let mut observer = etcdctl(&node.endpoint(), &["elect", "-l", "e"])
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(observer.stdout.take().unwrap()).lines();
    assert_eq!(next_line(&mut lines).await, format!("e/{first:x}"));
    assert_eq!(next_line(&mut lines).await, "one");
    let mut stream = election
        .observe(LeaderRequest { name: "e".into() })
        .await
        .unwrap()
        .into_inner();
    let seen = stream.message().await.unwrap().unwrap().kv.unwrap();
    assert_eq!(seen.value, "one".as_bytes());
    election
        .proclaim(ProclaimRequest {
            leader: Some(leader.clone()),
            value: "two".into(),
        })
        .await
        .unwrap();
    assert_eq!(next_line(&mut lines).await, format!("e/{first:x}"));
    assert_eq!(next_line(&mut lines).await, "two");
    let seen = stream.message().await.unwrap().unwrap().kv.unwrap();
    assert_eq!(seen.value, "two".as_bytes());

    // A second candidate waits until the leader resigns, then leads.
    let second = client.lease_grant(60, 0).await.unwrap().id;
    let mut candidate = election.clone();
    let campaign = tokio::spawn(async move {
        candidate
            .campaign(CampaignRequest {
                name: "e".into(),
                lease: second,
                value: "three".into(),
            })
            .await
    });
    tokio::time::sleep(STILL_WAITING).await;
    assert!(
        !campaign.is_finished(),
        "a second leader while the first leads"
    );
    election
        .resign(ResignRequest {
            leader: Some(leader.clone()),
        })
        .await
        .unwrap();
    let now = campaign
        .await
        .unwrap()
        .unwrap()
        .into_inner()
        .leader
        .unwrap();
    assert_eq!(now.key, format!("e/{second:x}").as_bytes());
    let seen = stream.message().await.unwrap().unwrap().kv.unwrap();
    assert_eq!(seen.value, "three".as_bytes());
    // The old leader can no longer proclaim.
    let refused = election
        .proclaim(ProclaimRequest {
            leader: Some(leader),
            value: "stale".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.message(), "election: not leader");
    let _ = observer.kill().await;
}
