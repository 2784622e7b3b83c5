//! End-to-end with etcdctl 3.4 (Debian's etcd-client), a client nobody here wrote.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use ballast_tests::{etcdctl, etcdctl_stdin, Node};

fn ok(node: &Node, args: &[&str]) -> String {
    let (success, out, err) = etcdctl(&node.endpoint(), args);
    assert!(success, "etcdctl {args:?} failed: {err}");
    out
}

fn fails_with(node: &Node, args: &[&str], message: &str) {
    let (success, out, err) = etcdctl(&node.endpoint(), args);
    assert!(!success, "etcdctl {args:?} should fail, printed {out}");
    assert!(
        err.contains(message),
        "etcdctl {args:?}: expected {message:?} in {err}"
    );
}

fn node(dir: &tempfile::TempDir, args: &[&str]) -> Node {
    Node::start_with(&dir.path().join("n"), args)
}

#[test]
fn put_and_get_with_every_option() {
    let dir = tempfile::tempdir().unwrap();
    let n = node(&dir, &[]);
    assert_eq!(ok(&n, &["put", "k1", "v1"]), "OK\n");
    ok(&n, &["put", "k2", "v2"]);
    ok(&n, &["put", "k3", "v3"]);
    assert_eq!(ok(&n, &["put", "k1", "v1b", "--prev-kv"]), "OK\nk1\nv1\n");
    assert_eq!(ok(&n, &["get", "k1"]), "k1\nv1b\n");
    assert_eq!(ok(&n, &["get", "k1", "--print-value-only"]), "v1b\n");
    assert_eq!(ok(&n, &["get", "k1", "--rev=2"]), "k1\nv1\n");
    assert_eq!(
        ok(&n, &["get", "k", "--prefix", "--keys-only"]),
        "k1\n\nk2\n\nk3\n\n"
    );
    assert_eq!(
        ok(&n, &["get", "k2", "--from-key", "--keys-only"]),
        "k2\n\nk3\n\n"
    );
    assert_eq!(ok(&n, &["get", "k1", "k3", "--keys-only"]), "k1\n\nk2\n\n");
    assert_eq!(
        ok(&n, &["get", "k", "--prefix", "--limit=1", "--keys-only"]),
        "k1\n\n"
    );
    assert_eq!(
        ok(
            &n,
            &[
                "get",
                "k",
                "--prefix",
                "--sort-by=KEY",
                "--order=DESCEND",
                "--keys-only"
            ]
        ),
        "k3\n\nk2\n\nk1\n\n"
    );
    assert_eq!(
        ok(
            &n,
            &[
                "get",
                "k",
                "--prefix",
                "--sort-by=MODIFY",
                "--order=ASCEND",
                "--keys-only"
            ]
        ),
        "k2\n\nk3\n\nk1\n\n"
    );
    assert_eq!(ok(&n, &["get", "k2", "--consistency=s"]), "k2\nv2\n");
    let fields = ok(&n, &["get", "k1", "-w", "fields"]);
    for expected in [
        "\"Version\" : 2",
        "\"CreateRevision\" : 2",
        "\"ModRevision\" : 5",
        "\"Count\" : 1",
    ] {
        assert!(fields.contains(expected), "{expected} in {fields}");
    }
    // ignore_lease keeps the stored lease; ignore_value keeps the stored value (and, as in
    // etcd, a put without --lease then clears the lease).
    let lease = ok(&n, &["lease", "grant", "100"]);
    let id = lease.split_whitespace().nth(1).unwrap().to_string();
    let lease_field = format!("\"Lease\" : {}", i64::from_str_radix(&id, 16).unwrap());
    ok(&n, &["put", "k2", "leased", &format!("--lease={id}")]);
    ok(&n, &["put", "k2", "v2b", "--ignore-lease"]);
    let fields = ok(&n, &["get", "k2", "-w", "fields"]);
    assert!(
        fields.contains("\"Value\" : \"v2b\"") && fields.contains(&lease_field),
        "{fields}"
    );
    ok(&n, &["put", "k2", "--ignore-value"]);
    let fields = ok(&n, &["get", "k2", "-w", "fields"]);
    assert!(
        fields.contains("\"Value\" : \"v2b\"") && fields.contains("\"Lease\" : 0\n"),
        "{fields}"
    );
}

#[test]
fn delete_and_txn() {
    let dir = tempfile::tempdir().unwrap();
    let n = node(&dir, &[]);
    for k in ["a", "b", "c", "d"] {
        ok(&n, &["put", k, k]);
    }
    assert_eq!(ok(&n, &["del", "a", "--prev-kv"]), "1\na\na\n");
    assert_eq!(ok(&n, &["del", "b", "d"]), "2\n");
    assert_eq!(ok(&n, &["del", "nothing"]), "0\n");
    assert_eq!(ok(&n, &["del", "", "--from-key"]), "1\n");

    let (success, out, err) = etcdctl_stdin(
        &n.endpoint(),
        &["txn"],
        Some("mod(\"obj\") = \"0\"\n\nput obj v1\nget obj\n\nget obj\n\n"),
    );
    assert!(success, "{err}");
    assert_eq!(out, "SUCCESS\n\nOK\n\nobj\nv1\n");
    let (success, out, err) = etcdctl_stdin(
        &n.endpoint(),
        &["txn"],
        Some("val(\"obj\") = \"other\"\n\nput obj v2\n\nget obj\n\n"),
    );
    assert!(success, "{err}");
    assert_eq!(out, "FAILURE\n\nobj\nv1\n");
}

#[test]
fn watch_with_rev_and_prev_kv() {
    let dir = tempfile::tempdir().unwrap();
    let n = node(&dir, &[]);
    ok(&n, &["put", "w", "1"]); // revision 2
    ok(&n, &["put", "w", "2"]); // 3
    let mut child = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args([
            &format!("--endpoints={}", n.endpoint()),
            "watch",
            "w",
            "--rev=2",
            "--prev-kv",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines() {
            lines.push(line.unwrap());
            if lines.len() == 13 {
                break;
            }
        }
        lines
    });
    ok(&n, &["del", "w"]); // 4, seen live
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !reader.is_finished() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    let lines = reader.join().unwrap();
    // PUT w=1 (no prev), PUT w=2 (prev w=1), DELETE w (prev w=2).
    assert_eq!(
        lines,
        ["PUT", "w", "1", "PUT", "w", "1", "w", "2", "DELETE", "w", "2", "w", ""],
        "replayed from --rev, then live, each with its previous value"
    );
}

#[test]
fn leases_and_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let n = node(&dir, &[]);
    let granted = ok(&n, &["lease", "grant", "60"]);
    assert!(granted.ends_with("granted with TTL(60s)\n"), "{granted}");
    let id = granted.split_whitespace().nth(1).unwrap().to_string();
    ok(&n, &["put", "lk", "v", &format!("--lease={id}")]);
    let kept = ok(&n, &["lease", "keep-alive", "--once", &id]);
    assert!(kept.contains("keepalived with TTL(60)"), "{kept}");
    let ttl = ok(&n, &["lease", "timetolive", &id, "--keys"]);
    assert!(
        ttl.contains("granted with TTL(60s)") && ttl.contains("attached keys([lk])"),
        "{ttl}"
    );
    let list = ok(&n, &["lease", "list"]);
    assert_eq!(list, format!("found 1 leases\n{id}\n"));
    assert!(ok(&n, &["lease", "revoke", &id]).contains("revoked"));
    assert_eq!(ok(&n, &["get", "lk"]), "");

    let short = ok(&n, &["lease", "grant", "2"]);
    let short_id = short.split_whitespace().nth(1).unwrap().to_string();
    ok(&n, &["put", "ek", "v", &format!("--lease={short_id}")]);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !ok(&n, &["get", "ek"]).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the lease never expired"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(ok(&n, &["lease", "timetolive", &short_id]).contains("already expired"));
}

#[test]
fn compaction_status_health_member_list() {
    let dir = tempfile::tempdir().unwrap();
    let n = node(&dir, &[]);
    for i in 0..5 {
        ok(&n, &["put", "c", &i.to_string()]);
    }
    assert_eq!(
        ok(&n, &["compaction", "4", "--physical"]),
        "compacted revision 4\n"
    );
    fails_with(
        &n,
        &["get", "c", "--rev=3"],
        "etcdserver: mvcc: required revision has been compacted",
    );
    assert_eq!(ok(&n, &["get", "c", "--rev=4"]), "c\n2\n");

    let status = ok(&n, &["endpoint", "status"]);
    let fields: Vec<&str> = status.trim().split(", ").collect();
    assert_eq!(fields[0], n.endpoint());
    assert!(
        fields[2].starts_with("3.5."),
        "an etcd 3.5 version: {status}"
    );
    assert_eq!(fields[4], "true", "the only member leads: {status}");
    // etcdctl 3.4 prints the health verdict on stderr.
    let (healthy, _, health) = etcdctl(&n.endpoint(), &["endpoint", "health"]);
    assert!(healthy && health.contains("is healthy"), "{health}");
    let members = ok(&n, &["member", "list"]);
    assert!(
        members.contains("started, node,") && members.contains(&n.url()),
        "{members}"
    );
    let hashkv = ok(&n, &["endpoint", "hashkv"]);
    assert!(hashkv.starts_with(&n.endpoint()), "{hashkv}");
}

/// etcdctl dials a member's client URL itself for these (and always with `--cluster`),
/// and then grpc-go names the whole URL as every request's authority.
#[test]
fn commands_that_dial_member_urls() {
    let dir = tempfile::tempdir().unwrap();
    let n = node(&dir, &[]);
    ok(&n, &["put", "k", "v"]);
    let (success, status, err) = etcdctl(&n.url(), &["endpoint", "status"]);
    assert!(success, "{err}");
    assert!(status.starts_with(&format!("{}, ", n.url())), "{status}");
    let status = ok(&n, &["endpoint", "status", "--cluster", "-w", "json"]);
    assert!(status.contains("\"leader\""), "{status}");
    let hashkv = ok(&n, &["endpoint", "hashkv", "--cluster"]);
    assert!(hashkv.starts_with(&format!("{}, ", n.url())), "{hashkv}");
    let defrag = ok(&n, &["defrag", "--cluster"]);
    assert!(
        defrag.contains(&format!("Finished defragmenting etcd member[{}]", n.url())),
        "{defrag}"
    );
    assert_eq!(ok(&n, &["get", "k", "--print-value-only"]), "v\n");
}

#[test]
fn bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let n = node(&dir, &["--max-request-bytes", "2048", "--max-txn-ops", "2"]);
    ok(&n, &["put", "k", "v"]);
    fails_with(&n, &["put", "", "v"], "etcdserver: key is not provided");
    fails_with(
        &n,
        &["put", "big", &"x".repeat(3000)],
        "etcdserver: request is too large",
    );
    fails_with(
        &n,
        &["put", "k", "v", "--lease=1234abcd"],
        "etcdserver: requested lease not found",
    );
    fails_with(
        &n,
        &["put", "missing", "--ignore-value"],
        "etcdserver: key not found",
    );
    fails_with(
        &n,
        &["lease", "revoke", "1234"],
        "etcdserver: requested lease not found",
    );
    fails_with(
        &n,
        &["get", "k", "--rev=100"],
        "etcdserver: mvcc: required revision is a future revision",
    );
    fails_with(
        &n,
        &["lease", "grant", "9000000001"],
        "etcdserver: too large lease TTL",
    );
    let (success, _, err) = etcdctl_stdin(
        &n.endpoint(),
        &["txn"],
        Some("\nput a 1\nput b 1\nput c 1\n\n\n"),
    );
    assert!(
        !success && err.contains("etcdserver: too many operations in txn request"),
        "{err}"
    );
    let (success, _, err) =
        etcdctl_stdin(&n.endpoint(), &["txn"], Some("\nput a 1\nput a 2\n\n\n"));
    assert!(
        !success && err.contains("etcdserver: duplicate key given in txn request"),
        "{err}"
    );
    ok(&n, &["compaction", "2"]);
    fails_with(
        &n,
        &["compaction", "2"],
        "etcdserver: mvcc: required revision has been compacted",
    );
    // Nothing above changed the store.
    let fields = ok(&n, &["get", "k", "-w", "fields"]);
    assert!(fields.contains("\"Revision\" : 2"), "{fields}");
}
