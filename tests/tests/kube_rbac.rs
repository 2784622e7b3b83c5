//! Authentication and RBAC in ballast-apiserver, driven by kubectl 1.32: an admin by
//! client certificate, a user by static token limited by a Role to one namespace,
//! `auth can-i` (also `--list` and `--as`), `auth whoami`, escalation refused, an
//! aggregated role picking up a rule added later, service account tokens (bound ones
//! dying with their account or pod, legacy ones with their Secret), and refusals that
//! leave the store as it was.

use std::time::Instant;

use ballast_tests::{ApiServer, Node, WAIT};

fn start(dir: &std::path::Path) -> (Node, ApiServer) {
    let node = Node::start(&dir.join("node"));
    std::fs::create_dir_all(dir.join("api")).unwrap();
    let tokens = dir.join("api/tokens.csv");
    std::fs::write(
        &tokens,
        "alice-token,alice,1001,\"devs\"\nbob-token,bob,1002\n",
    )
    .unwrap();
    let api = ApiServer::start(
        &dir.join("api"),
        &[node.url()],
        &[
            "--authorization-mode",
            "RBAC",
            "--token-auth-file",
            tokens.to_str().unwrap(),
        ],
    );
    // The aggregation controller fills admin, edit and view after start; tests that
    // check the store stands still wait for it to be done (admin holds view's rules).
    let deadline = Instant::now() + WAIT;
    while !api
        .kubectl_ok(&["get", "clusterrole", "admin", "-o", "jsonpath={.rules}"])
        .contains("pods/log")
    {
        assert!(
            Instant::now() < deadline,
            "the bootstrap roles were never aggregated"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    (node, api)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_role_limits_a_token_user_to_its_namespace_and_verbs() {
    let dir = tempfile::tempdir().unwrap();
    let (node, api) = start(dir.path());
    // The admin, by client certificate in system:masters.
    let whoami = api.kubectl_ok(&["auth", "whoami"]);
    assert!(
        whoami.contains("kubernetes-admin") && whoami.contains("system:masters"),
        "{whoami}"
    );
    assert_eq!(api.kubectl_ok(&["auth", "can-i", "*", "*"]).trim(), "yes");
    api.kubectl_ok(&["create", "namespace", "team"]);
    api.kubectl_ok(&[
        "-n",
        "team",
        "create",
        "role",
        "reader",
        "--verb=get,list,watch",
        "--resource=configmaps",
    ]);
    api.kubectl_ok(&[
        "-n",
        "team",
        "create",
        "rolebinding",
        "alice-reads",
        "--role=reader",
        "--user=alice",
    ]);
    api.kubectl_ok(&[
        "-n",
        "team",
        "create",
        "configmap",
        "settings",
        "--from-literal=a=1",
    ]);

    let alice = |args: &[&str]| {
        let mut all = vec!["--token=alice-token"];
        all.extend(args);
        api.kubectl(&all)
    };
    let (ok, out, _) = alice(&["-n", "team", "get", "configmaps", "-o", "name"]);
    assert!(ok && out.contains("configmap/settings"), "{out}");
    let whoami = alice(&["auth", "whoami"]).1;
    assert!(
        whoami.contains("alice") && whoami.contains("1001") && whoami.contains("devs"),
        "{whoami}"
    );

    let before = node.revision().await;
    let (ok, _, err) = alice(&["-n", "team", "delete", "configmap", "settings"]);
    assert!(!ok);
    assert!(
        err.contains("configmaps \"settings\" is forbidden: User \"alice\" cannot delete resource \"configmaps\" in API group \"\" in the namespace \"team\""),
        "{err}"
    );
    let (ok, _, err) = alice(&["-n", "team", "create", "configmap", "more"]);
    assert!(
        !ok && err.contains("configmaps is forbidden: User \"alice\" cannot create"),
        "{err}"
    );
    let (ok, _, err) = alice(&["get", "configmaps"]);
    assert!(!ok && err.contains("in the namespace \"default\""), "{err}");
    let (ok, _, err) = alice(&["-n", "team", "get", "secrets"]);
    assert!(
        !ok && err.contains("cannot list resource \"secrets\""),
        "{err}"
    );
    assert_eq!(
        node.written_since(before).await,
        Vec::<String>::new(),
        "refused requests wrote nothing"
    );

    assert_eq!(
        alice(&["-n", "team", "auth", "can-i", "list", "configmaps"])
            .1
            .trim(),
        "yes"
    );
    let (ok, out, _) = alice(&["-n", "team", "auth", "can-i", "delete", "configmaps"]);
    assert!(!ok && out.trim() == "no");
    let list = alice(&["-n", "team", "auth", "can-i", "--list"]).1;
    assert!(
        list.lines()
            .any(|l| l.starts_with("configmaps") && l.contains("[get list watch]")),
        "{list}"
    );

    // The admin may impersonate her; she may not impersonate anyone.
    assert_eq!(
        api.kubectl_ok(&[
            "-n",
            "team",
            "auth",
            "can-i",
            "get",
            "configmaps",
            "--as",
            "alice"
        ])
        .trim(),
        "yes"
    );
    let (ok, out, _) = api.kubectl(&[
        "-n",
        "team",
        "auth",
        "can-i",
        "delete",
        "configmaps",
        "--as",
        "alice",
    ]);
    assert!(!ok && out.trim() == "no");
    let (ok, _, err) = alice(&["-n", "team", "get", "configmaps", "--as", "bob"]);
    assert!(!ok);
    assert!(err.contains("users \"bob\" is forbidden: User \"alice\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"), "{err}");

    // A token nobody issued is a 401, and writes nothing.
    let before = node.revision().await;
    let (ok, _, err) = api.kubectl(&[
        "--token=forged",
        "-n",
        "team",
        "create",
        "configmap",
        "forged",
    ]);
    assert!(
        !ok && err.contains("failed to create configmap: Unauthorized"),
        "{err}"
    );
    assert_eq!(node.written_since(before).await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn escalation_is_refused_and_aggregated_roles_follow_their_sources() {
    let dir = tempfile::tempdir().unwrap();
    let (node, api) = start(dir.path());
    api.kubectl_ok(&["create", "namespace", "team"]);
    // Alice may manage roles and bindings in team, and read configmaps there.
    api.kubectl_ok(&[
        "-n",
        "team",
        "create",
        "role",
        "role-admin",
        // Not `*`: that would include `escalate` and `bind`.
        "--verb=create,get,list,update,patch,delete",
        "--resource=roles.rbac.authorization.k8s.io,rolebindings.rbac.authorization.k8s.io",
    ]);
    api.kubectl_ok(&[
        "-n",
        "team",
        "create",
        "role",
        "cm-reader",
        "--verb=get,list",
        "--resource=configmaps",
    ]);
    api.kubectl_ok(&[
        "-n",
        "team",
        "create",
        "rolebinding",
        "alice-roles",
        "--role=role-admin",
        "--user=alice",
    ]);
    api.kubectl_ok(&[
        "-n",
        "team",
        "create",
        "rolebinding",
        "alice-cm",
        "--role=cm-reader",
        "--user=alice",
    ]);
    let alice = |args: &[&str]| {
        let mut all = vec!["--token=alice-token", "-n", "team"];
        all.extend(args);
        api.kubectl(&all)
    };
    // What she holds she may grant; what she does not, she may not.
    let (ok, _, err) = alice(&[
        "create",
        "role",
        "cm-reader-2",
        "--verb=get",
        "--resource=configmaps",
    ]);
    assert!(ok, "{err}");
    let before = node.revision().await;
    let (ok, _, err) = alice(&[
        "create",
        "role",
        "secrets-reader",
        "--verb=get",
        "--resource=secrets",
    ]);
    assert!(!ok);
    assert!(
        err.contains("is attempting to grant RBAC permissions not currently held"),
        "{err}"
    );
    let (ok, _, err) = alice(&[
        "create",
        "rolebinding",
        "bob-admin",
        "--clusterrole=cluster-admin",
        "--user=bob",
    ]);
    assert!(!ok && err.contains("not currently held"), "{err}");
    assert_eq!(
        node.written_since(before).await,
        Vec::<String>::new(),
        "refused requests wrote nothing"
    );

    // An aggregated role picks up a rule added later to a role it selects.
    api.kubectl_ok(&[
        "create",
        "clusterrole",
        "monitoring",
        "--aggregation-rule=example.com/aggregate-to-monitoring=true",
    ]);
    api.kubectl_ok(&[
        "-n",
        "team",
        "create",
        "rolebinding",
        "bob-monitors",
        "--clusterrole=monitoring",
        "--user=bob",
    ]);
    let bob_can = || {
        api.kubectl(&[
            "--token=bob-token",
            "-n",
            "team",
            "auth",
            "can-i",
            "list",
            "pods",
        ])
        .1
        .trim()
        .to_string()
    };
    assert_eq!(bob_can(), "no");
    api.kubectl_ok(&[
        "create",
        "clusterrole",
        "pod-lister",
        "--verb=list",
        "--resource=pods",
    ]);
    api.kubectl_ok(&[
        "label",
        "clusterrole",
        "pod-lister",
        "example.com/aggregate-to-monitoring=true",
    ]);
    let deadline = Instant::now() + WAIT;
    while bob_can() != "yes" {
        assert!(
            Instant::now() < deadline,
            "the aggregated role never picked up the rule"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // The bootstrap roles are there, and `view` is itself aggregated.
    let view = api.kubectl_ok(&[
        "get",
        "clusterrole",
        "view",
        "-o",
        "jsonpath={.rules[*].resources}",
    ]);
    assert!(view.contains("configmaps"), "{view}");
}

#[tokio::test(flavor = "multi_thread")]
async fn anonymous_requests_follow_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("node"));
    let on = ApiServer::start(
        &dir.path().join("on"),
        &[node.url()],
        &["--authorization-mode", "RBAC"],
    );
    let off = ApiServer::start(
        &dir.path().join("off"),
        &[node.url()],
        &["--anonymous-auth=false"],
    );
    for (server, status_of_list) in [(&on, 403), (&off, 401)] {
        let out = std::process::Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(server.dir.join("pki/ca.crt"))
            .arg(format!("{}/api/v1/namespaces", server.url()))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            status_of_list.to_string()
        );
    }
    let healthz = std::process::Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(on.dir.join("pki/ca.crt"))
        .arg(format!("{}/healthz", on.url()))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&healthz.stdout),
        "ok",
        "anonymous may read health"
    );
}

/// Namespace `team` with a ConfigMap and the service account `robot` bound to `view`
/// there.
fn robot_viewing_team(api: &ApiServer) {
    api.kubectl_ok(&["create", "namespace", "team"]);
    api.kubectl_ok(&["-n", "team", "create", "serviceaccount", "robot"]);
    api.kubectl_ok(&["-n", "team", "create", "configmap", "settings"]);
    api.kubectl_ok(&[
        "-n",
        "team",
        "create",
        "rolebinding",
        "robot-views",
        "--clusterrole=view",
        "--serviceaccount=team:robot",
    ]);
}

/// The ConfigMaps of `team` the Python client lists with `token`, or `status <code>`.
fn configmaps_seen_with(api: &ApiServer, token: &str) -> String {
    let ca = api.dir.join("pki/ca.crt");
    let (ok, out, err) = ballast_tests::run_python(
        "kube_token.py",
        &[&api.url(), ca.to_str().unwrap(), token, "team"],
    );
    assert!(ok, "{err}");
    out.trim().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_account_token_works_until_its_account_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, api) = start(dir.path());
    robot_viewing_team(&api);
    // kubectl create token: a TokenRequest (protobuf body).
    let token = api
        .kubectl_ok(&["-n", "team", "create", "token", "robot", "--duration=10m"])
        .trim()
        .to_string();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    let list = |token: &str| configmaps_seen_with(&api, token);
    // The namespace's ConfigMaps: the test's and the root CA every namespace gets.
    assert_eq!(list(&token), "kube-root-ca.crt\nsettings");
    let whoami = api.kubectl_ok(&["--token", &token, "auth", "whoami"]);
    assert!(
        whoami.contains("system:serviceaccount:team:robot")
            && whoami.contains("system:serviceaccounts:team"),
        "{whoami}"
    );
    // Forbidden outside its grant, and a token for another audience is not accepted.
    assert!(list(&token).contains("settings"));
    let other = api
        .kubectl_ok(&["-n", "team", "create", "token", "robot", "--audience=vault"])
        .trim()
        .to_string();
    assert_eq!(list(&other), "status 401");
    // Deleted, the account's tokens die with it.
    api.kubectl_ok(&["-n", "team", "delete", "serviceaccount", "robot"]);
    assert_eq!(list(&token), "status 401");
    // Recreated with the same name, it is another account (another uid): still refused.
    api.kubectl_ok(&["-n", "team", "create", "serviceaccount", "robot"]);
    assert_eq!(list(&token), "status 401");
}

/// A Secret holding a legacy token for `account`.
fn token_secret(name: &str, account: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: team\n  \
         annotations:\n    kubernetes.io/service-account.name: {account}\n\
         type: kubernetes.io/service-account-token\n"
    )
}

/// Applies a token Secret for `account`.
fn apply_token_secret(api: &ApiServer, name: &str, account: &str) {
    let (ok, _, err) = api.kubectl_stdin(&["apply", "-f", "-"], Some(&token_secret(name, account)));
    assert!(ok, "{err}");
}

/// Waits for the tokens controller to fill the Secret `name`; its token.
fn filled_token(api: &ApiServer, name: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, token, _) = api.kubectl(&[
            "-n",
            "team",
            "get",
            "secret",
            name,
            "-o",
            "go-template={{if .data.token}}{{.data.token | base64decode}}{{end}}",
        ]);
        if !token.is_empty() {
            return token;
        }
        assert!(Instant::now() < deadline, "{name} was never filled");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Waits until the Secret `name` is gone.
fn wait_gone(api: &ApiServer, name: &str) {
    let deadline = Instant::now() + WAIT;
    while api.kubectl(&["-n", "team", "get", "secret", name]).0 {
        assert!(Instant::now() < deadline, "{name} was never deleted");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn legacy_tokens_live_with_their_secret_and_bound_tokens_with_their_pod() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, api) = start(dir.path());
    robot_viewing_team(&api);
    let ca = api.dir.join("pki/ca.crt");
    let list = |token: &str| configmaps_seen_with(&api, token);
    apply_token_secret(&api, "robot-token", "robot");
    let legacy = filled_token(&api, "robot-token");
    assert_eq!(list(&legacy), "kube-root-ca.crt\nsettings");
    let whoami = api.kubectl_ok(&["--token", &legacy, "auth", "whoami"]);
    assert!(
        whoami.contains("system:serviceaccount:team:robot"),
        "{whoami}"
    );
    // The Secret also carries the namespace, the CA and the account's uid.
    let uid = api.kubectl_ok(&[
        "-n",
        "team",
        "get",
        "sa",
        "robot",
        "-o",
        "jsonpath={.metadata.uid}",
    ]);
    let secret = api.kubectl_ok(&[
        "-n",
        "team",
        "get",
        "secret",
        "robot-token",
        "-o",
        "go-template={{.data.namespace | base64decode}} {{index .metadata.annotations \"kubernetes.io/service-account.uid\"}}\n{{index .data \"ca.crt\" | base64decode}}",
    ]);
    let ca_pem = std::fs::read_to_string(&ca).unwrap();
    assert_eq!(secret, format!("team {uid}\n{ca_pem}"));
    // The token dies with its Secret.
    api.kubectl_ok(&["-n", "team", "delete", "secret", "robot-token"]);
    assert_eq!(list(&legacy), "status 401");

    // A token Secret must name its account; one naming no account is deleted.
    let (ok, _, err) = api.kubectl_stdin(
        &["create", "-f", "-"],
        Some(&token_secret("nameless", "robot").replace(
            "    kubernetes.io/service-account.name: robot\n",
            "    note: none\n",
        )),
    );
    assert!(
        !ok && err
            .contains("metadata.annotations[kubernetes.io/service-account.name]: Required value"),
        "{err}"
    );
    apply_token_secret(&api, "ghost-token", "ghost");
    wait_gone(&api, "ghost-token");

    // A token bound to a pod dies with the pod (the account lives on).
    api.kubectl_ok(&[
        "-n",
        "team",
        "run",
        "worker",
        "--image=busybox",
        "--overrides={\"spec\":{\"serviceAccountName\":\"robot\"}}",
    ]);
    let bound = api
        .kubectl_ok(&[
            "-n",
            "team",
            "create",
            "token",
            "robot",
            "--bound-object-kind=Pod",
            "--bound-object-name=worker",
        ])
        .trim()
        .to_string();
    assert_eq!(list(&bound), "kube-root-ca.crt\nsettings");
    api.kubectl_ok(&["-n", "team", "delete", "pod", "worker", "--wait=false"]);
    assert_eq!(list(&bound), "status 401");

    // With its account gone, the account's token Secrets go too.
    apply_token_secret(&api, "robot-token-2", "robot");
    let second = filled_token(&api, "robot-token-2");
    assert_eq!(list(&second), "kube-root-ca.crt\nsettings");
    api.kubectl_ok(&["-n", "team", "delete", "serviceaccount", "robot"]);
    wait_gone(&api, "robot-token-2");
    assert_eq!(list(&second), "status 401");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_terminating_namespace_refuses_creates_and_leaves_the_store_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let (node, api) = start(dir.path());
    api.kubectl_ok(&["create", "namespace", "leaving"]);
    // An object held by a finalizer keeps the namespace Terminating.
    let held = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  namespace: leaving\n  finalizers: [example.com/hold]\n";
    assert!(api.kubectl_stdin(&["create", "-f", "-"], Some(held)).0);
    api.kubectl_ok(&["delete", "namespace", "leaving", "--wait=false"]);
    let phase = api.kubectl_ok(&[
        "get",
        "namespace",
        "leaving",
        "-o",
        "jsonpath={.status.phase}",
    ]);
    assert_eq!(phase, "Terminating");
    let deadline = Instant::now() + WAIT;
    // The controller marks the held object; then the store stops moving.
    loop {
        let marked = api.kubectl_ok(&[
            "-n",
            "leaving",
            "get",
            "configmap",
            "held",
            "-o",
            "jsonpath={.metadata.deletionTimestamp}",
        ]);
        if !marked.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the held object was never marked"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let before = node.revision().await;
    let (ok, _, err) = api.kubectl(&["-n", "leaving", "create", "configmap", "late"]);
    assert!(!ok);
    assert!(
        err.contains(
            "unable to create new content in namespace leaving because it is being terminated"
        ),
        "{err}"
    );
    // Validation and authentication refusals move nothing either.
    let (ok, _, _) = api.kubectl(&["-n", "default", "create", "configmap", "Bad_Name"]);
    assert!(!ok);
    let (ok, _, _) = api.kubectl(&[
        "--token=nobody",
        "-n",
        "default",
        "create",
        "configmap",
        "x",
    ]);
    assert!(!ok);
    assert_eq!(node.written_since(before).await, Vec::<String>::new());
    // Released, the object goes and the namespace with it.
    api.kubectl_ok(&[
        "-n",
        "leaving",
        "patch",
        "configmap",
        "held",
        "--type",
        "json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ]);
    let deadline = Instant::now() + WAIT;
    while api.kubectl(&["get", "namespace", "leaving"]).0 {
        assert!(Instant::now() < deadline, "the namespace stayed");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_audit_log_records_who_did_what_at_the_policys_level() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("node"));
    let api_dir = dir.path().join("api");
    std::fs::create_dir_all(&api_dir).unwrap();
    std::fs::write(api_dir.join("tokens.csv"), "alice-token,alice,1001\n").unwrap();
    std::fs::write(
        api_dir.join("policy.yaml"),
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n\
         - level: None\n  nonResourceURLs: ['/readyz*', '/healthz*', '/livez*']\n\
         - level: RequestResponse\n  resources:\n  - group: ''\n    resources: ['configmaps']\n\
         - level: Metadata\n",
    )
    .unwrap();
    let log = api_dir.join("audit.log");
    let api = ApiServer::start(
        &api_dir,
        &[node.url()],
        &[
            "--authorization-mode",
            "RBAC",
            "--token-auth-file",
            api_dir.join("tokens.csv").to_str().unwrap(),
            "--audit-policy-file",
            api_dir.join("policy.yaml").to_str().unwrap(),
            "--audit-log-path",
            log.to_str().unwrap(),
        ],
    );
    api.kubectl_ok(&["create", "configmap", "audited", "--from-literal=k=v"]);
    let (ok, _, _) = api.kubectl(&["--token=alice-token", "delete", "configmap", "audited"]);
    assert!(!ok);
    api.kubectl_ok(&["get", "namespaces"]);
    let deadline = Instant::now() + WAIT;
    let events = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let events: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let has = |verb: &str, who: &str| {
            events
                .iter()
                .any(|e| e["verb"] == verb && e["user"]["username"] == who)
        };
        if has("create", "kubernetes-admin")
            && has("delete", "alice")
            && has("list", "kubernetes-admin")
        {
            break events;
        }
        assert!(Instant::now() < deadline, "events missing:\n{text}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(events
        .iter()
        .all(|e| e["apiVersion"] == "audit.k8s.io/v1" && e["kind"] == "Event"));
    assert!(
        !events
            .iter()
            .any(|e| e["requestURI"].as_str().unwrap().starts_with("/readyz")),
        "None level logs nothing"
    );
    let create = events
        .iter()
        .find(|e| e["verb"] == "create" && e["objectRef"]["resource"] == "configmaps")
        .unwrap();
    assert_eq!(create["level"], "RequestResponse");
    assert_eq!(create["objectRef"]["namespace"], "default");
    assert_eq!(create["responseStatus"]["code"], 201);
    assert_eq!(create["requestObject"]["data"]["k"], "v");
    assert_eq!(create["responseObject"]["metadata"]["name"], "audited");
    assert_eq!(
        create["annotations"]["authorization.k8s.io/decision"],
        "allow"
    );
    assert!(
        create["stageTimestamp"].as_str().unwrap()
            >= create["requestReceivedTimestamp"].as_str().unwrap()
    );
    let refused = events
        .iter()
        .find(|e| e["verb"] == "delete" && e["user"]["username"] == "alice")
        .unwrap();
    assert_eq!(refused["responseStatus"]["code"], 403);
    assert_eq!(
        refused["annotations"]["authorization.k8s.io/decision"],
        "forbid"
    );
    assert_eq!(refused["objectRef"]["name"], "audited");
    let listed = events
        .iter()
        .find(|e| e["verb"] == "list" && e["objectRef"]["resource"] == "namespaces")
        .unwrap();
    assert_eq!(listed["level"], "Metadata");
    assert!(listed.get("responseObject").is_none() && listed.get("requestObject").is_none());
}
