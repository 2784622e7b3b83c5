//! Fault tests under concurrent load on a real 3-member cluster: kill -9 of the leader
//! and of a follower, a partitioned leader, a paused leader. The client history of each
//! run must be linearizable (checked with `ballast_tests::linearizability`), every
//! acknowledged write must be on every member, the members must converge to the same
//! HashKV, and the minority side of a partition must serve no linearizable request.
//! The same faults again with leader leases on (`--experimental-leader-lease-reads`):
//! there the isolated leader may answer reads until its lease ends, and those reads
//! join the history that must be linearizable.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ballast_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, PutOptions, Txn, TxnOp,
    TxnOpResponse,
};
use ballast_tests::linearizability::{check, Input, Operation, Output, Verdict};
use ballast_tests::{eventually, http_get, TestCluster, WAIT};

/// Concurrent clients of the workload.
const WORKERS: usize = 4;
/// Keys the workload touches: few, so operations conflict.
const KEYS: [&str; 2] = ["x", "y"];
/// Each worker's operations at most, to keep the history checkable.
const OPS_PER_WORKER_MAX: usize = 150;

struct Recorder {
    start: Instant,
    ops: Mutex<Vec<Operation>>,
}

impl Recorder {
    fn now(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }
}

async fn worker(
    id: usize,
    client: Client,
    recorder: Arc<Recorder>,
    stop: Arc<AtomicBool>,
    seed: u64,
) {
    let mut rng = fastrand::Rng::with_seed(seed ^ id as u64);
    let mut last_seen = [0i64; KEYS.len()];
    for seq in 0..OPS_PER_WORKER_MAX {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let k = rng.usize(..KEYS.len());
        let key = KEYS[k];
        let call = recorder.now();
        let (input, output) = match rng.u64(..10) {
            0..=3 => {
                let value = format!("w{id}-{seq}");
                let result = client.put(key, &value, PutOptions::new()).await;
                let output = match result {
                    Ok(r) => Output::Written {
                        revision: r.header.revision,
                    },
                    Err(_) => Output::Unknown,
                };
                (
                    Input::Put {
                        key: key.into(),
                        value,
                    },
                    output,
                )
            }
            4..=6 => match client.get(key, GetOptions::new()).await {
                Ok(r) => {
                    let value = r
                        .kvs
                        .first()
                        .map(|kv| (kv.value_str().unwrap().to_string(), kv.mod_revision));
                    last_seen[k] = value.as_ref().map_or(0, |v| v.1);
                    (
                        Input::Get { key: key.into() },
                        Output::Read {
                            revision: r.header.revision,
                            value,
                        },
                    )
                }
                // A failed read changed nothing: leave it out.
                Err(_) => continue,
            },
            7..=8 => {
                let value = format!("c{id}-{seq}");
                let expected = last_seen[k];
                let txn = Txn::new()
                    .when([Compare::mod_revision(key, CompareOp::Equal, expected)])
                    .and_then([TxnOp::put(key, &value, PutOptions::new())])
                    .or_else([TxnOp::get(key, GetOptions::new())]);
                let output = match client.txn(txn).await {
                    Ok(r) => {
                        if let Some(TxnOpResponse::Get(current)) = r.responses.first() {
                            last_seen[k] = current.kvs.first().map_or(0, |kv| kv.mod_revision);
                        } else {
                            last_seen[k] = r.header.revision;
                        }
                        Output::Swapped {
                            revision: r.header.revision,
                            succeeded: r.succeeded,
                        }
                    }
                    Err(_) => Output::Unknown,
                };
                (
                    Input::CompareAndSet {
                        key: key.into(),
                        expected,
                        value,
                    },
                    output,
                )
            }
            _ => {
                let output = match client.delete(key, DeleteOptions::new()).await {
                    Ok(r) => Output::Deleted {
                        revision: r.header.revision,
                        deleted: r.deleted,
                    },
                    Err(_) => Output::Unknown,
                };
                (Input::Delete { key: key.into() }, output)
            }
        };
        let ret = (output != Output::Unknown).then(|| recorder.now());
        recorder.ops.lock().unwrap().push(Operation {
            client: id,
            call,
            ret,
            input,
            output,
        });
    }
}

/// Runs the workload around `fault`, then checks the history and the members.
async fn run_with_fault(
    cluster: &mut TestCluster,
    seed: u64,
    fault: impl AsyncFnOnce(&mut TestCluster, &Arc<Recorder>),
) {
    let recorder = Arc::new(Recorder {
        start: Instant::now(),
        ops: Mutex::new(Vec::new()),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let options = ConnectOptions::default().with_request_timeout(Duration::from_secs(3));
    let mut workers = Vec::new();
    for id in 0..WORKERS {
        let client = Client::connect(cluster.endpoints(), options.clone())
            .await
            .unwrap();
        workers.push(tokio::spawn(worker(
            id,
            client,
            recorder.clone(),
            stop.clone(),
            seed,
        )));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    fault(cluster, &recorder).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let history = recorder.ops.lock().unwrap().clone();
    let acknowledged = history.iter().filter(|o| o.ret.is_some()).count();
    assert!(
        acknowledged > 20,
        "the workload made progress ({acknowledged} answered)"
    );
    match check(&history) {
        Verdict::Linearizable => {}
        Verdict::NotLinearizable { longest_prefix } => {
            panic!("seed {seed}: history not linearizable; longest linearizable prefix {longest_prefix:?}\n{history:#?}")
        }
    }
    checker_catches_corruption(&history);
    converge(cluster, &history).await;
}

/// The checker must reject this very history once it is corrupted: a read that
/// returns a value nobody wrote, and two acknowledged writes claiming one revision.
fn checker_catches_corruption(history: &[Operation]) {
    if let Some(i) = history
        .iter()
        .position(|o| matches!(o.output, Output::Read { value: Some(_), .. }))
    {
        let mut corrupted = history.to_vec();
        if let Output::Read {
            value: Some((value, _)),
            ..
        } = &mut corrupted[i].output
        {
            value.push_str("-never-written");
        }
        assert!(
            matches!(check(&corrupted), Verdict::NotLinearizable { .. }),
            "a phantom read went unnoticed"
        );
    }
    let writes: Vec<usize> = history
        .iter()
        .enumerate()
        .filter(|(_, o)| matches!(o.output, Output::Written { .. }))
        .map(|(i, _)| i)
        .collect();
    if let [first, second, ..] = writes[..] {
        let mut corrupted = history.to_vec();
        corrupted[second].output = corrupted[first].output.clone();
        assert!(
            matches!(check(&corrupted), Verdict::NotLinearizable { .. }),
            "two writes at one revision went unnoticed"
        );
    }
}

/// Every member ends at the same revision with the same HashKV, and holds every
/// acknowledged put at the revision it was acknowledged with.
async fn converge(cluster: &TestCluster, history: &[Operation]) {
    let clients: Vec<Client> =
        futures::future::join_all(cluster.endpoints().into_iter().map(|e| async move {
            Client::connect([e], ConnectOptions::default())
                .await
                .unwrap()
        }))
        .await;
    // A write through the cluster, then wait for every member to apply it.
    let marker = clients[0]
        .put("converged", "yes", PutOptions::new())
        .await
        .unwrap()
        .header
        .revision;
    for client in &clients {
        let reached = eventually(WAIT, || {
            let client = client.clone();
            async move {
                client
                    .get("converged", GetOptions::new().with_serializable())
                    .await
                    .is_ok_and(|r| r.header.revision >= marker)
            }
        })
        .await;
        assert!(reached, "every member applies the marker write");
    }
    let hashes: Vec<u32> = futures::future::join_all(
        clients
            .iter()
            .map(|c| async move { c.hash_kv(marker).await.unwrap().hash }),
    )
    .await;
    assert!(
        hashes.windows(2).all(|w| w[0] == w[1]),
        "members diverged: {hashes:?}"
    );
    for op in history {
        let (Input::Put { key, value }, Output::Written { revision }) = (&op.input, &op.output)
        else {
            continue;
        };
        for client in &clients {
            let at = client
                .get(
                    key,
                    GetOptions::new()
                        .with_revision(*revision)
                        .with_serializable(),
                )
                .await
                .unwrap();
            let kv = at
                .kvs
                .first()
                .unwrap_or_else(|| panic!("acknowledged put {key}={value} lost"));
            assert_eq!(
                (kv.value_str().unwrap(), kv.mod_revision),
                (value.as_str(), *revision)
            );
        }
    }
}

fn seed() -> u64 {
    std::env::var("BALLAST_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs()
        })
}

/// Leader leases on: reads answered by a lone leader while its lease lasts.
const LEASES: &str = "--experimental-leader-lease-reads";

/// A bound on how long a lease outlives the last round that confirmed it, at the
/// default election timeout (1 s; a lease is 90% of 0.9 s).
const LEASE_OUTLIVES_ITS_LEADER_MAX: Duration = Duration::from_secs(1);

async fn kill_the_leader(flags: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = TestCluster::start(dir.path(), 3, flags);
    let seed = seed();
    run_with_fault(
        &mut cluster,
        seed,
        async move |cluster: &mut TestCluster, _: &Arc<Recorder>| {
            let leader = cluster.leader().await;
            cluster.nodes[leader].kill9();
            tokio::time::sleep(Duration::from_secs(2)).await;
            cluster.nodes[leader].respawn();
            cluster.nodes[leader].wait_ready().unwrap();
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_the_leader_under_load_and_restart_it() {
    kill_the_leader(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_leases_kill_the_leader_under_load_and_restart_it() {
    kill_the_leader(&[LEASES]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_a_follower_under_load_and_restart_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = TestCluster::start(dir.path(), 3, &[]);
    let seed = seed();
    run_with_fault(
        &mut cluster,
        seed,
        async move |cluster: &mut TestCluster, _: &Arc<Recorder>| {
            let follower = (cluster.leader().await + 1) % 3;
            cluster.nodes[follower].kill9();
            tokio::time::sleep(Duration::from_secs(2)).await;
            cluster.nodes[follower].respawn();
            cluster.nodes[follower].wait_ready().unwrap();
        },
    )
    .await;
}

async fn pause_the_leader(flags: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = TestCluster::start(dir.path(), 3, flags);
    let seed = seed();
    run_with_fault(
        &mut cluster,
        seed,
        async move |cluster: &mut TestCluster, _: &Arc<Recorder>| {
            let leader = cluster.leader().await;
            cluster.nodes[leader].signal("STOP");
            tokio::time::sleep(Duration::from_secs(3)).await;
            cluster.nodes[leader].signal("CONT");
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_the_leader_past_the_election_timeout() {
    pause_the_leader(&[]).await;
}

/// The hazard leases are known for: a leader that wakes from a pause still believing it
/// leads. Its lease is measured on the monotonic clock, which ran on during the pause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_leases_pause_the_leader_past_the_election_timeout() {
    pause_the_leader(&[LEASES]).await;
}

async fn member_id(endpoint: &str) -> u64 {
    let client = Client::connect([endpoint], ConnectOptions::default())
        .await
        .unwrap();
    client.status().await.unwrap().header.member_id
}

async fn block(cluster: &TestCluster, node: usize, peer: u64, on: bool) {
    let response = http_get(
        cluster.nodes[node].address(),
        &format!("/debug/block-peer?peer={peer:x}&on={on}"),
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}

/// What a client of the isolated leader saw: when each attempt began, after the
/// partition, and whether its read and its write were answered.
type MinorityOutcome = (Duration, bool, bool);

/// Cuts the leader off from both followers for 4 s while a client of its own reads and
/// writes through it; its reads join the history.
async fn partition_the_leader(flags: &[&str]) -> Vec<MinorityOutcome> {
    let dir = tempfile::tempdir().unwrap();
    let mut flags = flags.to_vec();
    flags.push("--experimental-test-hooks");
    let mut cluster = TestCluster::start(dir.path(), 3, &flags);
    let seed = seed();
    let minority_outcomes = Arc::new(Mutex::new(Vec::new()));
    let outcomes = minority_outcomes.clone();
    run_with_fault(
        &mut cluster,
        seed,
        async move |cluster: &mut TestCluster, recorder: &Arc<Recorder>| {
            let leader = cluster.leader().await;
            let ids: Vec<u64> =
                futures::future::join_all(cluster.endpoints().iter().map(|e| member_id(e))).await;
            // A client that only knows the old leader, connected before it is cut off.
            let isolated = Client::connect(
                [cluster.nodes[leader].endpoint()],
                ConnectOptions::default().with_request_timeout(Duration::from_secs(2)),
            )
            .await
            .unwrap();
            // With leases, this read leaves the leader a fresh one as it is cut off.
            isolated.get("x", GetOptions::new()).await.unwrap();
            let cut = Instant::now();
            for other in (0..3).filter(|&i| i != leader) {
                block(cluster, leader, ids[other], true).await;
                block(cluster, other, ids[leader], true).await;
            }
            let until = cut + Duration::from_secs(4);
            let mut i = 0;
            while Instant::now() < until {
                let began = cut.elapsed();
                let call = recorder.now();
                let read = isolated.get("x", GetOptions::new()).await;
                if let Ok(r) = &read {
                    let value = r
                        .kvs
                        .first()
                        .map(|kv| (kv.value_str().unwrap().to_string(), kv.mod_revision));
                    let ret = Some(recorder.now());
                    recorder.ops.lock().unwrap().push(Operation {
                        client: WORKERS,
                        call,
                        ret,
                        input: Input::Get { key: "x".into() },
                        output: Output::Read {
                            revision: r.header.revision,
                            value,
                        },
                    });
                }
                let write = isolated
                    .put("minority", i.to_string(), PutOptions::new())
                    .await;
                outcomes
                    .lock()
                    .unwrap()
                    .push((began, read.is_ok(), write.is_ok()));
                i += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            for other in (0..3).filter(|&i| i != leader) {
                block(cluster, leader, ids[other], false).await;
                block(cluster, other, ids[leader], false).await;
            }
        },
    )
    .await;
    let outcomes = minority_outcomes.lock().unwrap().clone();
    assert!(!outcomes.is_empty());
    assert!(
        outcomes.iter().all(|(_, _, write)| !write),
        "the isolated side committed a write: {outcomes:?}"
    );
    outcomes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_the_leader_from_the_majority() {
    let outcomes = partition_the_leader(&[]).await;
    assert!(
        outcomes.iter().all(|(_, read, _)| !read),
        "the isolated side served a linearizable read: {outcomes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_leases_partition_the_leader_from_the_majority() {
    let outcomes = partition_the_leader(&[LEASES]).await;
    // Its first attempt reads under the lease the read just before the cut renewed;
    // after the lease, nothing.
    assert!(outcomes[0].1, "no read under the lease: {outcomes:?}");
    assert!(
        outcomes
            .iter()
            .all(|(began, read, _)| !read || *began < LEASE_OUTLIVES_ITS_LEADER_MAX),
        "the isolated leader read past its lease: {outcomes:?}"
    );
}
