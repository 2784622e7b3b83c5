//! Admission in ballast-apiserver: a ResourceQuota is never exceeded, even by creates
//! racing each other (each create is charged to the quota in its own transaction), and
//! deletes give the room back.

use std::time::Instant;

use ballast_tests::{ApiServer, Node, WAIT};
use serde_json::{json, Value};

const CM: &str = "/api/v1/namespaces/quota/configmaps";

fn used(api: &ApiServer) -> String {
    api.kubectl_ok(&[
        "-n",
        "quota",
        "get",
        "resourcequota",
        "cms",
        "-o",
        "jsonpath={.status.used.count/configmaps}",
    ])
}

#[test]
fn a_quota_holds_under_concurrent_creates() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("node"));
    let api = ApiServer::start(&dir.path().join("api"), &[node.url()], &[]);
    api.kubectl_ok(&["create", "namespace", "quota"]);
    api.kubectl_ok(&[
        "-n",
        "quota",
        "create",
        "quota",
        "cms",
        "--hard=count/configmaps=5",
    ]);
    // Twenty clients race for five places.
    let results: Vec<(u16, String)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..20)
            .map(|i| {
                let api = &api;
                scope.spawn(move || {
                    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("cm-{i}")}});
                    let (code, _, out) = api.curl("POST", CM, &[], Some(("application/json", &body.to_string())));
                    (code, out)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let created = results.iter().filter(|(code, _)| *code == 201).count();
    assert_eq!(created, 5, "{results:?}");
    for (code, out) in results.iter().filter(|(code, _)| *code != 201) {
        assert_eq!(*code, 403, "{out}");
        assert!(out.contains("exceeded quota: cms, requested: count/configmaps=1, used: count/configmaps=5, limited: count/configmaps=5"), "{out}");
    }
    let (_, _, out) = api.curl("GET", CM, &[], None);
    let items: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(items["items"].as_array().unwrap().len(), 5);
    assert_eq!(used(&api), "5");

    // A delete gives a place back once the quota is recounted.
    let name = items["items"][0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    api.kubectl_ok(&["-n", "quota", "delete", "configmap", &name]);
    let deadline = Instant::now() + WAIT;
    while used(&api) != "4" {
        assert!(Instant::now() < deadline, "the quota was never recounted");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    api.kubectl_ok(&["-n", "quota", "create", "configmap", "again"]);
    let (ok, _, err) = api.kubectl(&["-n", "quota", "create", "configmap", "one-too-many"]);
    assert!(!ok && err.contains("exceeded quota: cms"), "{err}");
}
