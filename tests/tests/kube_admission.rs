//! Admission in ballast-apiserver: a ResourceQuota is never exceeded, even by creates
//! racing each other (each create is charged to the quota in its own transaction), and
//! deletes give the room back; LimitRanger and ServiceAccount on pods; admission webhooks
//! (by URL and through a Service) and a ValidatingAdmissionPolicy. Every refusal leaves
//! the store as it was.

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
    let before = unchanged_from(&node);
    let (ok, _, err) = api.kubectl(&["-n", "quota", "create", "configmap", "one-too-many"]);
    assert!(!ok && err.contains("exceeded quota: cms"), "{err}");
    before.check();
}

/// The store's revision before a refused request, to show it wrote nothing.
struct Unchanged<'a> {
    node: &'a Node,
    revision: i64,
}

fn unchanged_from(node: &Node) -> Unchanged<'_> {
    let revision = block_on(node.revision());
    Unchanged { node, revision }
}

impl Unchanged<'_> {
    fn check(&self) {
        let written = block_on(self.node.written_since(self.revision));
        assert_eq!(written, Vec::<String>::new(), "a refused request wrote");
    }
}

/// These tests are synchronous; the store is read through the async client.
fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Runtime::new().unwrap().block_on(future)
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
    let before = unchanged_from(&node);
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
    before.check();
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

/// A webhook certificate for 127.0.0.1 and the Service `webhook` of `hooked`, signed by
/// the API server's development CA.
fn webhook_certificate(api: &ApiServer) -> (std::path::PathBuf, std::path::PathBuf) {
    let pki = api.dir.join("pki");
    let run = |args: &[&str]| {
        let status = std::process::Command::new("openssl")
            .args(args)
            .current_dir(&pki)
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "openssl {args:?}");
    };
    std::fs::write(
        pki.join("webhook.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:webhook.hooked.svc\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "webhook.key",
        "-out",
        "webhook.csr",
        "-subj",
        "/CN=webhook",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "webhook.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "webhook.crt",
        "-days",
        "1",
        "-extfile",
        "webhook.ext",
    ]);
    (pki.join("webhook.crt"), pki.join("webhook.key"))
}

/// The Service `webhook` in `hooked`, without a selector, and its Endpoints at
/// 127.0.0.1:`port`, as a webhook running in the cluster would be published.
fn webhook_service(port: u16) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: webhook\n  namespace: hooked\nspec:\n\
         \x20 ports:\n  - name: https\n    port: 8443\n    targetPort: {port}\n---\n\
         apiVersion: v1\nkind: Endpoints\nmetadata:\n  name: webhook\n  namespace: hooked\nsubsets:\n\
         - addresses:\n  - ip: 127.0.0.1\n  ports:\n  - name: https\n    port: {port}\n"
    )
}

/// The validating webhook is reached through the Service, the mutating one by URL.
fn webhook_configs(port: u16, ca_bundle: &str, policy: &str) -> String {
    let hook = |kind: &str, name: &str, path: &str| {
        let reach = if kind.starts_with("Validating") {
            format!("service:\n      namespace: hooked\n      name: webhook\n      port: 8443\n      path: /{path}")
        } else {
            format!("url: https://127.0.0.1:{port}/{path}")
        };
        format!(
            "apiVersion: admissionregistration.k8s.io/v1\nkind: {kind}\nmetadata:\n  name: {name}\nwebhooks:\n\
             - name: {name}\n  clientConfig:\n    {reach}\n    caBundle: {ca_bundle}\n\
             \x20 rules:\n  - operations: [CREATE, UPDATE]\n    apiGroups: ['']\n    apiVersions: [v1]\n    resources: [configmaps]\n\
             \x20 namespaceSelector:\n    matchLabels: {{webhooks: \"on\"}}\n  failurePolicy: {policy}\n  sideEffects: None\n\
             \x20 admissionReviewVersions: [v1]\n  timeoutSeconds: 5\n"
        )
    };
    format!(
        "{}---\n{}",
        hook(
            "ValidatingWebhookConfiguration",
            "deny.example.com",
            "validate"
        ),
        hook(
            "MutatingWebhookConfiguration",
            "label.example.com",
            "mutate"
        )
    )
}

#[test]
fn webhooks_deny_and_mutate_and_follow_their_failure_policy() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("node"));
    let api = ApiServer::start(&dir.path().join("api"), &[node.url()], &[]);
    let (cert, key) = webhook_certificate(&api);
    let port = ballast_tests::free_port();
    let mut server = std::process::Command::new("python3")
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("python/webhook.py"))
        .args([
            &port.to_string(),
            cert.to_str().unwrap(),
            key.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.stdout.take().unwrap()),
        &mut ready,
    )
    .unwrap();
    assert_eq!(ready.trim(), "ready");
    let bundle = std::process::Command::new("base64")
        .args(["-w0"])
        .arg(api.dir.join("pki/ca.crt"))
        .output()
        .unwrap();
    let bundle = String::from_utf8(bundle.stdout).unwrap();

    api.kubectl_stdin(&["create", "-f", "-"], Some("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: hooked\n  labels: {webhooks: \"on\"}\n"));
    let (ok, _, err) = api.kubectl_stdin(&["create", "-f", "-"], Some(&webhook_service(port)));
    assert!(ok, "{err}");
    assert!(
        api.kubectl_stdin(
            &["apply", "-f", "-"],
            Some(&webhook_configs(port, &bundle, "Fail"))
        )
        .0
    );
    // The configurations reach the API server through its watch cache: wait for them.
    let deadline = Instant::now() + WAIT;
    for i in 0.. {
        let name = format!("probe-{i}");
        api.kubectl_ok(&["-n", "hooked", "create", "configmap", &name]);
        if api.kubectl_ok(&[
            "-n",
            "hooked",
            "get",
            "configmap",
            &name,
            "-o",
            "jsonpath={.metadata.labels.mutated}",
        ]) == "yes"
        {
            break;
        }
        assert!(Instant::now() < deadline, "the webhooks never applied");
    }
    // Denied by the validating webhook (after the mutating one ran), and nothing written.
    let denied = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: refused\n  namespace: hooked\n  labels: {deny: \"yes\"}\n";
    let before = unchanged_from(&node);
    let (ok, _, err) = api.kubectl_stdin(&["create", "-f", "-"], Some(denied));
    assert!(!ok);
    assert!(err.contains("admission webhook \"deny.example.com\" denied the request: configmaps labelled deny=yes are refused"), "{err}");
    before.check();
    // /metrics counts the calls and the authorization decisions.
    let (status, _, metrics) = api.curl("GET", "/metrics", &[], None);
    assert_eq!(status, 200, "{metrics}");
    let value = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{name} in {metrics}"))
    };
    assert!(value("apiserver_admission_webhook_admission_duration_seconds_count") >= 3.0);
    assert!(value("apiserver_admission_webhook_admission_duration_seconds_sum") > 0.0);
    assert!(value("apiserver_authorization_decisions_total{decision=\"allowed\"}") >= 3.0);
    // Updates go through them too; another namespace does not.
    api.kubectl_ok(&[
        "-n",
        "hooked",
        "label",
        "configmap",
        "probe-0",
        "extra=1",
        "--overwrite",
    ]);
    let (ok, _, err) = api.kubectl(&["-n", "hooked", "label", "configmap", "probe-0", "deny=yes"]);
    assert!(!ok && err.contains("denied the request"), "{err}");
    api.kubectl_ok(&["create", "configmap", "elsewhere"]);
    assert_eq!(
        api.kubectl_ok(&[
            "get",
            "configmap",
            "elsewhere",
            "-o",
            "jsonpath={.metadata.labels}"
        ]),
        ""
    );

    // The webhook gone: Fail refuses, Ignore lets the write through unmutated.
    let _ = server.kill();
    let _ = server.wait();
    let (ok, _, err) = api.kubectl(&["-n", "hooked", "create", "configmap", "while-down"]);
    assert!(!ok && err.contains("failed calling webhook"), "{err}");
    assert!(
        api.kubectl_stdin(
            &["apply", "-f", "-"],
            Some(&webhook_configs(port, &bundle, "Ignore"))
        )
        .0
    );
    let deadline = Instant::now() + WAIT;
    while !api
        .kubectl(&["-n", "hooked", "create", "configmap", "ignored"])
        .0
    {
        assert!(Instant::now() < deadline, "Ignore never took effect");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        api.kubectl_ok(&[
            "-n",
            "hooked",
            "get",
            "configmap",
            "ignored",
            "-o",
            "jsonpath={.metadata.labels}"
        ]),
        ""
    );
}

#[test]
fn a_validating_admission_policy_refuses_more_than_five_replicas() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("node"));
    let api = ApiServer::start(&dir.path().join("api"), &[node.url()], &[]);
    let policy = "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicy\nmetadata:\n  name: max-replicas\nspec:\n  failurePolicy: Fail\n  matchConstraints:\n    resourceRules:\n    - apiGroups: [apps]\n      apiVersions: [v1]\n      operations: [CREATE, UPDATE]\n      resources: [deployments]\n  variables:\n  - name: wanted\n    expression: object.spec.replicas\n  validations:\n  - expression: variables.wanted <= 5\n    message: at most 5 replicas\n---\napiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicyBinding\nmetadata:\n  name: max-replicas-everywhere\nspec:\n  policyName: max-replicas\n  validationActions: [Deny]\n";
    assert!(api.kubectl_stdin(&["apply", "-f", "-"], Some(policy)).0);
    let deadline = Instant::now() + WAIT;
    loop {
        let (ok, _, err) = api.kubectl(&[
            "create",
            "deployment",
            "big",
            "--image=nginx",
            "--replicas=6",
        ]);
        if !ok {
            assert!(
                err.contains("ValidatingAdmissionPolicy 'max-replicas' with binding 'max-replicas-everywhere' denied request: at most 5 replicas"),
                "{err}"
            );
            break;
        }
        // Created before the policy reached the cache: remove it and try again.
        api.kubectl_ok(&["delete", "deployment", "big"]);
        assert!(Instant::now() < deadline, "the policy never applied");
    }
    api.kubectl_ok(&[
        "create",
        "deployment",
        "small",
        "--image=nginx",
        "--replicas=3",
    ]);
    let before = unchanged_from(&node);
    let (ok, _, err) = api.kubectl(&[
        "patch",
        "deployment",
        "small",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"replicas":9}}"#,
    ]);
    assert!(!ok && err.contains("at most 5 replicas"), "{err}");
    before.check();
    assert_eq!(
        api.kubectl_ok(&[
            "get",
            "deployment",
            "small",
            "-o",
            "jsonpath={.spec.replicas}"
        ]),
        "3"
    );
    // Other kinds pass.
    api.kubectl_ok(&["create", "configmap", "unrelated"]);
}
