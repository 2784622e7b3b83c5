//! TLS on both ports with certificates made here (rcgen): the client port refuses
//! clients without a certificate of its CA, names a tokenless request's user by its
//! certificate's CN, and serves a rotated certificate without a restart; the peer port of
//! a 3-member cluster lets in only certificates of the peer CA with the allowed CN.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use ballast_tests::{free_port, Etcdctl, Node, TestCluster, WAIT};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// A certificate authority.
struct Pki {
    cert: rcgen::Certificate,
    key: KeyPair,
}

/// A certificate's files and its DER.
struct Issued {
    cert: PathBuf,
    key: PathBuf,
    der: Vec<u8>,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).unwrap();
        Pki { cert, key }
    }

    fn write_ca(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(format!("{name}.crt"));
        std::fs::write(&path, self.cert.pem()).unwrap();
        path
    }

    /// A certificate for 127.0.0.1 and localhost with common name `cn`, usable by a
    /// server and a client, written as `<file>.crt` and `<file>.key` in `dir`.
    fn issue(&self, dir: &Path, file: &str, cn: &str) -> Issued {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        let issued = Issued {
            cert: dir.join(format!("{file}.crt")),
            key: dir.join(format!("{file}.key")),
            der: cert.der().to_vec(),
        };
        // Key first: a reader that sees the new certificate finds its key in place.
        std::fs::write(&issued.key, key.serialize_pem()).unwrap();
        std::fs::write(&issued.cert, cert.pem()).unwrap();
        issued
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// etcdctl 3.5 over TLS to `endpoint`, trusting `ca`, presenting `cert` if given.
fn tls_etcdctl(
    endpoint: &str,
    ca: &Path,
    cert: Option<&Issued>,
    args: &[&str],
) -> (bool, String, String) {
    let mut all = vec![
        format!("--cacert={}", path(ca)),
        "--dial-timeout=2s".into(),
        "--command-timeout=3s".into(),
    ];
    if let Some(cert) = cert {
        all.push(format!("--cert={}", path(&cert.cert)));
        all.push(format!("--key={}", path(&cert.key)));
    }
    all.extend(args.iter().map(|a| a.to_string()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    Etcdctl::V35.run(endpoint, &all)
}

/// A TLS connection to `port` trusting `ca`, presenting `client` if given. Returns the
/// server's certificate and the stream, or the handshake's error.
fn connect(
    port: u16,
    ca: &Pki,
    client: Option<&Issued>,
) -> Result<
    (
        Vec<u8>,
        rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>,
    ),
    String,
> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match client {
        Some(issued) => {
            let cert = CertificateDer::from(issued.der.clone());
            let key = std::fs::read(&issued.key).unwrap();
            let key = rustls::pki_types::pem::PemObject::from_pem_slice(&key).unwrap();
            let key: PrivateKeyDer = key;
            builder.with_client_auth_cert(vec![cert], key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    // An HTTP/2 preface: a server that accepted us answers with its SETTINGS.
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .map_err(|e| e.to_string())?;
    let mut first = [0u8; 9];
    stream.read_exact(&mut first).map_err(|e| e.to_string())?;
    let served = stream
        .conn
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|c| c.to_vec())
        .unwrap_or_default();
    Ok((served, stream))
}

#[test]
fn client_tls_refuses_strangers_names_users_by_cn_and_serves_a_rotated_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki_dir = dir.path().join("pki");
    std::fs::create_dir_all(&pki_dir).unwrap();
    let ca = Pki::new("client-ca");
    let stranger_ca = Pki::new("stranger-ca");
    let ca_file = ca.write_ca(&pki_dir, "ca");
    let server = ca.issue(&pki_dir, "server", "ballast");
    let root = ca.issue(&pki_dir, "root", "root");
    let alice = ca.issue(&pki_dir, "alice", "alice");
    let stranger = stranger_ca.issue(&pki_dir, "stranger", "root");

    let port = free_port();
    let https = format!("https://127.0.0.1:{port}");
    let node = Node::start_with(
        &dir.path().join("node"),
        &[
            "--listen-client-urls",
            &https,
            "--advertise-client-urls",
            &https,
            "--cert-file",
            path(&server.cert),
            "--key-file",
            path(&server.key),
            "--trusted-ca-file",
            path(&ca_file),
            "--client-cert-auth",
            "--bcrypt-cost",
            "4",
        ],
    );

    // A client of the CA gets in; none without a certificate or with another CA's.
    let ok = |r: (bool, String, String)| assert!(r.0, "{}\n{}", r.1, r.2);
    ok(tls_etcdctl(
        &https,
        &ca_file,
        Some(&root),
        &["put", "r/x", "1"],
    ));
    assert!(!tls_etcdctl(&https, &ca_file, None, &["get", "r/x"]).0);
    assert!(!tls_etcdctl(&https, &ca_file, Some(&stranger), &["get", "r/x"]).0);
    assert!(connect(port, &ca, Some(&stranger)).is_err());
    assert!(connect(port, &ca, None).is_err());

    // With auth on, a request without a token is the user its certificate names.
    for args in [
        &["user", "add", "root", "--no-password"][..],
        &["user", "grant-role", "root", "root"],
        &["role", "add", "reader"],
        &[
            "role",
            "grant-permission",
            "reader",
            "read",
            "--prefix=true",
            "r/",
        ],
        &["user", "add", "alice", "--no-password"],
        &["user", "grant-role", "alice", "reader"],
        &["auth", "enable"],
    ] {
        ok(tls_etcdctl(&https, &ca_file, Some(&root), args));
    }
    let read = tls_etcdctl(&https, &ca_file, Some(&alice), &["get", "r/x"]);
    assert_eq!(read.1, "r/x\n1\n", "{}", read.2);
    let write = tls_etcdctl(&https, &ca_file, Some(&alice), &["put", "r/x", "2"]);
    assert!(
        !write.0 && write.2.contains("permission denied"),
        "{write:?}"
    );
    ok(tls_etcdctl(
        &https,
        &ca_file,
        Some(&root),
        &["put", "r/x", "3"],
    ));
    // The plain URL beside it names nobody.
    let plain = Etcdctl::V35.run(&node.endpoint(), &["get", "r/x"]);
    assert!(plain.2.contains("user name is empty"), "{plain:?}");

    // A rotated certificate is served to new connections without a restart.
    let (served, _) = connect(port, &ca, Some(&root)).unwrap();
    assert_eq!(served, server.der);
    let rotated = ca.issue(&pki_dir, "server", "ballast-rotated");
    assert_ne!(rotated.der, server.der);
    let deadline = Instant::now() + WAIT;
    loop {
        let (served, _) = connect(port, &ca, Some(&root)).unwrap();
        if served == rotated.der {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the rotated certificate was never served"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    ok(tls_etcdctl(&https, &ca_file, Some(&alice), &["get", "r/x"]));
}

#[test]
fn peer_tls_lets_in_only_the_peer_ca_with_the_allowed_cn() {
    let dir = tempfile::tempdir().unwrap();
    let pki_dir = dir.path().join("pki");
    std::fs::create_dir_all(&pki_dir).unwrap();
    let ca = Pki::new("peer-ca");
    let stranger_ca = Pki::new("stranger-ca");
    let ca_file = ca.write_ca(&pki_dir, "peer-ca");
    let member = ca.issue(&pki_dir, "member", "member");
    let wrong_cn = ca.issue(&pki_dir, "intruder", "intruder");
    let stranger = stranger_ca.issue(&pki_dir, "stranger", "member");

    let cluster = TestCluster::start_scheme(
        &dir.path().join("cluster"),
        3,
        "https",
        &[
            "--peer-cert-file",
            path(&member.cert),
            "--peer-key-file",
            path(&member.key),
            "--peer-trusted-ca-file",
            path(&ca_file),
            "--peer-client-cert-auth",
            "--peer-cert-allowed-cn",
            "member",
        ],
    );
    // The members found each other over TLS: a write replicates.
    let ok = |r: (bool, String, String)| assert!(r.0, "{}\n{}", r.1, r.2);
    ok(Etcdctl::V35.run(&cluster.nodes[0].endpoint(), &["put", "k", "v"]));
    let deadline = Instant::now() + WAIT;
    while Etcdctl::V35
        .run(
            &cluster.nodes[2].endpoint(),
            &["get", "k", "--consistency=s"],
        )
        .1
        != "k\nv\n"
    {
        assert!(
            Instant::now() < deadline,
            "the write never reached member 2"
        );
    }

    let peer_port = cluster.nodes[1].peer_port;
    // Another CA's certificate does not get through the handshake; the peer CA's with
    // another CN is dropped after it; a member's certificate is served.
    assert!(connect(peer_port, &ca, Some(&stranger)).is_err());
    assert!(connect(peer_port, &ca, None).is_err());
    assert!(connect(peer_port, &ca, Some(&wrong_cn)).is_err());
    assert!(connect(peer_port, &ca, Some(&member)).is_ok());
    let log = cluster.nodes[1].log();
    assert!(
        log.contains("refused a peer certificate with another CN"),
        "{log}"
    );

    // A process holding another CA's certificate cannot take even a member slot the
    // cluster has made for it: its membership request does not get past the handshake.
    let endpoint = cluster.nodes[0].endpoint();
    let peer = ballast_tests::bind_port();
    let peer_url = format!("https://127.0.0.1:{}", ballast_tests::port_of(&peer));
    let added = Etcdctl::V35.run(
        &endpoint,
        &[
            "member",
            "add",
            "n3",
            "--learner",
            &format!("--peer-urls={peer_url}"),
        ],
    );
    ok(added.clone());
    let initial = added
        .1
        .lines()
        .find_map(|l| l.strip_prefix("ETCD_INITIAL_CLUSTER=\""))
        .map(|l| l.trim_end_matches('"').to_string())
        .expect("member add prints the initial cluster");
    let mut intruder = Node::new(
        &dir.path().join("intruder"),
        "n3",
        peer,
        Some(initial),
        &[
            "--peer-cert-file",
            path(&stranger.cert),
            "--peer-key-file",
            path(&stranger.key),
            // It trusts the cluster's CA, so only the cluster's refusal can stop it.
            "--peer-trusted-ca-file",
            path(&ca_file),
            "--peer-client-cert-auth",
        ],
    );
    intruder.cluster_state = "existing".into();
    intruder.peer_scheme = "https".into();
    intruder.spawn();
    let refused = intruder.wait_ready().expect_err("the intruder joined");
    assert!(refused.contains("cannot join"), "{refused}");
    let (_, members, _) = Etcdctl::V35.run(&endpoint, &["member", "list"]);
    let slot = members
        .lines()
        .find(|l| l.contains(&peer_url))
        .unwrap_or_else(|| panic!("no added member in {members}"));
    assert!(slot.contains("unstarted"), "{members}");
}
