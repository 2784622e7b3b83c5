//! kubectl 1.32 against ballast-apiserver over a real `ballast` node: discovery, the
//! verbs, watches, errors, and what is in the store afterwards.

use std::io::{BufRead as _, BufReader};
use std::process::Stdio;
use std::time::Instant;

use ballast_client::{Client, ConnectOptions, GetOptions};
use ballast_tests::{ApiServer, Node, WAIT};

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
        ports:
        - containerPort: 80
"#;

fn start(dir: &std::path::Path) -> (Node, ApiServer) {
    let node = Node::start(&dir.join("node"));
    let api = ApiServer::start(&dir.join("api"), &[node.url()], &[]);
    (node, api)
}

async fn stored(node: &Node, key: &str) -> Option<serde_json::Value> {
    let client = Client::connect([node.endpoint()], ConnectOptions::new())
        .await
        .unwrap();
    let response = client.get(key, GetOptions::new()).await.unwrap();
    response
        .kvs
        .first()
        .map(|kv| serde_json::from_slice(&kv.value).expect("stored values are JSON"))
}

#[tokio::test(flavor = "multi_thread")]
async fn discovery_lists_every_kind_and_the_system_namespaces() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, api) = start(dir.path());
    let namespaces = api.kubectl_ok(&["get", "namespaces", "-o", "name"]);
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(
            namespaces.contains(&format!("namespace/{ns}\n")),
            "{namespaces}"
        );
    }
    let resources = api.kubectl_ok(&["api-resources", "-o", "name"]);
    for name in [
        "namespaces",
        "configmaps",
        "secrets",
        "serviceaccounts",
        "pods",
        "services",
        "endpoints",
        "events",
        "nodes",
        "persistentvolumeclaims",
        "limitranges",
        "resourcequotas",
        "deployments.apps",
        "replicasets.apps",
        "statefulsets.apps",
        "daemonsets.apps",
        "jobs.batch",
        "cronjobs.batch",
        "leases.coordination.k8s.io",
        "roles.rbac.authorization.k8s.io",
        "rolebindings.rbac.authorization.k8s.io",
        "clusterroles.rbac.authorization.k8s.io",
        "clusterrolebindings.rbac.authorization.k8s.io",
        "events.events.k8s.io",
    ] {
        assert!(
            resources.lines().any(|l| l == name),
            "{name} missing from:\n{resources}"
        );
    }
    let wide = api.kubectl_ok(&["api-resources"]);
    assert!(
        wide.lines()
            .any(|l| l.starts_with("deployments") && l.contains("deploy") && l.contains("apps/v1")),
        "{wide}"
    );
    let version = api.kubectl_ok(&["version"]);
    assert!(version.contains("Server Version: v1.32"), "{version}");
    // `get all` lists every kind in the `all` category: the kubernetes service is there.
    let all = api.kubectl_ok(&["get", "all"]);
    assert!(all.contains("service/kubernetes"), "{all}");
    assert!(api.kubectl_ok(&["get", "--raw", "/livez"]).contains("ok"));
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_label_annotate_patch_scale_replace_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let (node, api) = start(dir.path());
    let apply = |manifest: &str| api.kubectl_stdin(&["apply", "-f", "-"], Some(manifest));

    let (ok, out, err) = apply(DEPLOYMENT);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "deployment.apps/web created");
    let (ok, out, _) = apply(DEPLOYMENT);
    assert!(ok);
    assert_eq!(out.trim(), "deployment.apps/web unchanged");
    let (ok, out, err) = apply(&DEPLOYMENT.replace("nginx:1.25", "nginx:1.26"));
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "deployment.apps/web configured");

    // Stored as kube-apiserver lays it out, JSON, without a resourceVersion inside.
    let object = stored(&node, "/registry/deployments/default/web")
        .await
        .expect("stored");
    assert_eq!(
        object["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.26"
    );
    assert_eq!(object["metadata"]["generation"], 2);
    assert!(object["metadata"].get("resourceVersion").is_none());

    let table = api.kubectl_ok(&["get", "deployments"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]);
    assert!(table.lines().nth(1).unwrap().starts_with("web "), "{table}");

    api.kubectl_ok(&["label", "deployment", "web", "tier=front"]);
    api.kubectl_ok(&["annotate", "deployment", "web", "note=hello"]);
    api.kubectl_ok(&[
        "patch",
        "deployment",
        "web",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"replicas":3}}"#,
    ]);
    api.kubectl_ok(&[
        "patch",
        "deployment",
        "web",
        "--type",
        "json",
        "-p",
        r#"[{"op":"replace","path":"/spec/revisionHistoryLimit","value":4}]"#,
    ]);
    // The default patch is a strategic merge: the container is merged by name.
    api.kubectl_ok(&[
        "patch",
        "deployment",
        "web",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"nginx","image":"nginx:1.27"}]}}}}"#,
    ]);
    api.kubectl_ok(&["scale", "deployment", "web", "--replicas=5"]);
    let got: serde_json::Value =
        serde_json::from_str(&api.kubectl_ok(&["get", "deployment", "web", "-o", "json"])).unwrap();
    assert_eq!(got["metadata"]["labels"]["tier"], "front");
    assert_eq!(got["metadata"]["annotations"]["note"], "hello");
    assert_eq!(got["spec"]["replicas"], 5);
    assert_eq!(got["spec"]["revisionHistoryLimit"], 4);
    let container = &got["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "nginx:1.27");
    assert_eq!(
        container["ports"][0]["containerPort"], 80,
        "the strategic merge kept the ports"
    );
    assert_eq!(
        got["metadata"]["generation"], 6,
        "spec changes only: apply, 3 patches, scale"
    );

    // A replace from a copy read before a change is refused, and changes nothing.
    let stale = api.kubectl_ok(&["get", "deployment", "web", "-o", "yaml"]);
    api.kubectl_ok(&["scale", "deployment", "web", "--replicas=1"]);
    let (ok, _, err) = api.kubectl_stdin(&["replace", "-f", "-"], Some(&stale));
    assert!(!ok);
    assert!(
        err.contains("Error from server (Conflict)")
            && err.contains("the object has been modified"),
        "{err}"
    );
    let replicas = api.kubectl_ok(&[
        "get",
        "deployment",
        "web",
        "-o",
        "jsonpath={.spec.replicas}",
    ]);
    assert_eq!(replicas, "1");

    // Every output format.
    assert!(api
        .kubectl_ok(&["get", "deployment", "web", "-o", "yaml"])
        .contains("kind: Deployment"));
    assert_eq!(
        api.kubectl_ok(&["get", "deployment", "web", "-o", "name"])
            .trim(),
        "deployment.apps/web"
    );
    assert!(api
        .kubectl_ok(&["get", "deployment", "web", "-o", "wide"])
        .contains("nginx:1.27"));
    let columns = api.kubectl_ok(&[
        "get",
        "deployments",
        "-o",
        "custom-columns=N:.metadata.name,R:.spec.replicas",
    ]);
    assert_eq!(
        columns
            .lines()
            .nth(1)
            .map(str::split_whitespace)
            .map(Iterator::collect::<Vec<_>>),
        Some(vec!["web", "1"])
    );
    let template = api.kubectl_ok(&[
        "get",
        "deployment",
        "web",
        "-o",
        "go-template={{.metadata.name}}/{{.spec.replicas}}",
    ]);
    assert_eq!(template, "web/1");
    let listed = api.kubectl_ok(&[
        "get",
        "deployments",
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ]);
    assert_eq!(listed, "web");
    let json: serde_json::Value =
        serde_json::from_str(&api.kubectl_ok(&["get", "deployments", "-o", "json"])).unwrap();
    assert_eq!(json["kind"], "List");
    assert_eq!(json["items"][0]["kind"], "Deployment");
    assert_eq!(
        api.kubectl_ok(&["get", "deployments", "-l", "tier=front", "-o", "name"])
            .trim(),
        "deployment.apps/web"
    );
    assert_eq!(
        api.kubectl_ok(&["get", "deployments", "-l", "tier!=front", "-o", "name"])
            .trim(),
        ""
    );

    let out = api.kubectl_ok(&["delete", "deployment", "web"]);
    assert_eq!(out.trim(), "deployment.apps \"web\" deleted");
    assert!(stored(&node, "/registry/deployments/default/web")
        .await
        .is_none());
    let err = api.kubectl_fails(&["get", "deployment", "web"]);
    assert!(
        err.contains("Error from server (NotFound): deployments.apps \"web\" not found"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_carry_kube_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let (node, api) = start(dir.path());
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: '1'\n";
    assert!(api.kubectl_stdin(&["create", "-f", "-"], Some(cm)).0);
    let (ok, _, err) = api.kubectl_stdin(&["create", "-f", "-"], Some(cm));
    assert!(!ok);
    assert!(
        err.contains("Error from server (AlreadyExists)")
            && err.contains("configmaps \"settings\" already exists"),
        "{err}"
    );

    let bad = cm.replace("settings", "Not_Valid");
    let (ok, _, err) = api.kubectl_stdin(&["create", "-f", "-"], Some(&bad));
    assert!(!ok);
    assert!(err.contains("is invalid: metadata.name: Invalid value: \"Not_Valid\": a lowercase RFC 1123 subdomain"), "{err}");
    assert!(stored(&node, "/registry/configmaps/default/Not_Valid")
        .await
        .is_none());

    let missing_ns = cm.replace("name: settings", "name: settings\n  namespace: nowhere");
    let (ok, _, err) = api.kubectl_stdin(&["create", "-f", "-"], Some(&missing_ns));
    assert!(!ok);
    assert!(err.contains("namespaces \"nowhere\" not found"), "{err}");

    let err = api.kubectl_fails(&["delete", "namespace", "default"]);
    assert!(
        err.contains("Forbidden") && err.contains("this namespace may not be deleted"),
        "{err}"
    );
    let err = api.kubectl_fails(&["get", "pods", "--field-selector", "spec.bogus=1"]);
    assert!(
        err.contains("field label not supported: spec.bogus"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn get_watch_sees_a_change_made_by_another_command() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, api) = start(dir.path());
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: watched\n  labels: {watch: me}\ndata:\n  a: '1'\n";
    assert!(api.kubectl_stdin(&["create", "-f", "-"], Some(cm)).0);
    let spawn = |args: &[&str]| {
        let mut watch = api
            .kubectl_command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("kubectl get -w");
        let lines = BufReader::new(watch.stdout.take().unwrap()).lines();
        (watch, lines)
    };
    let (mut names, mut name_lines) = spawn(&[
        "get",
        "configmaps",
        "-l",
        "watch=me",
        "--watch",
        "-o",
        "name",
    ]);
    // The human output watches in Tables: a header, then one row per event.
    let (mut table, mut table_lines) = spawn(&["get", "configmaps", "-l", "watch=me", "--watch"]);
    // The list comes first, then the watch from its resourceVersion.
    assert_eq!(name_lines.next().unwrap().unwrap(), "configmap/watched");
    let header = table_lines.next().unwrap().unwrap();
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        ["NAME", "DATA", "AGE"]
    );
    assert!(table_lines.next().unwrap().unwrap().starts_with("watched "));
    api.kubectl_ok(&[
        "patch",
        "configmap",
        "watched",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"b":"2"}}"#,
    ]);
    api.kubectl_ok(&["delete", "configmap", "watched"]);
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    while seen.len() < 2 && Instant::now() < deadline {
        seen.push(name_lines.next().unwrap().unwrap());
    }
    let changed = table_lines.next().unwrap().unwrap();
    for watch in [&mut names, &mut table] {
        let _ = watch.kill();
        let _ = watch.wait();
    }
    assert_eq!(
        seen,
        ["configmap/watched", "configmap/watched"],
        "a change and a delete"
    );
    let cells: Vec<&str> = changed.split_whitespace().collect();
    assert_eq!(
        cells[..2],
        ["watched", "2"],
        "the changed row shows two data keys: {changed}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn finalizers_hold_a_delete_until_they_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let (node, api) = start(dir.path());
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  finalizers: [example.com/hold]\n";
    assert!(api.kubectl_stdin(&["create", "-f", "-"], Some(cm)).0);
    api.kubectl_ok(&["delete", "configmap", "held", "--wait=false"]);
    let object = stored(&node, "/registry/configmaps/default/held")
        .await
        .expect("still stored");
    assert!(
        object["metadata"]["deletionTimestamp"].is_string(),
        "{object}"
    );
    // Removing the finalizer finishes the delete.
    api.kubectl_ok(&[
        "patch",
        "configmap",
        "held",
        "--type",
        "json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ]);
    assert!(stored(&node, "/registry/configmaps/default/held")
        .await
        .is_none());

    // A namespace is Terminating while its content goes, then goes itself.
    api.kubectl_stdin(
        &["create", "-f", "-"],
        Some("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team\n"),
    );
    api.kubectl_stdin(
        &["create", "-n", "team", "-f", "-"],
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n"),
    );
    let out = api.kubectl_ok(&["delete", "namespace", "team", "--timeout=30s"]);
    assert_eq!(out.trim(), "namespace \"team\" deleted");
    assert!(stored(&node, "/registry/namespaces/team").await.is_none());
    assert!(stored(&node, "/registry/configmaps/team/c").await.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn typed_creates_send_protobuf_and_are_stored_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let (node, api) = start(dir.path());
    let ns = ["-n", "team"];
    let run = |args: &[&str]| {
        // The namespace flag goes first: what follows `--` is the container's command.
        let mut all: Vec<&str> = Vec::new();
        if !["namespace", "clusterrole", "clusterrolebinding"].contains(&args[1]) {
            all.extend(ns);
        }
        all.extend(args);
        api.kubectl_ok(&all)
    };
    assert_eq!(
        run(&["create", "namespace", "team"]).trim(),
        "namespace/team created"
    );
    run(&[
        "create",
        "configmap",
        "cfg",
        "--from-literal=a=1",
        "--from-literal=b=2",
    ]);
    run(&[
        "create",
        "secret",
        "generic",
        "creds",
        "--from-literal=password=hunter2",
    ]);
    run(&["create", "serviceaccount", "robot"]);
    run(&[
        "create",
        "service",
        "nodeport",
        "np",
        "--tcp=80:8080",
        "--node-port=30080",
    ]);
    run(&[
        "create",
        "deployment",
        "web",
        "--image=nginx:1.27",
        "--replicas=0",
        "--port=80",
    ]);
    run(&[
        "create",
        "job",
        "once",
        "--image=busybox",
        "--",
        "echo",
        "hi",
    ]);
    run(&[
        "create",
        "cronjob",
        "tick",
        "--image=busybox",
        "--schedule=*/5 * * * *",
        "--",
        "date",
    ]);
    run(&["create", "quota", "q", "--hard=pods=10,cpu=2"]);
    run(&[
        "create",
        "role",
        "reader",
        "--verb=get,list",
        "--resource=pods",
    ]);
    run(&[
        "create",
        "rolebinding",
        "alice-reads",
        "--role=reader",
        "--user=alice",
    ]);
    run(&[
        "create",
        "clusterrole",
        "deployer",
        "--verb=get,create",
        "--resource=deployments.apps",
    ]);
    run(&[
        "create",
        "clusterrolebinding",
        "devs-deploy",
        "--clusterrole=deployer",
        "--group=devs",
    ]);

    let cm = stored(&node, "/registry/configmaps/team/cfg")
        .await
        .expect("configmap");
    assert_eq!(cm["data"], serde_json::json!({"a": "1", "b": "2"}));
    let secret = stored(&node, "/registry/secrets/team/creds")
        .await
        .expect("secret");
    assert_eq!(secret["data"]["password"], "aHVudGVyMg==");
    assert_eq!(secret["type"], "Opaque");
    let svc = stored(&node, "/registry/services/specs/team/np")
        .await
        .expect("service");
    assert_eq!(svc["spec"]["type"], "NodePort");
    assert_eq!(svc["spec"]["ports"][0]["nodePort"], 30080);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 8080);
    let deploy = stored(&node, "/registry/deployments/team/web")
        .await
        .expect("deployment");
    assert_eq!(deploy["spec"]["replicas"], 0, "an explicit zero is kept");
    assert_eq!(
        deploy["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.27"
    );
    assert_eq!(
        deploy["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"],
        80
    );
    let job = stored(&node, "/registry/jobs/team/once")
        .await
        .expect("job");
    assert_eq!(
        job["spec"]["template"]["spec"]["containers"][0]["command"],
        serde_json::json!(["echo", "hi"])
    );
    let cron = stored(&node, "/registry/cronjobs/team/tick")
        .await
        .expect("cronjob");
    assert_eq!(cron["spec"]["schedule"], "*/5 * * * *");
    let quota = stored(&node, "/registry/resourcequotas/team/q")
        .await
        .expect("quota");
    assert_eq!(quota["spec"]["hard"]["cpu"], "2");
    let binding = stored(&node, "/registry/rolebindings/team/alice-reads")
        .await
        .expect("rolebinding");
    assert_eq!(binding["roleRef"]["name"], "reader");
    assert_eq!(binding["subjects"][0]["name"], "alice");
    let role = stored(&node, "/registry/clusterroles/deployer")
        .await
        .expect("clusterrole");
    assert_eq!(
        role["rules"][0]["verbs"],
        serde_json::json!(["get", "create"])
    );
    assert!(stored(&node, "/registry/serviceaccounts/team/robot")
        .await
        .is_some());
    assert!(stored(&node, "/registry/clusterrolebindings/devs-deploy")
        .await
        .is_some());

    let pods_header = api.kubectl_ok(&["get", "secrets", "-n", "team"]);
    let header: Vec<&str> = pods_header
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(header, ["NAME", "TYPE", "DATA", "AGE"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn explain_reads_the_schemas_and_unknown_fields_are_refused_or_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let (node, api) = start(dir.path());
    let explained = api.kubectl_ok(&["explain", "deployment.spec.strategy"]);
    assert!(explained.contains("KIND:       Deployment"), "{explained}");
    assert!(
        explained.contains("rollingUpdate\t<RollingUpdateDeployment>"),
        "{explained}"
    );
    let explained = api.kubectl_ok(&["explain", "pods.spec.containers.image"]);
    assert!(explained.contains("FIELD: image <string>"), "{explained}");

    let typo = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: typo\ndatta:\n  a: '1'\n";
    // kubectl validates strictly by default: the server refuses and stores nothing.
    let (ok, _, err) = api.kubectl_stdin(&["create", "-f", "-"], Some(typo));
    assert!(!ok);
    assert!(
        err.contains("ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: unknown field \"datta\""),
        "{err}"
    );
    assert!(stored(&node, "/registry/configmaps/default/typo")
        .await
        .is_none());
    // Warn: created without the field, with a warning.
    let (ok, _, err) = api.kubectl_stdin(&["create", "--validate=warn", "-f", "-"], Some(typo));
    assert!(ok, "{err}");
    assert!(err.contains("Warning: unknown field \"datta\""), "{err}");
    let object = stored(&node, "/registry/configmaps/default/typo")
        .await
        .expect("stored");
    assert!(object.get("datta").is_none(), "{object}");
}

#[tokio::test(flavor = "multi_thread")]
async fn server_side_apply_conflicts_then_forces_and_records_owners() {
    let dir = tempfile::tempdir().unwrap();
    let (node, api) = start(dir.path());
    // Created by server-side apply.
    let (ok, out, err) =
        api.kubectl_stdin(&["apply", "--server-side", "-f", "-"], Some(DEPLOYMENT));
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "deployment.apps/web serverside-applied");
    // Another manager changes the replicas (scale names none: the manager is the name its
    // User-Agent starts with, `kubectl.1.32` for this binary).
    api.kubectl_ok(&["scale", "deployment", "web", "--replicas=4"]);
    // Applying a different replica count now conflicts with it, and changes nothing.
    let three = DEPLOYMENT.replace("replicas: 2", "replicas: 3");
    let (ok, _, err) = api.kubectl_stdin(&["apply", "--server-side", "-f", "-"], Some(&three));
    assert!(!ok);
    assert!(
        err.contains("Apply failed with 1 conflict: conflict with \"kubectl")
            && err.contains(".spec.replicas"),
        "{err}"
    );
    let object = stored(&node, "/registry/deployments/default/web")
        .await
        .unwrap();
    assert_eq!(object["spec"]["replicas"], 4);
    // Forced, the field moves to the applier.
    let (ok, _, err) = api.kubectl_stdin(
        &["apply", "--server-side", "--force-conflicts", "-f", "-"],
        Some(&three),
    );
    assert!(ok, "{err}");
    let object = stored(&node, "/registry/deployments/default/web")
        .await
        .unwrap();
    assert_eq!(object["spec"]["replicas"], 3);
    let managers: Vec<(String, String)> = object["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["manager"].as_str().unwrap().to_string(),
                e["operation"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        managers.contains(&("kubectl".into(), "Apply".into())),
        "{managers:?}"
    );
    let apply_entry = object["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["operation"] == "Apply")
        .unwrap();
    assert!(
        apply_entry["fieldsV1"]["f:spec"]["f:replicas"].is_object(),
        "{apply_entry}"
    );
    // Dropping a label from the applied configuration removes it (nobody else owns it).
    let unlabelled = three.replace("  labels: {app: web}\nspec:", "spec:");
    let (ok, _, err) = api.kubectl_stdin(&["apply", "--server-side", "-f", "-"], Some(&unlabelled));
    assert!(ok, "{err}");
    let object = stored(&node, "/registry/deployments/default/web")
        .await
        .unwrap();
    assert!(
        object["metadata"]
            .get("labels")
            .is_none_or(|l| l.get("app").is_none()),
        "{object}"
    );
}

/// Polls the store until `key` is gone (true) or WAIT passes (false).
async fn gone(node: &Node, key: &str) -> bool {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if stored(node, key).await.is_none() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread")]
async fn dependents_follow_their_owner_by_each_propagation_policy() {
    let dir = tempfile::tempdir().unwrap();
    let (node, api) = start(dir.path());
    let pair = |owner: &str, child: &str, child_finalizer: bool| {
        let made = api.kubectl_stdin(
            &["create", "-f", "-", "-o", "jsonpath={.metadata.uid}"],
            Some(&format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {owner}\n"
            )),
        );
        assert!(made.0, "{}", made.2);
        let finalizers = if child_finalizer {
            "\n  finalizers: [example.com/hold]"
        } else {
            ""
        };
        let child_yaml = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {child}{finalizers}\n  ownerReferences:\n  - apiVersion: v1\n    kind: ConfigMap\n    name: {owner}\n    uid: {}\n",
            made.1
        );
        assert!(
            api.kubectl_stdin(&["create", "-f", "-"], Some(&child_yaml))
                .0
        );
    };
    let key = |name: &str| format!("/registry/configmaps/default/{name}");

    // Background (kubectl's default): the owner goes, then the collector deletes the child.
    pair("owner-bg", "child-bg", false);
    api.kubectl_ok(&["delete", "configmap", "owner-bg"]);
    assert!(
        gone(&node, &key("child-bg")).await,
        "the dependent was not collected"
    );

    // Foreground: the owner waits, marked, while its dependent (held by a finalizer) goes.
    pair("owner-fg", "child-fg", true);
    api.kubectl_ok(&[
        "delete",
        "configmap",
        "owner-fg",
        "--cascade=foreground",
        "--wait=false",
    ]);
    let owner = stored(&node, &key("owner-fg"))
        .await
        .expect("the owner waits");
    assert!(
        owner["metadata"]["finalizers"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("foregroundDeletion")),
        "{owner}"
    );
    let deadline = Instant::now() + WAIT;
    while stored(&node, &key("child-fg"))
        .await
        .is_some_and(|c| c["metadata"]["deletionTimestamp"].is_null())
    {
        assert!(Instant::now() < deadline, "the dependent was not deleted");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        stored(&node, &key("owner-fg")).await.is_some(),
        "the owner went before its dependent"
    );
    api.kubectl_ok(&[
        "patch",
        "configmap",
        "child-fg",
        "--type",
        "json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ]);
    assert!(
        gone(&node, &key("owner-fg")).await,
        "the owner stayed after its dependent went"
    );

    // Orphan: the owner goes, the dependent stays without its reference.
    pair("owner-or", "child-or", false);
    api.kubectl_ok(&["delete", "configmap", "owner-or", "--cascade=orphan"]);
    assert!(gone(&node, &key("owner-or")).await);
    let child = stored(&node, &key("child-or"))
        .await
        .expect("the orphan stays");
    assert!(
        child["metadata"].get("ownerReferences").is_none(),
        "{child}"
    );
}
