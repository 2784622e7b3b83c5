//! etcd's auth end to end, driven by etcdctl 3.4 and 3.5.1: users, roles, grants, enable,
//! a reader who cannot write, wrong passwords, missing tokens, a txn touching one
//! forbidden key, a watch on a forbidden range, password changes, and permissions held
//! by every member after the leader is killed. Passwords never reach disk or logs.

use std::path::Path;

use ballast_tests::{Etcdctl, Node, TestCluster, WAIT};

const ROOT: &str = "root:r00t-Pa55";
/// Distinctive, so that finding it anywhere on disk or in a log means it leaked.
const ALICE_PASSWORD: &str = "alice-S3cret-Xq7zW";
/// Fast hashes: these tests hash and verify a password on almost every command.
const FAST_BCRYPT: &[&str] = &["--bcrypt-cost", "4"];

fn ok(result: (bool, String, String)) -> String {
    assert!(result.0, "etcdctl failed:\n{}\n{}", result.1, result.2);
    result.1
}

fn fails_with(result: (bool, String, String), message: &str) {
    assert!(
        !result.0,
        "etcdctl succeeded, expected {message:?}:\n{}",
        result.1
    );
    assert!(
        result.2.contains(message),
        "expected {message:?} in:\n{}",
        result.2
    );
}

/// root (with role root), role reader (read on prefix r/), role writer (readwrite on
/// prefix w/), alice with reader, auth on.
fn secure(ctl: Etcdctl, endpoint: &str) {
    let alice = format!("alice:{ALICE_PASSWORD}");
    for args in [
        vec!["user", "add", ROOT],
        vec!["user", "grant-role", "root", "root"],
        vec!["role", "add", "reader"],
        vec![
            "role",
            "grant-permission",
            "reader",
            "read",
            "--prefix=true",
            "r/",
        ],
        vec!["role", "add", "writer"],
        vec![
            "role",
            "grant-permission",
            "writer",
            "readwrite",
            "--prefix=true",
            "w/",
        ],
        vec!["user", "add", &alice],
        vec!["user", "grant-role", "alice", "reader"],
    ] {
        ok(ctl.run(endpoint, &args));
    }
    assert!(ok(ctl.run(endpoint, &["auth", "enable"])).contains("Authentication Enabled"));
}

fn as_root<'a>(args: &[&'a str]) -> Vec<&'a str> {
    [&["--user", ROOT][..], args].concat()
}

fn every_auth_command(ctl: Etcdctl, dir: &Path) {
    let mut node = Node::start_with(dir, FAST_BCRYPT);
    let e = &node.endpoint();
    // Before root exists, auth cannot be enabled.
    fails_with(ctl.run(e, &["auth", "enable"]), "root user does not exist");
    secure(ctl, e);
    let alice = format!("alice:{ALICE_PASSWORD}");
    let alice = &["--user", alice.as_str()][..];

    // No token: refused. Root writes anything.
    fails_with(ctl.run(e, &["put", "r/a", "1"]), "user name is empty");
    ok(ctl.run(e, &as_root(&["put", "r/a", "1"])));
    ok(ctl.run(e, &as_root(&["put", "secret", "s"])));

    // A reader reads its prefix, nothing else, and cannot write.
    let got = ok(ctl.run(e, &[alice, &["get", "r/a"]].concat()));
    assert_eq!(got.lines().collect::<Vec<_>>(), ["r/a", "1"]);
    fails_with(
        ctl.run(e, &[alice, &["put", "r/a", "2"]].concat()),
        "permission denied",
    );
    fails_with(
        ctl.run(e, &[alice, &["get", "secret"]].concat()),
        "permission denied",
    );
    fails_with(
        ctl.run(e, &[alice, &["get", "r", "--prefix"]].concat()),
        "permission denied",
    );
    fails_with(
        ctl.run(e, &["--user", "alice:wrong", "get", "r/a"]),
        "authentication failed, invalid user ID or password",
    );

    // A txn that touches one forbidden key is refused whole and changes nothing.
    ok(ctl.run(e, &as_root(&["user", "grant-role", "alice", "writer"])));
    let txn = "value(\"r/a\") = \"1\"\n\nput w/x 1\nput secret stolen\n\n\n";
    let refused = ctl.run_stdin(e, &[alice, &["txn"]].concat(), txn);
    fails_with(refused, "permission denied");
    assert_eq!(ok(ctl.run(e, &as_root(&["get", "w/x"]))), "");
    assert!(ok(ctl.run(e, &as_root(&["get", "secret"]))).contains("s\n"));
    ok(ctl.run(e, &[alice, &["put", "w/x", "1"]].concat()));

    // A watch on a forbidden range is cancelled with etcd's reason.
    let watched = ctl.run(e, &[alice, &["watch", "secret"]].concat());
    assert!(
        watched.1.contains("permission denied") || watched.2.contains("permission denied"),
        "{watched:?}"
    );

    // Listing and reading users and roles.
    let users = ok(ctl.run(e, &as_root(&["user", "list"])));
    assert_eq!(users.lines().collect::<Vec<_>>(), ["alice", "root"]);
    let roles = ok(ctl.run(e, &as_root(&["role", "list"])));
    // Role root is granted without being added, so it is not listed (as in etcd).
    assert_eq!(roles.lines().collect::<Vec<_>>(), ["reader", "writer"]);
    let user = ok(ctl.run(e, &as_root(&["user", "get", "alice"])));
    assert!(user.contains("Roles: reader writer"), "{user}");
    let role = ok(ctl.run(e, &as_root(&["role", "get", "reader"])));
    assert!(role.contains("[r/, r0) (prefix r/)"), "{role}");
    fails_with(
        ctl.run(e, &[alice, &["user", "list"]].concat()),
        "permission denied",
    );

    // Revoking takes effect on the very next request.
    ok(ctl.run(
        e,
        &as_root(&["role", "revoke-permission", "writer", "--prefix=true", "w/"]),
    ));
    fails_with(
        ctl.run(e, &[alice, &["put", "w/x", "2"]].concat()),
        "permission denied",
    );
    fails_with(
        ctl.run(e, &as_root(&["role", "revoke-permission", "writer", "w/"])),
        "permission is not granted to the role",
    );
    ok(ctl.run(e, &as_root(&["user", "revoke-role", "alice", "writer"])));
    fails_with(
        ctl.run(e, &as_root(&["user", "revoke-role", "alice", "writer"])),
        "role is not granted to the user",
    );
    ok(ctl.run(e, &as_root(&["role", "delete", "writer"])));
    fails_with(
        ctl.run(e, &as_root(&["role", "get", "writer"])),
        "role name not found",
    );
    fails_with(
        ctl.run(e, &as_root(&["user", "delete", "root"])),
        "invalid auth management",
    );

    // A new password: the old one stops working.
    ok(ctl.run_stdin(
        e,
        &as_root(&["user", "passwd", "alice", "--interactive=false"]),
        "n3w-pass\n",
    ));
    fails_with(
        ctl.run(e, &[alice, &["get", "r/a"]].concat()),
        "authentication failed",
    );
    ok(ctl.run(e, &["--user", "alice:n3w-pass", "get", "r/a"]));

    // Users, then auth off: anyone may do anything again.
    ok(ctl.run(e, &as_root(&["user", "add", "bob:bobpw"])));
    ok(ctl.run(e, &as_root(&["user", "delete", "bob"])));
    fails_with(
        ctl.run(e, &["--user", "bob:bobpw", "get", "r/a"]),
        "authentication failed",
    );
    ok(ctl.run(e, &as_root(&["auth", "disable"])));
    ok(ctl.run(e, &["put", "secret", "open"]));

    // The first password of alice is nowhere: not in the data directory, not in the log.
    node.terminate();
    assert_no_password(dir, &node.log());
}

fn assert_no_password(dir: &Path, log: &str) {
    assert!(!log.contains(ALICE_PASSWORD), "password in the log");
    let mut stack = vec![dir.to_path_buf()];
    let mut files = 0;
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            files += 1;
            let bytes = std::fs::read(&path).unwrap();
            let found = bytes
                .windows(ALICE_PASSWORD.len())
                .any(|w| w == ALICE_PASSWORD.as_bytes());
            assert!(!found, "password found in {}", path.display());
        }
    }
    assert!(files > 0, "the data directory was searched");
}

#[test]
fn every_auth_command_with_etcdctl_3_4() {
    let dir = tempfile::tempdir().unwrap();
    every_auth_command(Etcdctl::V34, dir.path());
}

#[test]
fn every_auth_command_with_etcdctl_3_5() {
    let dir = tempfile::tempdir().unwrap();
    every_auth_command(Etcdctl::V35, dir.path());
}

#[test]
fn every_member_enforces_permissions_after_the_leader_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = TestCluster::start(dir.path(), 3, FAST_BCRYPT);
    let ctl = Etcdctl::V35;
    secure(ctl, &cluster.nodes[0].endpoint());
    let leader = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(cluster.leader());
    cluster.nodes[leader].kill9();
    let alice = format!("alice:{ALICE_PASSWORD}");
    let others: Vec<String> = (0..3)
        .filter(|i| *i != leader)
        .map(|i| cluster.nodes[i].endpoint())
        .collect();
    // The first write may meet the election that follows the kill.
    let deadline = std::time::Instant::now() + WAIT;
    while !ctl.run(&others[0], &as_root(&["put", "r/k", "v"])).0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no write after the leader died"
        );
    }
    for endpoint in &others {
        // A follower may apply the put a moment after the leader answered.
        let deadline = std::time::Instant::now() + WAIT;
        while ctl.run(endpoint, &["--user", &alice, "get", "r/k"]).1 != "r/k\nv\n" {
            assert!(
                std::time::Instant::now() < deadline,
                "alice never read r/k at {endpoint}"
            );
        }
        fails_with(
            ctl.run(endpoint, &["--user", &alice, "put", "r/k", "w"]),
            "permission denied",
        );
    }
    // A grant made through one member holds on the other at once.
    ok(ctl.run(
        &others[0],
        &as_root(&[
            "role",
            "grant-permission",
            "reader",
            "readwrite",
            "--prefix=true",
            "r/",
        ]),
    ));
    ok(ctl.run(&others[1], &["--user", &alice, "put", "r/k", "w"]));
}

/// Writes an ES256 key pair (PKCS#8 private, SPKI public) into `dir`.
fn jwt_keys(dir: &Path, name: &str) -> (String, String) {
    let pair = rcgen::KeyPair::generate().unwrap();
    let private = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub"));
    std::fs::write(&private, pair.serialize_pem()).unwrap();
    std::fs::write(&public, pair.public_key_pem()).unwrap();
    (
        private.to_str().unwrap().to_string(),
        public.to_str().unwrap().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_jwt_from_one_member_is_accepted_by_every_member() {
    use ballast_proto::etcdserverpb::auth_client::AuthClient;
    use ballast_proto::etcdserverpb::kv_client::KvClient;
    use ballast_proto::etcdserverpb::{AuthenticateRequest, PutRequest};

    let dir = tempfile::tempdir().unwrap();
    let (private, public) = jwt_keys(dir.path(), "signing");
    let flag = format!("jwt,pub-key={public},priv-key={private},sign-method=ES256,ttl=5m");
    let cluster = TestCluster::start(
        &dir.path().join("cluster"),
        3,
        &["--auth-token", &flag, "--bcrypt-cost", "4"],
    );
    secure(Etcdctl::V35, &cluster.nodes[0].endpoint());

    let token = AuthClient::connect(cluster.nodes[0].url())
        .await
        .unwrap()
        .authenticate(AuthenticateRequest {
            name: "alice".into(),
            password: ALICE_PASSWORD.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .token;
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    let put = |token: &str| {
        let mut request = tonic::Request::new(PutRequest {
            key: b"r/jwt".to_vec().into(),
            value: b"v".to_vec().into(),
            ..Default::default()
        });
        request
            .metadata_mut()
            .insert("token", token.parse().unwrap());
        request
    };
    // Alice reads r/ only: the token names her on every member, so the write is denied
    // (not refused as unauthenticated) wherever it lands.
    for node in &cluster.nodes {
        let mut kv = KvClient::connect(node.url()).await.unwrap();
        let denied = kv.put(put(&token)).await.unwrap_err();
        assert_eq!(denied.code(), tonic::Code::PermissionDenied, "{denied:?}");
    }
    // etcdctl authenticates and reads with JWTs on another member.
    let alice = format!("alice:{ALICE_PASSWORD}");
    ok(Etcdctl::V35.run(
        &cluster.nodes[2].endpoint(),
        &["--user", &alice, "get", "r/x"],
    ));

    // A token whose signature is not the signing key's names nobody.
    let forged = {
        let header = token.split('.').next().unwrap();
        let claims = token.split('.').nth(1).unwrap();
        format!("{header}.{claims}.AAAA")
    };
    let mut kv = KvClient::connect(cluster.nodes[1].url()).await.unwrap();
    let refused = kv.put(put(&forged)).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");
    assert_eq!(refused.message(), "etcdserver: invalid auth token");
}
