//! The node as a process: flags, environment, HTTP endpoints, graceful shutdown.

use std::process::Command;
use std::time::Duration;

use ballast_client::{GetOptions, PutOptions};
use ballast_proto::etcdserverpb::watch_client::WatchClient;
use ballast_proto::etcdserverpb::watch_request::RequestUnion;
use ballast_proto::etcdserverpb::{WatchCreateRequest, WatchRequest};
use ballast_tests::{ballast_binary, Node};
use tokio_stream::StreamExt as _;

async fn http_get(node: &Node, path: &str) -> String {
    ballast_tests::http_get(node.address(), path).await
}

#[tokio::test]
async fn health_and_version_over_http_on_the_client_port() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("n"));
    let health = http_get(&node, "/health").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(
        health.ends_with(r#"{"health":"true","reason":""}"#),
        "{health}"
    );
    let version = http_get(&node, "/version").await;
    assert!(version.contains(r#""etcdserver":"3.5."#), "{version}");
    assert!(version.contains(r#""etcdcluster":"3.5.0""#), "{version}");
    let missing = http_get(&node, "/nothing-here").await;
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
}

// Multi-threaded: the test blocks one thread waiting for the process while the client's
// connection keeps running on another, as a real client's would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_answers_closes_streams_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(&dir.path().join("n"));
    let client = node.client().await;
    client.put("k", "v", PutOptions::new()).await.unwrap();
    // A raw watch stream (ballast-client would resume it elsewhere): the server must end it.
    let mut raw = WatchClient::connect(node.url()).await.unwrap();
    let create = WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: "k".into(),
            ..Default::default()
        })),
    };
    let mut stream = raw
        .watch(tokio_stream::iter([create]).chain(tokio_stream::pending()))
        .await
        .unwrap()
        .into_inner();
    assert!(stream.message().await.unwrap().unwrap().created);
    let status = node.terminate();
    assert!(status.success(), "exit status {status}: {}", node.log());
    let log = node.log();
    assert!(
        log.contains("received SIGTERM") && log.contains("stopped"),
        "{log}"
    );
    let end = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("the watch stream ends with the server");
    assert!(
        !matches!(end, Ok(Some(_))),
        "no more events after shutdown: {end:?}"
    );

    node.restart();
    let client = node.client().await;
    assert_eq!(
        client.get("k", GetOptions::new()).await.unwrap().kvs[0]
            .value_str()
            .unwrap(),
        "v"
    );
}

#[test]
fn unknown_flags_are_refused() {
    let out = Command::new(ballast_binary())
        .arg("--no-such-flag")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--no-such-flag"), "{stderr}");
    // Checked before binding: the client port being taken does not hide the mistake.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", taken.local_addr().unwrap());
    let out = Command::new(ballast_binary())
        .args(["--election-timeout", "100", "--listen-client-urls", &url])
        .args(["--advertise-client-urls", &url, "--data-dir"])
        .arg(tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--election-timeout"), "{stderr}");
}

#[tokio::test]
async fn etcd_environment_variables_configure_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n");
    let mut node = Node::start(&path);
    node.terminate();
    std::fs::remove_dir_all(&path).unwrap();
    node.env = vec![("ETCD_MAX_TXN_OPS".into(), "1".into())];
    node.restart();
    let client = node.client().await;
    let txn = ballast_client::Txn::new().and_then([
        ballast_client::TxnOp::put("a", "1", PutOptions::new()),
        ballast_client::TxnOp::put("b", "1", PutOptions::new()),
    ]);
    let err = client.txn(txn).await.unwrap_err();
    assert_eq!(
        err.message(),
        Some("etcdserver: too many operations in txn request")
    );
}
