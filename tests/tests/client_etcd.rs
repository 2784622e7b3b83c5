//! ballast-client against a real etcd 3.4 (Debian's etcd-server): the client's auth,
//! maintenance, membership and TLS calls are held to the reference server (auth and TLS
//! also to Ballast, in client_auth.rs); and a scripted session must get the same answers
//! from Ballast as from etcd.

use std::time::Duration;

use ballast_client::{
    Client, Code, Compare, CompareOp, ConnectOptions, DeleteOptions, Error, GetOptions, Permission,
    PermissionKind, PutOptions, SortOrder, SortTarget, TlsOptions, Txn, TxnOp,
};
use ballast_tests::{free_port, Etcd, Node};
use futures::StreamExt;

async fn connect(endpoint: &str) -> Client {
    Client::connect([endpoint], ConnectOptions::default())
        .await
        .unwrap()
}

fn expect_refusal<T: std::fmt::Debug>(result: Result<T, Error>, code: Code, message: &str) {
    let err = result.expect_err("refused");
    assert_eq!(err.code(), Some(code), "{err}");
    assert_eq!(err.message(), Some(message), "{err}");
}

/// A session of KV calls, recorded with everything but the member-specific header
/// fields, so two servers can be compared answer by answer.
async fn kv_session(client: &Client) -> Vec<String> {
    let mut log = Vec::new();
    let mut record = |entry: String| {
        // Cluster and member ids differ between servers by design.
        let normalized = regex_free_strip(&entry);
        log.push(normalized);
    };
    record(format!(
        "{:?}",
        client
            .put("a", "1", PutOptions::new())
            .await
            .map(|r| (r.header.revision, r.prev_kv))
    ));
    record(format!(
        "{:?}",
        client
            .put("a", "2", PutOptions::new().with_prev_kv())
            .await
            .map(|r| (r.header.revision, r.prev_kv))
    ));
    for k in ["b", "c", "a/x", "a/y"] {
        record(format!(
            "{:?}",
            client
                .put(k, k, PutOptions::new())
                .await
                .map(|r| r.header.revision)
        ));
    }
    let get = |opts: GetOptions, key: &'static str| {
        let client = client.clone();
        async move {
            client
                .get(key, opts)
                .await
                .map(|r| (r.header.revision, r.kvs, r.more, r.count))
        }
    };
    record(format!("{:?}", get(GetOptions::new(), "a").await));
    record(format!(
        "{:?}",
        get(GetOptions::new().with_prefix(), "a").await
    ));
    record(format!(
        "{:?}",
        get(GetOptions::new().with_all_keys().with_limit(2), "").await
    ));
    record(format!(
        "{:?}",
        get(
            GetOptions::new()
                .with_all_keys()
                .with_sort(SortTarget::Value, SortOrder::Descend),
            ""
        )
        .await
    ));
    record(format!(
        "{:?}",
        get(GetOptions::new().with_from_key().with_keys_only(), "b").await
    ));
    record(format!(
        "{:?}",
        get(GetOptions::new().with_all_keys().with_count_only(), "").await
    ));
    record(format!(
        "{:?}",
        get(GetOptions::new().with_revision(2), "a").await
    ));
    record(format!(
        "{:?}",
        get(
            GetOptions::new()
                .with_all_keys()
                .with_min_mod_revision(4)
                .with_max_create_revision(6),
            ""
        )
        .await
    ));
    let txn = Txn::new()
        .when([
            Compare::value("a", CompareOp::Equal, "2"),
            Compare::version("b", CompareOp::Greater, 0),
        ])
        .and_then([
            TxnOp::put("t", "1", PutOptions::new()),
            TxnOp::delete("c", DeleteOptions::new().with_prev_kv()),
            TxnOp::get("", GetOptions::new().with_all_keys().with_keys_only()),
        ])
        .or_else([TxnOp::get("a", GetOptions::new())]);
    record(format!(
        "{:?}",
        client
            .txn(txn)
            .await
            .map(|r| (r.header.revision, r.succeeded, r.responses))
    ));
    let failing = Txn::new()
        .when([Compare::mod_revision("a", CompareOp::Less, 1)])
        .and_then([TxnOp::put("never", "1", PutOptions::new())])
        .or_else([TxnOp::get("a", GetOptions::new())]);
    record(format!(
        "{:?}",
        client
            .txn(failing)
            .await
            .map(|r| (r.header.revision, r.succeeded, r.responses))
    ));
    record(format!(
        "{:?}",
        client
            .delete("a", DeleteOptions::new().with_prefix().with_prev_kv())
            .await
            .map(|r| (r.header.revision, r.deleted, r.prev_kvs))
    ));
    record(format!(
        "{:?}",
        client
            .delete("zzz", DeleteOptions::new())
            .await
            .map(|r| (r.header.revision, r.deleted))
    ));
    record(format!(
        "{:?}",
        client.compact(5, true).await.map(|h| h.revision)
    ));
    record(format!(
        "{:?}",
        get(GetOptions::new().with_revision(4), "b").await
    ));
    record(format!(
        "{:?}",
        get(GetOptions::new().with_revision(99), "b").await
    ));
    record(format!(
        "{:?}",
        client.compact(5, false).await.map(|h| h.revision)
    ));
    record(format!(
        "{:?}",
        client
            .put("", "x", PutOptions::new())
            .await
            .map(|r| r.header.revision)
    ));
    record(format!(
        "{:?}",
        client
            .put("b", "x", PutOptions::new().with_lease(4242))
            .await
            .map(|r| r.header.revision)
    ));
    record(format!(
        "{:?}",
        client
            .put("nope", "", PutOptions::new().with_ignore_value())
            .await
            .map(|r| r.header.revision)
    ));
    let dup = Txn::new().and_then([
        TxnOp::put("d", "1", PutOptions::new()),
        TxnOp::put("d", "2", PutOptions::new()),
    ]);
    record(format!("{:?}", client.txn(dup).await.map(|r| r.succeeded)));
    log
}

/// Drops the `cluster_id`/`member_id`/`raft_term` values from a Debug rendering.
fn regex_free_strip(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = ["cluster_id: ", "member_id: ", "raft_term: "]
        .iter()
        .filter_map(|field| rest.find(field).map(|i| (i, field.len())))
        .min()
    {
        let (index, len) = at;
        out.push_str(&rest[..index + len]);
        rest = &rest[index + len..];
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        out.push('_');
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}

#[tokio::test]
async fn ballast_answers_a_kv_session_exactly_as_etcd_does() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = Etcd::start(&dir.path().join("etcd"));
    let node = Node::start(&dir.path().join("ballast"));
    let expected = kv_session(&connect(&etcd.endpoint()).await).await;
    let got = kv_session(&connect(&node.endpoint()).await).await;
    assert_eq!(expected.len(), got.len());
    for (step, (want, have)) in expected.iter().zip(&got).enumerate() {
        assert_eq!(have, want, "step {step} differs from etcd");
    }
}

#[tokio::test]
async fn auth_users_roles_permissions_and_token_renewal() {
    let dir = tempfile::tempdir().unwrap();
    // Tokens live one second, so the client has to renew them.
    let etcd = Etcd::start_with(&dir.path().join("etcd"), &["--auth-token-ttl", "1"], false);
    let admin = connect(&etcd.endpoint()).await;
    admin.user_add("root", "rootpw").await.unwrap();
    admin.role_add("root").await.unwrap();
    admin.user_grant_role("root", "root").await.unwrap();
    admin.role_add("reader").await.unwrap();
    admin
        .role_grant_permission("reader", Permission::prefix(PermissionKind::Read, "pub/"))
        .await
        .unwrap();
    admin.user_add("alice", "alicepw").await.unwrap();
    admin.user_grant_role("alice", "reader").await.unwrap();
    assert_eq!(admin.user_get("alice").await.unwrap(), ["reader"]);
    let mut users = admin.user_list().await.unwrap();
    users.sort();
    assert_eq!(users, ["alice", "root"]);
    let role = admin.role_get("reader").await.unwrap();
    assert_eq!(
        role.permissions,
        [Permission::prefix(PermissionKind::Read, "pub/")]
    );
    admin.auth_enable().await.unwrap();

    expect_refusal(
        admin.get("pub/x", GetOptions::new()).await,
        Code::InvalidArgument,
        "etcdserver: user name is empty",
    );
    let root = Client::connect(
        [etcd.endpoint()],
        ConnectOptions::default().with_user("root", "rootpw"),
    )
    .await
    .unwrap();
    root.put("pub/x", "1", PutOptions::new()).await.unwrap();
    let alice = Client::connect(
        [etcd.endpoint()],
        ConnectOptions::default().with_user("alice", "alicepw"),
    )
    .await
    .unwrap();
    assert_eq!(
        alice
            .get("pub/x", GetOptions::new())
            .await
            .unwrap()
            .kvs
            .len(),
        1
    );
    expect_refusal(
        alice.put("pub/x", "2", PutOptions::new()).await,
        Code::PermissionDenied,
        "etcdserver: permission denied",
    );
    let wrong = Client::connect(
        [etcd.endpoint()],
        ConnectOptions::default().with_user("alice", "nope"),
    )
    .await;
    expect_refusal(
        wrong,
        Code::InvalidArgument,
        "etcdserver: authentication failed, invalid user ID or password",
    );

    // Past the token TTL the client renews its token and carries on.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        alice
            .get("pub/x", GetOptions::new())
            .await
            .unwrap()
            .kvs
            .len(),
        1
    );
    root.put("pub/y", "1", PutOptions::new()).await.unwrap();

    root.user_revoke_role("alice", "reader").await.unwrap();
    root.role_revoke_permission("reader", "pub/", "pub0")
        .await
        .unwrap();
    root.user_change_password("alice", "newpw").await.unwrap();
    root.user_delete("alice").await.unwrap();
    root.role_delete("reader").await.unwrap();
    assert_eq!(root.role_list().await.unwrap(), ["root"]);
    // AuthStatus arrived in etcd 3.5; 3.4 does not know it.
    let status = root.auth_status().await.unwrap_err();
    assert_eq!(status.code(), Some(Code::Unimplemented));
    root.auth_disable().await.unwrap();
    assert_eq!(
        admin
            .get("pub/x", GetOptions::new())
            .await
            .unwrap()
            .kvs
            .len(),
        1,
        "open again"
    );
}

#[tokio::test]
async fn maintenance_calls() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = Etcd::start(&dir.path().join("etcd"));
    let client = connect(&etcd.endpoint()).await;
    client.put("k", "v", PutOptions::new()).await.unwrap();
    let status = client.status().await.unwrap();
    assert!(status.version.starts_with("3.4"), "{status:?}");
    assert_eq!(status.leader, status.header.member_id);
    assert!(client.alarms().await.unwrap().is_empty());
    client.defragment().await.unwrap();
    assert_ne!(client.hash().await.unwrap(), 0);
    let hash = client.hash_kv(0).await.unwrap();
    assert_eq!(hash.header.revision, 2);
    assert_eq!(hash, client.hash_kv(0).await.unwrap(), "hashing is stable");
    expect_refusal(
        client.move_leader(12345).await,
        Code::FailedPrecondition,
        "etcdserver: bad leader transferee",
    );

    // The snapshot stream: a bbolt file followed by its SHA-256.
    let mut stream = client.snapshot().await.unwrap();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk.unwrap());
    }
    assert!(bytes.len() > 32);
    let (body, digest) = bytes.split_at(bytes.len() - 32);
    let file = dir.path().join("snapshot.body");
    std::fs::write(&file, body).unwrap();
    let out = std::process::Command::new("sha256sum")
        .arg(&file)
        .output()
        .unwrap();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with(&hex),
        "the trailer is the body's SHA-256"
    );
}

#[tokio::test]
async fn membership_changes() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = Etcd::start(&dir.path().join("etcd"));
    let client = connect(&etcd.endpoint()).await;
    // A learner does not count for quorum, so the single member keeps serving.
    let url = format!("http://127.0.0.1:{}", free_port());
    let learner = client.member_add(vec![url.clone()], true).await.unwrap();
    assert!(learner.is_learner);
    assert_eq!(learner.peer_urls, [url]);
    assert_eq!(client.member_list().await.unwrap().len(), 2);
    let moved = format!("http://127.0.0.1:{}", free_port());
    let members = client
        .member_update(learner.id, vec![moved.clone()])
        .await
        .unwrap();
    assert!(members
        .iter()
        .any(|m| m.id == learner.id && m.peer_urls == [moved.clone()]));
    let refused = client.member_promote(learner.id).await.unwrap_err();
    assert_eq!(refused.code(), Some(Code::FailedPrecondition), "{refused}");
    let left = client.member_remove(learner.id).await.unwrap();
    assert_eq!(left.len(), 1);
    expect_refusal(
        client.member_remove(learner.id).await,
        Code::NotFound,
        "etcdserver: member not found",
    );
}

#[tokio::test]
async fn tls() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path();
    let openssl = |args: &[&str]| {
        let status = std::process::Command::new("openssl")
            .args(args)
            .current_dir(certs)
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "openssl {args:?}");
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=ballast-test-ca",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(
        certs.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "1",
        "-extfile",
        "ext.cnf",
    ]);
    let cert = certs.join("server.pem");
    let key = certs.join("server.key");
    let etcd = Etcd::start_with(
        &dir.path().join("etcd"),
        &[
            "--cert-file",
            cert.to_str().unwrap(),
            "--key-file",
            key.to_str().unwrap(),
        ],
        true,
    );
    let tls = TlsOptions {
        ca_pem: Some(std::fs::read(certs.join("ca.pem")).unwrap()),
        identity: None,
        domain: Some("localhost".into()),
    };
    let client = Client::connect([etcd.endpoint()], ConnectOptions::default().with_tls(tls))
        .await
        .unwrap();
    client
        .put("secure", "yes", PutOptions::new())
        .await
        .unwrap();
    assert_eq!(
        client.get("secure", GetOptions::new()).await.unwrap().kvs[0]
            .value_str()
            .unwrap(),
        "yes"
    );
    // Without the CA the server's certificate is not trusted.
    let untrusted = Client::connect(
        [etcd.endpoint()],
        ConnectOptions::default().with_tls(TlsOptions::default()),
    )
    .await;
    assert!(untrusted.is_err());
}

#[tokio::test]
async fn watches_against_etcd() {
    // etcd sends a watch stream's response headers only with its first answer, so the
    // client must send its first create before waiting on the call.
    let dir = tempfile::tempdir().unwrap();
    let etcd = Etcd::start(&dir.path().join("etcd"));
    let client = connect(&etcd.endpoint()).await;
    let (watcher, mut stream) = client
        .watch(
            "w/",
            ballast_client::WatchOptions::new()
                .with_prefix()
                .with_prev_kv(),
        )
        .await
        .unwrap();
    assert_eq!(watcher.header().revision, 1);
    client.put("w/a", "1", PutOptions::new()).await.unwrap();
    client.put("w/a", "2", PutOptions::new()).await.unwrap();
    let mut events = Vec::new();
    while events.len() < 2 {
        let response = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        events.extend(response.events);
    }
    assert_eq!(
        events[1].prev_kv.as_ref().unwrap().value_str().unwrap(),
        "1"
    );
    let (_second, mut more) = client
        .watch(
            "w/a",
            ballast_client::WatchOptions::new().with_start_revision(2),
        )
        .await
        .unwrap();
    let replayed = tokio::time::timeout(Duration::from_secs(10), more.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(replayed.events[0].kv.mod_revision, 2);
}

#[tokio::test]
async fn keep_alive_and_lock_against_etcd() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = Etcd::start(&dir.path().join("etcd"));
    let client = connect(&etcd.endpoint()).await;
    let lease = client.lease_grant(2, 0).await.unwrap();
    client
        .put("held", "x", PutOptions::new().with_lease(lease.id))
        .await
        .unwrap();
    let keep = client.lease_keep_alive(lease.id).await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(keep.state(), ballast_client::LeaseState::Alive(2));
    assert_eq!(
        client
            .get("held", GetOptions::new())
            .await
            .unwrap()
            .kvs
            .len(),
        1
    );
    let session = ballast_client::Session::new(&client, 10).await.unwrap();
    let mut lock = ballast_client::Mutex::new(&session, "etcd-lock");
    lock.lock().await.unwrap();
    assert!(lock.key().starts_with(b"etcd-lock/"));
    lock.unlock().await.unwrap();
    session.close().await.unwrap();
}
