//! ballast-client's Auth calls, token renewal and TLS with a client certificate, against
//! Ballast (client_etcd.rs holds the same client to etcd).

use std::time::Duration;

use ballast_client::{
    Client, Code, ConnectOptions, Error, GetOptions, Permission, PermissionKind, PutOptions,
    TlsOptions,
};
use ballast_tests::{free_port, Node};

fn expect_refusal<T: std::fmt::Debug>(result: Result<T, Error>, code: Code, message: &str) {
    let err = result.expect_err("refused");
    assert_eq!(err.code(), Some(code), "{err}");
    assert_eq!(err.message(), Some(message), "{err}");
}

async fn connect(endpoint: &str, options: ConnectOptions) -> Result<Client, Error> {
    Client::connect([endpoint], options).await
}

#[tokio::test(flavor = "multi_thread")]
async fn every_auth_call_and_token_renewal() {
    let dir = tempfile::tempdir().unwrap();
    // Tokens live one second, so the client has to renew them.
    let node = Node::start_with(dir.path(), &["--auth-token-ttl", "1", "--bcrypt-cost", "4"]);
    let admin = connect(&node.url(), ConnectOptions::default())
        .await
        .unwrap();
    admin.user_add("root", "rootpw").await.unwrap();
    admin.user_grant_role("root", "root").await.unwrap();
    admin.role_add("reader").await.unwrap();
    let readable = Permission::prefix(PermissionKind::Read, "pub/");
    admin
        .role_grant_permission("reader", readable.clone())
        .await
        .unwrap();
    admin.user_add("alice", "alicepw").await.unwrap();
    admin.user_grant_role("alice", "reader").await.unwrap();
    assert_eq!(admin.user_get("alice").await.unwrap(), ["reader"]);
    assert_eq!(admin.user_list().await.unwrap(), ["alice", "root"]);
    assert_eq!(
        admin.role_get("reader").await.unwrap().permissions,
        [readable]
    );
    let (enabled, before) = admin.auth_status().await.unwrap();
    assert!(!enabled);
    admin.auth_enable().await.unwrap();
    let (enabled, after) = admin.auth_status().await.unwrap();
    assert!(enabled && after > before);

    expect_refusal(
        admin.get("pub/x", GetOptions::new()).await,
        Code::InvalidArgument,
        "etcdserver: user name is empty",
    );
    let root = connect(
        &node.url(),
        ConnectOptions::default().with_user("root", "rootpw"),
    )
    .await
    .unwrap();
    root.put("pub/x", "1", PutOptions::new()).await.unwrap();
    let alice = connect(
        &node.url(),
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
    expect_refusal(
        connect(
            &node.url(),
            ConnectOptions::default().with_user("alice", "nope"),
        )
        .await,
        Code::InvalidArgument,
        "etcdserver: authentication failed, invalid user ID or password",
    );

    // Past the token TTL the client renews its token and carries on; so it does after an
    // auth change makes its checks stale.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        alice
            .get("pub/x", GetOptions::new())
            .await
            .unwrap()
            .kvs
            .len(),
        1
    );
    root.role_add("other").await.unwrap();
    assert_eq!(
        alice
            .get("pub/x", GetOptions::new())
            .await
            .unwrap()
            .kvs
            .len(),
        1
    );

    root.user_revoke_role("alice", "reader").await.unwrap();
    root.role_revoke_permission("reader", "pub/", "pub0")
        .await
        .unwrap();
    root.user_change_password("alice", "newpw").await.unwrap();
    root.user_delete("alice").await.unwrap();
    root.role_delete("reader").await.unwrap();
    assert_eq!(root.role_list().await.unwrap(), ["other"]);
    root.auth_disable().await.unwrap();
    assert_eq!(
        admin
            .get("pub/x", GetOptions::new())
            .await
            .unwrap()
            .kvs
            .len(),
        1
    );
}

/// A CA and one certificate signed by it for 127.0.0.1 with common name `cn`:
/// (CA PEM, certificate PEM, key PEM).
fn pki(cn: &str) -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "client-test-ca");
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    leaf.distinguished_name.push(DnType::CommonName, cn);
    let leaf = leaf.signed_by(&key, &ca, &ca_key).unwrap();
    (ca.pem(), leaf.pem(), key.serialize_pem())
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_with_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = pki("root");
    let files = dir.path().join("pki");
    std::fs::create_dir_all(&files).unwrap();
    for (name, pem) in [("ca.crt", &ca), ("root.crt", &cert), ("root.key", &key)] {
        std::fs::write(files.join(name), pem).unwrap();
    }
    let file = |name: &str| files.join(name).to_str().unwrap().to_string();
    let https = format!("https://127.0.0.1:{}", free_port());
    let _node = Node::start_with(
        &dir.path().join("node"),
        &[
            "--listen-client-urls",
            &https,
            "--advertise-client-urls",
            &https,
            "--cert-file",
            &file("root.crt"),
            "--key-file",
            &file("root.key"),
            "--trusted-ca-file",
            &file("ca.crt"),
            "--client-cert-auth",
        ],
    );
    let tls = |identity| TlsOptions {
        ca_pem: Some(ca.clone().into_bytes()),
        identity,
        domain: None,
    };
    let endpoint = https.trim_start_matches("https://");
    let client = connect(
        endpoint,
        ConnectOptions::default().with_tls(tls(Some((
            cert.clone().into_bytes(),
            key.clone().into_bytes(),
        )))),
    )
    .await
    .unwrap();
    client
        .put("secure", "yes", PutOptions::new())
        .await
        .unwrap();
    // With auth on, the certificate's CN (root) is the user of a call without a token.
    client.user_add_no_password("root").await.unwrap();
    client.user_grant_role("root", "root").await.unwrap();
    client.auth_enable().await.unwrap();
    assert!(client.auth_status().await.unwrap().0);
    assert_eq!(
        client.get("secure", GetOptions::new()).await.unwrap().kvs[0]
            .value_str()
            .unwrap(),
        "yes"
    );
    // Without a client certificate the server refuses the connection.
    let anonymous = connect(endpoint, ConnectOptions::default().with_tls(tls(None))).await;
    let refused = match anonymous {
        Err(_) => true,
        Ok(client) => client.get("secure", GetOptions::new()).await.is_err(),
    };
    assert!(refused, "a client without a certificate was served");
}
