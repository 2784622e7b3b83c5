//! The corruption check on a real 3-member cluster: a member whose stored data was
//! changed behind raft's back refuses to start with `--experimental-initial-corrupt-check`,
//! and without it the leader's periodic check raises the CORRUPT alarm naming it, after
//! which the cluster refuses writes (etcd's "corrupt cluster") and still serves reads.

use std::path::Path;

use ballast_client::PutOptions;
use ballast_store::backend::{Backend, Cf};
use ballast_store::keys::version_key;
use ballast_store::record::Version;
use ballast_tests::{eventually, Etcdctl, TestCluster, WAIT};

const CORRUPT: &str = "etcdserver: corrupt cluster";

/// The revision a member's Status answers with; None while it does not answer.
async fn status_revision(endpoint: String) -> Option<i64> {
    let client = ballast_client::Client::connect([endpoint], Default::default())
        .await
        .ok()?;
    Some(client.status().await.ok()?.header.revision)
}

/// Changes the value of `key`'s version at `revision` in a stopped member's database,
/// keeping the record well-formed: only a comparison with the other members can tell.
fn damage(db: &Path, key: &[u8], revision: i64) {
    let backend = Backend::open(db).unwrap();
    let at = version_key(key, revision);
    let stored = backend
        .get(Cf::Kv, &at)
        .unwrap()
        .expect("the version is stored");
    let Version::Put {
        create_revision,
        version,
        lease,
        ..
    } = Version::decode(&stored, true).unwrap()
    else {
        panic!("a put was stored");
    };
    let changed = Version::Put {
        create_revision,
        version,
        lease,
        value: bytes::Bytes::from_static(b"bit rot"),
    };
    let mut batch = rocksdb::WriteBatch::default();
    batch.put_cf(backend.cf(Cf::Kv), &at, changed.encode());
    backend.write(batch, true).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_with_changed_data_is_found_and_writes_stop() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = TestCluster::start(
        dir.path(),
        3,
        &["--experimental-corrupt-check-time", "300ms"],
    );
    let client = cluster.client().await;
    let mut revision = 0;
    for i in 0..10 {
        revision = client
            .put(format!("k{i}"), "v", PutOptions::new())
            .await
            .unwrap()
            .header
            .revision;
    }
    let victim = (cluster.leader().await + 1) % 3;
    // Every member has applied the writes before the victim stops.
    for node in &cluster.nodes {
        let endpoint = node.endpoint();
        let caught_up = eventually(WAIT, || {
            let endpoint = endpoint.clone();
            async move { status_revision(endpoint).await == Some(revision) }
        })
        .await;
        assert!(caught_up, "{} applied every write", node.name);
    }
    let victim_id = {
        let c = cluster.nodes[victim].client().await;
        c.status().await.unwrap().header.member_id
    };
    let node = &mut cluster.nodes[victim];
    node.terminate();
    damage(&node.dir.join("member").join("db"), b"k3", revision - 6);

    // The initial check refuses to serve with data that differs from its peers'.
    node.extra_args
        .push("--experimental-initial-corrupt-check".into());
    node.respawn();
    let log = node
        .wait_ready()
        .expect_err("a damaged member must not serve");
    assert!(
        log.contains("found data inconsistency with peers"),
        "the member's log:\n{log}"
    );

    // Without it the member serves, and the leader's periodic check finds it.
    node.extra_args.pop();
    node.respawn();
    // Not /health: the leader's check may raise the alarm first, and an alarm makes the
    // member unhealthy. Serving is what counts here.
    let endpoint = node.endpoint();
    let serving = eventually(WAIT, || {
        let endpoint = endpoint.clone();
        async move { status_revision(endpoint).await.is_some() }
    })
    .await;
    assert!(
        serving,
        "the member serves without the initial check:\n{}",
        node.log()
    );
    let endpoints = cluster.endpoints().join(",");
    let named = format!("memberID:{victim_id} alarm:CORRUPT");
    let raised = eventually(WAIT, || {
        let (endpoints, named) = (endpoints.clone(), named.clone());
        async move {
            let (_, listed, _) = Etcdctl::V35.run(&endpoints, &["alarm", "list"]);
            listed.contains(&named)
        }
    })
    .await;
    assert!(raised, "the CORRUPT alarm names member {victim_id:x}");

    let err = client
        .put("after", "x", PutOptions::new())
        .await
        .unwrap_err();
    assert_eq!(err.message(), Some(CORRUPT));
    let (ok, _, stderr) = Etcdctl::V35.run(&endpoints, &["del", "k1"]);
    assert!(!ok && stderr.contains(CORRUPT), "{stderr}");
    let (ok, value, _) = Etcdctl::V35.run(&endpoints, &["get", "k1", "--print-value-only"]);
    assert!(ok && value.trim() == "v", "reads go on: {value}");
}
