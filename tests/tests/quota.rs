//! The space quota and the NOSPACE alarm on a real 3-member cluster, driven by etcdctl
//! 3.5 and ballast-client: writes past the quota are refused on every member, reads,
//! deletes, compaction and defragment still work, and only a disarm lets writes in again.

use ballast_client::{DeleteOptions, PutOptions};
use ballast_tests::{http_get, Etcdctl, TestCluster};

const NO_SPACE: &str = "etcdserver: mvcc: database space exceeded";
/// A quota a few memtables' worth of data fills.
const QUOTA_BYTES: &str = "16777216";
const VALUE_BYTES: usize = 64 << 10;
/// Puts that would hold many times the quota: the alarm must come well before.
const PUTS_MAX: usize = 2_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nospace_alarm_stops_writes_until_disarmed() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = TestCluster::start(dir.path(), 3, &["--quota-backend-bytes", QUOTA_BYTES]);
    let first = cluster.nodes[0].endpoint();
    let other = cluster.nodes[1].endpoint();
    let client = ballast_client::Client::connect([first.clone()], Default::default())
        .await
        .unwrap();
    let value = vec![b'v'; VALUE_BYTES];

    let mut refused = None;
    for i in 0..PUTS_MAX {
        match client
            .put(format!("fill/{i:05}"), &value, PutOptions::new())
            .await
        {
            Ok(_) => {}
            Err(err) => {
                refused = Some((i, err));
                break;
            }
        }
    }
    let (written, err) = refused.expect("the quota refused a write");
    assert!(written > 0, "the first write fitted");
    assert_eq!(err.message(), Some(NO_SPACE));

    // The alarm is raised through raft: every member lists it and refuses writes.
    let ctl = Etcdctl::V35;
    let (ok, listed, _) = ctl.run(&other, &["alarm", "list"]);
    assert!(ok);
    assert!(listed.contains("alarm:NOSPACE"), "alarm list: {listed}");
    let (ok, _, stderr) = ctl.run(&other, &["put", "small", "x"]);
    assert!(
        !ok && stderr.contains(NO_SPACE),
        "put on another member: {stderr}"
    );
    let (ok, _, stderr) = ctl.run(&other, &["lease", "grant", "60"]);
    assert!(!ok && stderr.contains(NO_SPACE), "lease grant: {stderr}");
    let (_, status, _) = ctl.run(&first, &["endpoint", "status", "-w", "json"]);
    assert!(
        status.contains("alarm:NOSPACE"),
        "endpoint status: {status}"
    );
    let health = http_get(cluster.nodes[1].address(), "/health").await;
    assert!(health.contains(r#""health":"false""#) && health.contains("ALARM NOSPACE"));
    let excluded = http_get(cluster.nodes[1].address(), "/health?exclude=NOSPACE").await;
    assert!(excluded.contains(r#""health":"true""#), "{excluded}");

    // Reads, deletes, compaction and defragment still work.
    let (ok, keys, _) = ctl.run(
        &other,
        &["get", "fill/", "--prefix", "--count-only", "-w", "fields"],
    );
    assert!(
        ok && keys.contains(&format!("\"Count\" : {written}")),
        "{keys}"
    );
    let deleted = client
        .delete("fill/", DeleteOptions::new().with_prefix())
        .await
        .unwrap();
    assert_eq!(deleted.deleted, written as i64);
    client.compact(deleted.header.revision, true).await.unwrap();
    let (ok, _, stderr) = ctl.run(&cluster.endpoints().join(","), &["defrag", "--cluster"]);
    assert!(ok, "defrag under the alarm: {stderr}");

    // Room alone does not clear the alarm: a disarm does.
    let err = client
        .put("small", "x", PutOptions::new())
        .await
        .unwrap_err();
    assert_eq!(err.message(), Some(NO_SPACE));
    let (ok, disarmed, stderr) = ctl.run(&first, &["alarm", "disarm"]);
    assert!(
        ok && disarmed.contains("alarm:NOSPACE"),
        "{disarmed} {stderr}"
    );
    let (ok, listed, _) = ctl.run(&other, &["alarm", "list"]);
    assert!(ok && listed.trim().is_empty(), "alarms left: {listed}");
    client.put("small", "x", PutOptions::new()).await.unwrap();
    let (ok, _, stderr) = ctl.run(&other, &["put", "again", "y"]);
    assert!(ok, "{stderr}");
    let health = http_get(cluster.nodes[1].address(), "/health").await;
    assert!(health.contains(r#""health":"true""#), "{health}");
}
