//! The JSON gateway on the client port, driven by curl and by etcd3gw (OpenStack's
//! Python client of etcd's gateway): etcd's paths, the protobuf JSON mapping with etcd's
//! field names, its error bodies and HTTP codes, streamed watches, auth by header.

use std::process::{Command, Stdio};

use ballast_client::PutOptions;
use ballast_tests::{run_python, Etcdctl, Node, WAIT};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

/// POSTs `body` to `path`; returns the HTTP code and the parsed JSON answer.
fn post(node: &Node, path: &str, body: &str, token: Option<&str>) -> (u16, Value) {
    let mut command = Command::new("curl");
    command.args(["-s", "-X", "POST", "-w", "\n%{http_code}", "-d", body]);
    if let Some(token) = token {
        command.args(["-H", &format!("Authorization: {token}")]);
    }
    let output = command
        .arg(format!("{}{path}", node.url()))
        .output()
        .expect("run curl");
    let text = String::from_utf8(output.stdout).unwrap();
    let (json, code) = text.rsplit_once('\n').expect("curl printed the code");
    let value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{path}: {e}: {json}"));
    (code.parse().unwrap(), value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_speaks_etcds_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("n"));

    // "foo" is Zm9v, "bar" YmFy: bytes in base64, 64-bit integers as strings.
    let (code, put) = post(
        &node,
        "/v3/kv/put",
        r#"{"key":"Zm9v","value":"YmFy"}"#,
        None,
    );
    assert_eq!(code, 200);
    assert_eq!(put["header"]["revision"], "2");
    assert!(put["header"]["cluster_id"].is_string());
    let (_, range) = post(&node, "/v3/kv/range", r#"{"key":"Zm9v","bogus":1}"#, None);
    assert_eq!(range["count"], "1", "unknown fields are ignored: {range}");
    assert_eq!(range["kvs"][0]["value"], "YmFy");
    assert_eq!(range["kvs"][0]["create_revision"], "2");
    assert!(
        range["kvs"][0].get("lease").is_none(),
        "defaults are left out"
    );

    let (_, txn) = post(
        &node,
        "/v3/kv/txn",
        r#"{"compare":[{"key":"Zm9v","result":"EQUAL","target":"VALUE","value":"YmFy"}],
            "success":[{"request_put":{"key":"Zm9v","value":"YmF6"}}]}"#,
        None,
    );
    assert_eq!(txn["succeeded"], true);
    assert_eq!(
        txn["responses"][0]["response_put"]["header"]["revision"],
        "3"
    );

    // etcd's error bodies and HTTP codes.
    let (code, future) = post(
        &node,
        "/v3/kv/range",
        r#"{"key":"Zm9v","revision":100}"#,
        None,
    );
    assert_eq!(code, 400);
    let text = "etcdserver: mvcc: required revision is a future revision";
    assert_eq!(future["error"], text);
    assert_eq!(future["message"], text);
    assert_eq!(future["code"], 11);
    let (code, garbage) = post(&node, "/v3/kv/put", "garbage", None);
    assert_eq!((code, garbage["code"].clone()), (400, Value::from(3)));
    let (code, missing) = post(&node, "/v3/lease/revoke", r#"{"ID":"12345"}"#, None);
    assert_eq!(code, 404);
    assert_eq!(missing["error"], "etcdserver: requested lease not found");

    // Field names as etcd's .proto spells them.
    let (_, status) = post(&node, "/v3/maintenance/status", "{}", None);
    assert!(
        status["dbSize"].is_string() && status["raftIndex"].is_string(),
        "{status}"
    );
    let (_, lease) = post(&node, "/v3/lease/grant", r#"{"TTL":30}"#, None);
    assert_eq!(lease["TTL"], "30");
    let (_, members) = post(&node, "/v3/cluster/member/list", "{}", None);
    assert_eq!(members["members"][0]["clientURLs"][0], node.url());

    // A watch streams one JSON object per line.
    let mut watch = tokio::process::Command::new("curl")
        .args([
            "-s",
            "-N",
            "-X",
            "POST",
            "-d",
            r#"{"create_request":{"key":"Zm9v"}}"#,
        ])
        .arg(format!("{}/v3/watch", node.url()))
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    let mut next = async || -> Value {
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("a line in time")
            .unwrap()
            .expect("the stream is open");
        serde_json::from_str(&line).unwrap()
    };
    assert_eq!(next().await["result"]["created"], true);
    let client = node.client().await;
    client.put("foo", "again", PutOptions::new()).await.unwrap();
    let event = next().await;
    assert_eq!(event["result"]["events"][0]["kv"]["value"], "YWdhaW4=");

    // Auth: the token from /v3/auth/authenticate goes in the Authorization header.
    let endpoint = node.endpoint();
    for args in [
        &["user", "add", "root:rootpw"][..],
        &["user", "grant-role", "root", "root"],
        &["auth", "enable"],
    ] {
        let (ok, _, stderr) = Etcdctl::V35.run(&endpoint, args);
        assert!(ok, "{args:?}: {stderr}");
    }
    let (code, denied) = post(
        &node,
        "/v3/kv/put",
        r#"{"key":"Zm9v","value":"eA=="}"#,
        None,
    );
    assert_eq!(code, 400);
    assert_eq!(denied["error"], "etcdserver: user name is empty");
    let (_, token) = post(
        &node,
        "/v3/auth/authenticate",
        r#"{"name":"root","password":"rootpw"}"#,
        None,
    );
    let token = token["token"].as_str().expect("a token");
    let (code, put) = post(
        &node,
        "/v3/kv/put",
        r#"{"key":"Zm9v","value":"eA=="}"#,
        Some(token),
    );
    assert_eq!(code, 200, "{put}");
}

#[test]
fn etcd3gw_works_against_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("n"));
    let port = node.port.to_string();
    let (ok, stdout, stderr) = run_python("etcd3gw_client.py", &["127.0.0.1", &port]);
    assert!(ok, "etcd3gw failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("ok nothing left"), "{stdout}");
}
