//! ballast-apiserver's HTTP semantics beyond what kubectl exercises, checked with curl:
//! aggregated discovery's content type, watch options (initial events, bookmarks,
//! selectors entering and leaving), list rules, subresources, dry runs and collections.

use ballast_tests::{ApiServer, Node};
use serde_json::{json, Value};

/// The ConfigMap every namespace gets (the cluster's CA).
const ROOT_CA: &str = "kube-root-ca.crt";

/// A node and an API server, once `default` has its root CA ConfigMap (so the
/// namespace's ConfigMaps are the test's and that one).
fn start(dir: &std::path::Path) -> (Node, ApiServer) {
    let node = Node::start(&dir.join("node"));
    let api = ApiServer::start(&dir.join("api"), &[node.url()], &[]);
    let deadline = std::time::Instant::now() + ballast_tests::WAIT;
    while api.curl("GET", &format!("{CM}/{ROOT_CA}"), &[], None).0 != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "no {ROOT_CA} in default"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    (node, api)
}

fn parse(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn events(body: &str) -> Vec<Value> {
    body.lines().filter(|l| !l.is_empty()).map(parse).collect()
}

const CM: &str = "/api/v1/namespaces/default/configmaps";

fn create(api: &ApiServer, name: &str, labels: Value) -> Value {
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}});
    let (status, _, out) = api.curl(
        "POST",
        CM,
        &[],
        Some(("application/json", &body.to_string())),
    );
    assert_eq!(status, 201, "{out}");
    parse(&out)
}

#[test]
fn aggregated_discovery_answers_with_the_content_type_kubectl_checks() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, api) = start(dir.path());
    let accept = "Accept: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";
    let (status, head, body) = api.curl("GET", "/apis", &[accept], None);
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase().contains(
            "content-type: application/json;g=apidiscovery.k8s.io;v=v2;as=apigroupdiscoverylist"
        ),
        "{head}"
    );
    let list = parse(&body);
    assert_eq!(list["kind"], "APIGroupDiscoveryList");
    let apps = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["metadata"]["name"] == "apps")
        .unwrap();
    let deployments = apps["versions"][0]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource"] == "deployments")
        .unwrap();
    assert_eq!(
        deployments["subresources"][1]["responseKind"]["kind"],
        "Scale"
    );
    // Without that Accept, the legacy list.
    let (_, _, body) = api.curl("GET", "/apis", &["Accept: application/json"], None);
    assert_eq!(parse(&body)["kind"], "APIGroupList");
    let (_, _, body) = api.curl("GET", "/apis/batch/v1", &[], None);
    assert_eq!(parse(&body)["groupVersion"], "batch/v1");
    let (status, _, body) = api.curl("GET", "/apis/nothing/v1", &[], None);
    assert_eq!(
        (status, parse(&body)["reason"].clone()),
        (404, json!("NotFound"))
    );
}

#[test]
fn watches_send_initial_events_bookmarks_and_selection_changes() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, api) = start(dir.path());
    create(&api, "a", json!({"team": "x"}));
    create(&api, "b", json!({"team": "y"}));
    // sendInitialEvents: the current objects, then the initial-events-end bookmark.
    let (status, _, body) = api.curl(
        "GET",
        &format!("{CM}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1"),
        &[],
        None,
    );
    assert_eq!(status, 200);
    let got = events(&body);
    let names: Vec<(&str, &str)> = got
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap(),
                e["object"]["metadata"]["name"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        names[..3],
        [("ADDED", "a"), ("ADDED", "b"), ("ADDED", ROOT_CA)]
    );
    let bookmark = &got[3];
    assert_eq!(bookmark["type"], "BOOKMARK");
    assert_eq!(
        bookmark["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );

    // From a resourceVersion with a label selector: an object that stops matching is
    // DELETED for this watcher, one that starts matching ADDED.
    let (_, _, list) = api.curl("GET", CM, &[], None);
    let rv = parse(&list)["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let patch = |name: &str, team: &str| {
        let body = json!({"metadata": {"labels": {"team": team}}}).to_string();
        let (status, _, out) = api.curl(
            "PATCH",
            &format!("{CM}/{name}"),
            &[],
            Some(("application/merge-patch+json", &body)),
        );
        assert_eq!(status, 200, "{out}");
    };
    patch("a", "y");
    patch("b", "x");
    let (_, _, body) = api.curl(
        "GET",
        &format!("{CM}?watch=true&resourceVersion={rv}&labelSelector=team%3Dx&timeoutSeconds=1"),
        &[],
        None,
    );
    let seen: Vec<(String, String, String)> = events(&body)
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_string(),
                e["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                e["object"]["metadata"]["labels"]["team"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("DELETED".to_string(), "a".to_string(), "x".to_string()),
            ("ADDED".to_string(), "b".to_string(), "x".to_string()),
        ],
        "a leaves as it was, b enters"
    );

    // A resourceVersion older than the cache's history: 200 and one ERROR event, 410.
    let (status, _, body) = api.curl(
        "GET",
        &format!("{CM}?watch=true&resourceVersion=1"),
        &[],
        None,
    );
    assert_eq!(status, 200);
    let error = &events(&body)[0];
    assert_eq!(error["type"], "ERROR");
    assert_eq!(error["object"]["code"], 410);
    assert_eq!(error["object"]["reason"], "Expired");
}

#[test]
fn lists_follow_kubes_resource_version_rules() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, api) = start(dir.path());
    for i in 0..5 {
        create(&api, &format!("cm-{i}"), json!({}));
    }
    let (_, _, body) = api.curl("GET", &format!("{CM}?limit=2"), &[], None);
    let first = parse(&body);
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    assert_eq!(first["metadata"]["remainingItemCount"], 4);
    let token = first["metadata"]["continue"].as_str().unwrap().to_string();
    // Later pages are served at the first page's revision: a write meanwhile is not seen.
    create(&api, "cm-9", json!({}));
    let (_, _, body) = api.curl("GET", &format!("{CM}?limit=10&continue={token}"), &[], None);
    let rest = parse(&body);
    let names: Vec<&str> = rest["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["cm-2", "cm-3", "cm-4", ROOT_CA]);
    assert_eq!(
        rest["metadata"]["resourceVersion"],
        first["metadata"]["resourceVersion"]
    );

    let (status, _, body) = api.curl(
        "GET",
        &format!("{CM}?continue={token}&resourceVersion=5"),
        &[],
        None,
    );
    assert_eq!(status, 400, "{body}");
    let (status, _, body) = api.curl("GET", &format!("{CM}?continue=garbage"), &[], None);
    assert_eq!(status, 400, "{body}");
    let (status, _, body) = api.curl("GET", &format!("{CM}?resourceVersion=999999"), &[], None);
    assert_eq!(status, 504, "{body}");
    assert!(parse(&body)["message"]
        .as_str()
        .unwrap()
        .starts_with("Too large resource version"));
    // resourceVersion=0 is served from the watch cache.
    let (status, _, body) = api.curl("GET", &format!("{CM}?resourceVersion=0"), &[], None);
    assert_eq!(status, 200);
    assert_eq!(
        parse(&body)["items"].as_array().unwrap().len(),
        7,
        "six and the root CA"
    );
}

#[test]
fn subresources_dry_runs_generate_name_and_collections() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, api) = start(dir.path());
    let deploy = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "nginx"}]}}},
        "status": {"replicas": 7},
    });
    let path = "/apis/apps/v1/namespaces/default/deployments";
    let (status, _, out) = api.curl(
        "POST",
        path,
        &[],
        Some(("application/json", &deploy.to_string())),
    );
    assert_eq!(status, 201, "{out}");
    let created = parse(&out);
    assert_eq!(created["status"], json!({}), "a create sets no status");
    assert_eq!(created["metadata"]["generation"], 1);

    // /status changes only the status; the main resource ignores it.
    let status_patch = json!({"status": {"replicas": 1}, "spec": {"replicas": 9}}).to_string();
    let merge_patch = |target: &str| {
        let (code, _, out) = api.curl(
            "PATCH",
            target,
            &[],
            Some(("application/merge-patch+json", &status_patch)),
        );
        assert_eq!(code, 200, "{out}");
        let after = parse(&out);
        let replicas = (
            after["status"]["replicas"].clone(),
            after["spec"]["replicas"].clone(),
        );
        (replicas, after["metadata"]["generation"].clone())
    };
    assert_eq!(
        merge_patch(&format!("{path}/web/status")),
        ((json!(1), json!(1)), json!(1)),
        "a status write changes the status alone, and is no spec change"
    );
    assert_eq!(
        merge_patch(&format!("{path}/web")),
        ((json!(1), json!(9)), json!(2)),
        "the main resource keeps the status"
    );

    // dryRun=All answers as if written and writes nothing.
    let body =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dry"}}).to_string();
    let (code, _, _) = api.curl(
        "POST",
        &format!("{CM}?dryRun=All"),
        &[],
        Some(("application/json", &body)),
    );
    assert_eq!(code, 201);
    let (code, _, _) = api.curl("GET", &format!("{CM}/dry"), &[], None);
    assert_eq!(code, 404);

    // generateName.
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "gen-", "labels": {"batch": "1"}}}).to_string();
    for _ in 0..3 {
        let (code, _, out) = api.curl("POST", CM, &[], Some(("application/json", &body)));
        assert_eq!(code, 201);
        let name = parse(&out)["metadata"]["name"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(name.starts_with("gen-") && name.len() == 9, "{name}");
    }
    // deletecollection with a selector deletes those and only those.
    create(&api, "keep", json!({}));
    let (code, _, out) = api.curl(
        "DELETE",
        &format!("{CM}?labelSelector=batch%3D1"),
        &[],
        None,
    );
    assert_eq!(code, 200, "{out}");
    assert_eq!(parse(&out)["items"].as_array().unwrap().len(), 3);
    let (_, _, out) = api.curl("GET", CM, &[], None);
    let names: Vec<String> = parse(&out)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["keep", ROOT_CA]);

    // A delete precondition on another uid is a 409, and deletes nothing.
    let pre = json!({"preconditions": {"uid": "not-this"}}).to_string();
    let (code, _, _) = api.curl(
        "DELETE",
        &format!("{CM}/keep"),
        &[],
        Some(("application/json", &pre)),
    );
    assert_eq!(code, 409);
    let (code, _, _) = api.curl("GET", &format!("{CM}/keep"), &[], None);
    assert_eq!(code, 200);
    // So is an update naming another uid: the uid cannot change.
    let other = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "keep", "uid": "not-this"}, "data": {"x": "y"}});
    let (code, _, out) = api.curl(
        "PUT",
        &format!("{CM}/keep"),
        &[],
        Some(("application/json", &other.to_string())),
    );
    assert_eq!(code, 409, "{out}");
    assert!(parse(&out)["message"]
        .as_str()
        .unwrap()
        .contains("Precondition failed: UID in precondition: not-this"));

    // Bodies the server cannot read: 415 for an unknown media type, 400 for garbage.
    let (code, _, out) = api.curl("POST", CM, &[], Some(("text/plain", "x")));
    assert_eq!(
        (code, parse(&out)["reason"].clone()),
        (415, json!("UnsupportedMediaType"))
    );
    let (code, _, _) = api.curl("POST", CM, &[], Some(("application/json", "{not json")));
    assert_eq!(code, 400);
    let (code, _, _) = api.curl(
        "POST",
        CM,
        &[],
        Some(("application/vnd.kubernetes.protobuf", "not an envelope")),
    );
    assert_eq!(code, 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn both_event_apis_share_one_place_and_old_continue_tokens_expire() {
    let dir = tempfile::tempdir().unwrap();
    let (node, api) = start(dir.path());
    let event = json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": "pulled"},
        "eventTime": "2026-12-06T00:00:00.000000Z",
        "reportingController": "kubelet", "reportingInstance": "node-1", "action": "Pull",
        "regarding": {"kind": "Pod", "name": "web", "namespace": "default"},
        "note": "image pulled", "reason": "Pulled", "type": "Normal",
    });
    let (code, _, out) = api.curl(
        "POST",
        "/apis/events.k8s.io/v1/namespaces/default/events",
        &[],
        Some(("application/json", &event.to_string())),
    );
    assert_eq!(code, 201, "{out}");
    assert_eq!(parse(&out)["note"], "image pulled");
    // The core API reads the same event in its own form, from kube-apiserver's place.
    let (code, _, out) = api.curl("GET", "/api/v1/namespaces/default/events/pulled", &[], None);
    assert_eq!(code, 200, "{out}");
    let core = parse(&out);
    assert_eq!(
        (core["apiVersion"].clone(), core["message"].clone()),
        (json!("v1"), json!("image pulled"))
    );
    assert_eq!(core["involvedObject"]["name"], "web");
    let client =
        ballast_client::Client::connect([node.endpoint()], ballast_client::ConnectOptions::new())
            .await
            .unwrap();
    let stored = client
        .get(
            "/registry/events/default/pulled",
            ballast_client::GetOptions::new(),
        )
        .await
        .unwrap();
    let stored: Value = serde_json::from_slice(&stored.kvs[0].value).unwrap();
    assert_eq!(stored["involvedObject"]["kind"], "Pod");
    // Field selectors follow each API's names.
    let (_, _, out) = api.curl(
        "GET",
        "/apis/events.k8s.io/v1/namespaces/default/events?fieldSelector=regarding.name%3Dweb",
        &[],
        None,
    );
    assert_eq!(parse(&out)["items"].as_array().unwrap().len(), 1);
    let (_, _, out) = api.curl(
        "GET",
        "/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dother",
        &[],
        None,
    );
    assert_eq!(parse(&out)["items"].as_array().unwrap().len(), 0);

    // A continue token from before a compaction is 410 Expired.
    for i in 0..3 {
        create(&api, &format!("page-{i}"), json!({}));
    }
    let (_, _, out) = api.curl("GET", &format!("{CM}?limit=1"), &[], None);
    let token = parse(&out)["metadata"]["continue"]
        .as_str()
        .unwrap()
        .to_string();
    create(&api, "later", json!({}));
    let now = client
        .get("x", ballast_client::GetOptions::new())
        .await
        .unwrap()
        .header
        .revision;
    client.compact(now, true).await.unwrap();
    let (code, _, out) = api.curl("GET", &format!("{CM}?limit=1&continue={token}"), &[], None);
    assert_eq!(
        (code, parse(&out)["reason"].clone()),
        (410, json!("Expired")),
        "{out}"
    );

    // HTTP/1.1 works as well as HTTP/2.
    let (code, head, _) = api.curl("GET", "/version", &[], None);
    assert_eq!(code, 200);
    assert!(head.starts_with("HTTP/2"), "{head}");
    let (code, head, out) = api.curl_with(&["--http1.1"], "GET", &format!("{CM}/later"), &[], None);
    assert_eq!(code, 200);
    assert!(head.starts_with("HTTP/1.1"), "{head}");
    assert_eq!(parse(&out)["metadata"]["name"], "later");
}

#[test]
fn without_a_serving_certificate_one_is_made_under_the_cert_dir() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("node"));
    let port = ballast_tests::free_port();
    let cert_dir = dir.path().join("certs");
    let mut server = std::process::Command::new(ballast_tests::apiserver_binary())
        .args(["--etcd-servers", &node.url(), "--bind-address", "127.0.0.1"])
        .args(["--secure-port", &port.to_string()])
        .arg("--cert-dir")
        .arg(&cert_dir)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + ballast_tests::WAIT;
    let answer = loop {
        let out = std::process::Command::new("curl")
            .args(["-sS", "--cacert"])
            .arg(cert_dir.join("apiserver.crt"))
            .arg(format!("https://127.0.0.1:{port}/livez"))
            .output()
            .unwrap();
        if out.status.success() {
            break String::from_utf8_lossy(&out.stdout).into_owned();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no answer over the self-signed certificate"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let _ = server.kill();
    let _ = server.wait();
    // Verified against the certificate it wrote, for 127.0.0.1: the pair is kube's.
    assert_eq!(answer, "ok");
    assert!(cert_dir.join("apiserver.key").exists());
}
