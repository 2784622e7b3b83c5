//! `ballastutl`, beside etcd's own tools: snapshots from etcd 3.4 and 3.5 restored into
//! Ballast and served with the same keys, revisions, versions and leases (the way in),
//! Ballast's own snapshots restored (self-restore), damaged files refused with nothing
//! left behind, `snapshot status` equal to etcdutl's, `defrag` of a stopped member.

use std::path::{Path, PathBuf};
use std::process::Command;

use ballast_tests::{
    ballastutl_binary, bind_port, etcd_35_dir, port_of, snapshot_status_json, Etcd, Etcdctl, Node,
};
use serde_json::Value;

fn ctl(version: Etcdctl, endpoint: &str, args: &[&str]) -> String {
    let (ok, stdout, stderr) = version.run(endpoint, args);
    assert!(ok, "etcdctl {args:?}: {stderr}");
    stdout
}

/// Runs ballastutl; returns (success, stdout, stderr).
fn ballastutl(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(ballastutl_binary())
        .args(args)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Every key with its revisions, version, value and lease, and the store revision.
fn listing(endpoint: &str) -> (Vec<Value>, i64) {
    let out: Value = serde_json::from_str(&ctl(
        Etcdctl::V35,
        endpoint,
        &["get", "", "--prefix", "-w", "json"],
    ))
    .unwrap();
    let revision = out["header"]["revision"].as_i64().unwrap();
    (out["kvs"].as_array().cloned().unwrap_or_default(), revision)
}

/// A key written once below the compaction point, overwrites, a delete, a leased key and
/// a physical compaction; returns the lease id (hex).
fn fill(version: Etcdctl, endpoint: &str) -> String {
    ctl(version, endpoint, &["put", "old", "0"]);
    ctl(version, endpoint, &["put", "a", "1"]);
    ctl(version, endpoint, &["put", "b", "2"]);
    ctl(version, endpoint, &["put", "a", "3"]);
    ctl(version, endpoint, &["del", "b"]);
    let lease = ctl(version, endpoint, &["lease", "grant", "600"]);
    let lease = lease.split_whitespace().nth(1).unwrap().to_string();
    ctl(
        version,
        endpoint,
        &["put", "leased", "x", "--lease", &lease],
    );
    ctl(version, endpoint, &["compact", "4", "--physical"]);
    ctl(version, endpoint, &["put", "c", "4"]);
    ctl(version, endpoint, &["put", "c", "5"]);
    lease
}

/// `ballastutl snapshot restore` of `snapshot` into `dir` for member `name` of the
/// cluster `initial`; returns (success, stdout, stderr).
fn restore_member(
    snapshot: &Path,
    dir: &Path,
    name: &str,
    initial: &str,
    peer_url: &str,
) -> (bool, String, String) {
    ballastutl(&[
        "snapshot",
        "restore",
        snapshot.to_str().unwrap(),
        "--data-dir",
        dir.to_str().unwrap(),
        "--name",
        name,
        "--initial-cluster",
        initial,
        "--initial-cluster-token",
        "migrated",
        "--initial-advertise-peer-urls",
        peer_url,
    ])
}

/// Restores `snapshot` with ballastutl into `dir` and starts a member on it.
fn start_restored(snapshot: &Path, dir: &Path) -> Node {
    let peer = bind_port();
    let peer_url = format!("http://127.0.0.1:{}", port_of(&peer));
    let initial = format!("node={peer_url}");
    let (ok, stdout, stderr) = restore_member(snapshot, dir, "node", &initial, &peer_url);
    assert!(ok, "ballastutl snapshot restore: {stdout}{stderr}");
    let mut node = Node::new(dir, "node", peer, None, &[]);
    node.spawn();
    node.wait_ready().expect("the restored member serves");
    node
}

/// The source's data, served by `restored`: identical keys and revisions, the lease,
/// the compaction point, and the next write at the next revision.
fn assert_same_data(source: &str, restored: &str, lease: &str) {
    let (kvs, revision) = listing(source);
    let (restored_kvs, restored_revision) = listing(restored);
    assert_eq!(restored_kvs, kvs);
    assert_eq!(restored_revision, revision);
    assert!(ctl(Etcdctl::V35, restored, &["lease", "list"]).contains(lease));
    let (ok, _, stderr) = Etcdctl::V35.run(restored, &["get", "a", "--rev", "3"]);
    assert!(
        !ok && stderr.contains("required revision has been compacted"),
        "{stderr}"
    );
    // At the compaction point, the versions below it that it still shows.
    for (rev, key, value) in [("4", "a", "1"), ("4", "old", "0"), ("5", "a", "3")] {
        let got = ctl(
            Etcdctl::V35,
            restored,
            &["get", key, "--rev", rev, "--print-value-only"],
        );
        assert_eq!(got.trim(), value, "{key} at {rev}");
    }
    let old = ctl(
        Etcdctl::V35,
        restored,
        &[
            "get",
            "c",
            "--rev",
            &(revision - 1).to_string(),
            "--print-value-only",
        ],
    );
    assert_eq!(old.trim(), "4", "history above the compaction is kept");
    let put = ctl(Etcdctl::V35, restored, &["put", "d", "6", "-w", "json"]);
    assert!(
        put.contains(&format!("\"revision\":{}", revision + 1)),
        "{put}"
    );
}

fn status_json(program: PathBuf, file: &Path) -> Value {
    serde_json::from_str(&snapshot_status_json(&program, file)).unwrap()
}

#[test]
fn etcd_snapshots_from_3_4_and_3_5_are_served_by_ballast() {
    let dir = tempfile::tempdir().unwrap();
    for (version, name) in [(Etcdctl::V34, "etcd34"), (Etcdctl::V35, "etcd35")] {
        let mut etcd = match version {
            Etcdctl::V34 => Etcd::start(&dir.path().join(name)),
            Etcdctl::V35 => {
                let mut etcd = Etcd::start_with(&dir.path().join(name), &[], false);
                etcd.kill9();
                etcd.binary = etcd_35_dir().join("etcd");
                etcd.restart();
                etcd
            }
        };
        let source = etcd.endpoint();
        let lease = fill(version, &source);
        let file = dir.path().join(format!("{name}.db"));
        ctl(
            version,
            &source,
            &["snapshot", "save", file.to_str().unwrap()],
        );
        assert_eq!(
            status_json(ballastutl_binary(), &file),
            status_json(etcd_35_dir().join("etcdutl"), &file),
            "ballastutl and etcdutl agree on {name}'s snapshot"
        );
        let node = start_restored(&file, &dir.path().join(format!("{name}-ballast")));
        assert_same_data(&source, &node.endpoint(), &lease);
        etcd.kill9();
    }
}

#[test]
fn ballast_restores_its_own_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let source = Node::start(&dir.path().join("source"));
    let lease = fill(Etcdctl::V35, &source.endpoint());
    let file = dir.path().join("ballast.db");
    ctl(
        Etcdctl::V35,
        &source.endpoint(),
        &["snapshot", "save", file.to_str().unwrap()],
    );
    assert_eq!(
        status_json(ballastutl_binary(), &file),
        status_json(etcd_35_dir().join("etcdutl"), &file)
    );
    let restored = start_restored(&file, &dir.path().join("restored"));
    assert_same_data(&source.endpoint(), &restored.endpoint(), &lease);
}

#[test]
fn damaged_snapshots_are_refused_and_leave_no_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let source = Node::start(&dir.path().join("source"));
    fill(Etcdctl::V35, &source.endpoint());
    let good = dir.path().join("good.db");
    ctl(
        Etcdctl::V35,
        &source.endpoint(),
        &["snapshot", "save", good.to_str().unwrap()],
    );
    let bytes = std::fs::read(&good).unwrap();

    let flipped = dir.path().join("flipped.db");
    let mut damaged = bytes.clone();
    damaged[bytes.len() / 2] ^= 0x01;
    std::fs::write(&flipped, &damaged).unwrap();
    // A page short: what is left ends in bytes that are not its hash.
    let truncated = dir.path().join("truncated.db");
    std::fs::write(&truncated, &bytes[..bytes.len() - 4096]).unwrap();
    // Cut before its hash: a database missing its last page.
    let cut = dir.path().join("cut.db");
    std::fs::write(&cut, &bytes[..bytes.len() - 32 - 4096]).unwrap();
    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![0x5a; 4096 * 3]).unwrap();

    let restore = |file: &Path, target: &Path, extra: &[&str]| {
        let mut args = vec![
            "snapshot",
            "restore",
            file.to_str().unwrap(),
            "--data-dir",
            target.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        ballastutl(&args)
    };
    let cases: [(&Path, &[&str], &str); 5] = [
        (&flipped, &[], "expected sha256"),
        (&truncated, &[], "expected sha256"),
        (
            &cut,
            &[],
            "snapshot missing hash but --skip-hash-check=false",
        ),
        (&cut, &["--skip-hash-check"], "the file has"),
        (&garbage, &["--skip-hash-check"], "not a bbolt file"),
    ];
    for (i, (file, extra, expected)) in cases.into_iter().enumerate() {
        let target = dir.path().join(format!("refused-{i}"));
        let (ok, stdout, stderr) = restore(file, &target, extra);
        assert!(!ok, "{} was restored: {stdout}", file.display());
        assert!(stderr.contains(expected), "{}: {stderr}", file.display());
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&format!("refused-{i}")))
            .collect();
        assert!(left.is_empty(), "a refused restore left {left:?}");
    }
    // The good one still restores.
    let (ok, _, stderr) = restore(&good, &dir.path().join("good"), &[]);
    assert!(ok, "{stderr}");
}

#[test]
fn defrag_of_a_stopped_member_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(&dir.path().join("n"));
    fill(Etcdctl::V35, &node.endpoint());
    let (before, revision) = listing(&node.endpoint());
    node.terminate();
    let (ok, stdout, stderr) = ballastutl(&["defrag", "--data-dir", node.dir.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("Finished defragmenting etcd data"),
        "{stdout}"
    );
    node.restart();
    assert_eq!(listing(&node.endpoint()), (before, revision));
    let (ok, _, stderr) = ballastutl(&[
        "defrag",
        "--data-dir",
        dir.path().join("nowhere").to_str().unwrap(),
    ]);
    assert!(
        !ok && stderr.contains("holds no member database"),
        "{stderr}"
    );
}

/// The README's migration: one etcd snapshot restored on three members with the same
/// `--initial-cluster`; they form one cluster over the same data and replicate writes.
#[test]
fn one_snapshot_restored_on_three_members_forms_a_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let mut etcd = Etcd::start(&dir.path().join("etcd"));
    let lease = fill(Etcdctl::V34, &etcd.endpoint());
    let file = dir.path().join("etcd.db");
    ctl(
        Etcdctl::V34,
        &etcd.endpoint(),
        &["snapshot", "save", file.to_str().unwrap()],
    );
    let (kvs, revision) = listing(&etcd.endpoint());
    etcd.kill9();

    let peers: Vec<_> = (0..3).map(|_| bind_port()).collect();
    let initial = peers
        .iter()
        .enumerate()
        .map(|(i, p)| format!("m{i}=http://127.0.0.1:{}", port_of(p)))
        .collect::<Vec<_>>()
        .join(",");
    let mut members = Vec::new();
    for (i, peer) in peers.into_iter().enumerate() {
        let data = dir.path().join(format!("m{i}"));
        let peer_url = format!("http://127.0.0.1:{}", port_of(&peer));
        let name = format!("m{i}");
        let (ok, _, stderr) = restore_member(&file, &data, &name, &initial, &peer_url);
        assert!(ok, "restore of m{i}: {stderr}");
        members.push(Node::new(
            &data,
            &format!("m{i}"),
            peer,
            Some(initial.clone()),
            &[],
        ));
    }
    for member in &mut members {
        member.spawn();
    }
    for member in &mut members {
        member.wait_ready().expect("a restored member serves");
    }
    for member in &members {
        assert_eq!(
            listing(&member.endpoint()),
            (kvs.clone(), revision),
            "{}",
            member.name
        );
        assert!(ctl(Etcdctl::V35, &member.endpoint(), &["lease", "list"]).contains(&lease));
    }
    let list = ctl(Etcdctl::V35, &members[0].endpoint(), &["member", "list"]);
    assert_eq!(list.lines().count(), 3, "{list}");
    ctl(
        Etcdctl::V35,
        &members[1].endpoint(),
        &["put", "after", "migration"],
    );
    for member in &members {
        let value = ctl(
            Etcdctl::V35,
            &member.endpoint(),
            &["get", "after", "--print-value-only"],
        );
        assert_eq!(value.trim(), "migration", "{}", member.name);
    }
}
