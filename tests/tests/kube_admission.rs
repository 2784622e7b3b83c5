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
    // The namespace's root CA ConfigMap is one of the six.
    let deadline = Instant::now() + WAIT;
    while !api
        .kubectl(&["-n", "quota", "get", "configmap", "kube-root-ca.crt"])
        .0
    {
        assert!(Instant::now() < deadline, "no kube-root-ca.crt");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    api.kubectl_ok(&[
        "-n",
        "quota",
        "create",
        "quota",
        "cms",
        "--hard=count/configmaps=6",
    ]);
    let deadline = Instant::now() + WAIT;
    while used(&api) != "1" {
        assert!(Instant::now() < deadline, "the quota was never counted");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
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
        assert!(out.contains("exceeded quota: cms, requested: count/configmaps=1, used: count/configmaps=6, limited: count/configmaps=6"), "{out}");
    }
    let (_, _, out) = api.curl("GET", CM, &[], None);
    let items: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(items["items"].as_array().unwrap().len(), 6);
    assert_eq!(used(&api), "6");

    // A delete gives a place back once the quota is recounted.
    let name = items["items"][0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    api.kubectl_ok(&["-n", "quota", "delete", "configmap", &name]);
    let deadline = Instant::now() + WAIT;
    while used(&api) != "5" {
        assert!(Instant::now() < deadline, "the quota was never recounted");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    api.kubectl_ok(&["-n", "quota", "create", "configmap", "again"]);
    let (ok, _, err) = api.kubectl(&["-n", "quota", "create", "configmap", "one-too-many"]);
    assert!(!ok && err.contains("exceeded quota: cms"), "{err}");
}

const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: NAME\nspec:\n  containers:\n  - name: app\n    image: nginx\nRESOURCES";

fn pod(name: &str, resources: &str) -> String {
    POD.replace("NAME", name).replace("RESOURCES", resources)
}

#[test]
fn pods_get_their_service_account_token_and_limit_range_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("node"));
    let api = ApiServer::start(&dir.path().join("api"), &[node.url()], &[]);
    api.kubectl_ok(&["create", "namespace", "apps"]);
    // The default service account and the root CA appear in every namespace.
    let deadline = Instant::now() + WAIT;
    while !(api
        .kubectl(&["-n", "apps", "get", "serviceaccount", "default"])
        .0
        && api
            .kubectl(&["-n", "apps", "get", "configmap", "kube-root-ca.crt"])
            .0)
    {
        assert!(Instant::now() < deadline, "no default service account");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let ca = api.kubectl_ok(&[
        "-n",
        "apps",
        "get",
        "configmap",
        "kube-root-ca.crt",
        "-o",
        "jsonpath={.data.ca\\.crt}",
    ]);
    assert!(ca.contains("BEGIN CERTIFICATE"), "{ca}");

    let limits = "apiVersion: v1\nkind: LimitRange\nmetadata:\n  name: cpu\nspec:\n  limits:\n  - type: Container\n    default: {cpu: 500m}\n    max: {cpu: '1'}\n";
    assert!(
        api.kubectl_stdin(&["-n", "apps", "create", "-f", "-"], Some(limits))
            .0
    );
    assert!(
        api.kubectl_stdin(&["-n", "apps", "create", "-f", "-"], Some(&pod("web", "")))
            .0
    );
    let web: Value =
        serde_json::from_str(&api.kubectl_ok(&["-n", "apps", "get", "pod", "web", "-o", "json"]))
            .unwrap();
    let container = &web["spec"]["containers"][0];
    assert_eq!(container["resources"]["limits"]["cpu"], "500m");
    assert_eq!(container["resources"]["requests"]["cpu"], "500m");
    assert_eq!(web["spec"]["serviceAccountName"], "default");
    let volume = web["spec"]["volumes"][0].clone();
    assert!(
        volume["name"]
            .as_str()
            .unwrap()
            .starts_with("kube-api-access-"),
        "{volume}"
    );
    assert_eq!(
        volume["projected"]["sources"][0]["serviceAccountToken"]["path"],
        "token"
    );
    assert_eq!(
        container["volumeMounts"][0]["mountPath"],
        "/var/run/secrets/kubernetes.io/serviceaccount"
    );

    let big = "  resources:\n      limits: {cpu: '2'}\n".replace("  resources", "    resources");
    let (ok, _, err) = api.kubectl_stdin(
        &["-n", "apps", "create", "-f", "-"],
        Some(&pod("big", &big)),
    );
    assert!(!ok);
    assert!(
        err.contains(
            "pods \"big\" is forbidden: maximum cpu usage per Container is 1, but limit is 2"
        ),
        "{err}"
    );
    let stranger = pod("stranger", "").replace("spec:\n", "spec:\n  serviceAccountName: nobody\n");
    let (ok, _, err) = api.kubectl_stdin(&["-n", "apps", "create", "-f", "-"], Some(&stranger));
    assert!(!ok);
    assert!(
        err.contains(
            "error looking up service account apps/nobody: serviceaccount \"nobody\" not found"
        ),
        "{err}"
    );

    // With the plugins off, neither happens.
    let plain = ApiServer::start(
        &dir.path().join("plain"),
        &[node.url()],
        &["--disable-admission-plugins", "ServiceAccount,LimitRanger"],
    );
    assert!(
        plain
            .kubectl_stdin(&["-n", "apps", "create", "-f", "-"], Some(&stranger))
            .0
    );
    let got: Value = serde_json::from_str(
        &plain.kubectl_ok(&["-n", "apps", "get", "pod", "stranger", "-o", "json"]),
    )
    .unwrap();
    assert!(got["spec"].get("volumes").is_none(), "{got}");
    assert!(
        got["spec"]["containers"][0]["resources"]
            .get("limits")
            .is_none(),
        "{got}"
    );
}
