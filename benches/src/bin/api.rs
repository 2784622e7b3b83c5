//! `api`: ballast-apiserver over a 3-member Ballast cluster on this machine, measured as
//! kube-apiserver is: creates and gets from concurrent clients, LISTs of 10,000 objects
//! (from the store and from the watch cache), and the fan-out of each change to 1,000
//! watchers, every one of which must see every event. Prints p50/p99 beside the targets.
//!
//! `cargo run --release -p ballast-benches --bin api` (or `make bench-api`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ballast_benches::kube::KubeClient;
use ballast_benches::webhook::Webhooks;
use ballast_tests::{ApiServer, TestCluster};
use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;
use http::{Method, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::{json, Value};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "api",
    about = "ballast-apiserver: creates, gets, lists and watch fan-out"
)]
struct Args {
    /// Objects created (and then listed).
    #[arg(long, default_value_t = 10_000)]
    objects: usize,
    /// Concurrent clients for creates and gets.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// HTTP/2 connections the clients share.
    #[arg(long, default_value_t = 8)]
    conns: usize,
    /// LISTs of the whole collection measured, each way.
    #[arg(long, default_value_t = 20)]
    lists: usize,
    /// Watchers in the fan-out.
    #[arg(long, default_value_t = 1_000)]
    watchers: usize,
    /// Changes made while they watch.
    #[arg(long, default_value_t = 100)]
    changes: usize,
    /// The API server's `--authorization-mode` (RBAC: the bench's admin is authorized
    /// through the cluster-admin binding, as in a kubeadm cluster). Several, comma
    /// separated: each round runs each in turn, and create p50 is compared at the end.
    #[arg(long, value_delimiter = ',', default_value = "AlwaysAllow")]
    authorization_mode: Vec<String>,
    /// Rounds of every mode.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Two admission webhooks on every create (a mutating one adding a label, a
    /// validating one allowing), served over HTTPS by the bench itself.
    #[arg(long)]
    webhooks: bool,
}

/// Create p99 target at 32 clients on 3 members.
const CREATE_P99_MS: f64 = 20.0;
/// LIST of 10,000 configmaps.
const LIST_MS: f64 = 300.0;
/// Event fan-out p99 to 1,000 watchers.
const FANOUT_P99_MS: f64 = 100.0;
/// Changes per second during the fan-out.
const CHANGE_RATE: u64 = 20;
/// Watch streams per connection.
const WATCHERS_PER_CONN: usize = 50;
const NAMESPACE: &str = "bench";

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_micros() as u64
}

fn configmap(name: &str, stamp: u64) -> Bytes {
    Bytes::from(
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "annotations": {"bench/sent-us": stamp.to_string()}},
            "data": {"payload": "x".repeat(256)},
        })
        .to_string(),
    )
}

fn row(what: &str, h: &Histogram<u64>, ops: u64, elapsed: Duration, target: Option<(f64, f64)>) {
    let verdict = match target {
        Some((value, limit)) => format!(
            "{} (target < {limit} ms)",
            if value < limit { "met" } else { "NOT met" }
        ),
        None => String::new(),
    };
    println!(
        "| {what} | {ops} | {:.0} | {:.2} | {:.2} | {:.2} | {verdict} |",
        ops as f64 / elapsed.as_secs_f64(),
        ms(h.value_at_quantile(0.5)),
        ms(h.value_at_quantile(0.99)),
        ms(h.max()),
    );
}

async fn clients(api: &ApiServer, count: usize) -> Vec<KubeClient> {
    let tls = ballast_benches::kube::tls_config(&api.dir.join("pki")).expect("PKI");
    let address = ([127, 0, 0, 1], api.port).into();
    let mut out = Vec::new();
    for _ in 0..count {
        out.push(
            KubeClient::connect(address, tls.clone())
                .await
                .expect("connect"),
        );
    }
    out
}

/// Runs `total` requests from `workers` tasks; returns their latencies and the time taken.
async fn drive<F, Fut>(
    conns: &[KubeClient],
    workers: usize,
    total: usize,
    op: F,
) -> (Histogram<u64>, Duration)
where
    F: Fn(KubeClient, usize) -> Fut + Send + Sync + 'static + Clone,
    Fut: std::future::Future<Output = StatusCode> + Send,
{
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let conn = conns[w % conns.len()].clone();
        let next = next.clone();
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut h = histogram();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= total {
                    return h;
                }
                let at = Instant::now();
                let status = op(conn.clone(), i).await;
                assert!(status.is_success(), "request {i}: {status}");
                h.record(at.elapsed().as_micros().max(1) as u64)
                    .expect("record");
            }
        }));
    }
    let mut all = histogram();
    for task in tasks {
        all.add(task.await.expect("worker")).expect("merge");
    }
    (all, started.elapsed())
}

/// The stage timings of the API server's `/metrics`.
#[derive(Debug, Default, Clone, Copy)]
struct Stages {
    decisions: f64,
    authorization_seconds: f64,
    webhook_calls: f64,
    webhook_seconds: f64,
}

impl Stages {
    fn since(self, before: &Stages) -> Stages {
        Stages {
            decisions: self.decisions - before.decisions,
            authorization_seconds: self.authorization_seconds - before.authorization_seconds,
            webhook_calls: self.webhook_calls - before.webhook_calls,
            webhook_seconds: self.webhook_seconds - before.webhook_seconds,
        }
    }

    fn authorization_us(&self) -> f64 {
        self.authorization_seconds / self.decisions.max(1.0) * 1e6
    }

    fn webhook_us(&self) -> f64 {
        self.webhook_seconds / self.webhook_calls.max(1.0) * 1e6
    }
}

async fn metrics(conn: &KubeClient) -> Stages {
    let (status, body) = conn
        .send(Method::GET, "/metrics", None)
        .await
        .expect("metrics");
    assert!(status.is_success(), "/metrics: {status}");
    let text = String::from_utf8_lossy(&body);
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{name} in /metrics"))
    };
    Stages {
        decisions: value("apiserver_authorization_duration_seconds_count"),
        authorization_seconds: value("apiserver_authorization_duration_seconds_sum"),
        webhook_calls: value("apiserver_admission_webhook_admission_duration_seconds_count"),
        webhook_seconds: value("apiserver_admission_webhook_admission_duration_seconds_sum"),
    }
}

/// Registers the webhooks and waits until creates go through both; how many configmaps
/// it created on the way.
async fn hook(conn: &KubeClient, webhooks: &Webhooks) -> usize {
    for (plural, config) in webhooks.configurations(NAMESPACE) {
        let (status, body) = conn
            .send(
                Method::POST,
                &format!("/apis/admissionregistration.k8s.io/v1/{plural}"),
                Some(("application/json", Bytes::from(config.to_string()))),
            )
            .await
            .expect("create webhook configuration");
        assert!(status.is_success(), "{plural}: {status} {body:?}");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut probes = 0;
    loop {
        probes += 1;
        let before = webhooks.calls();
        let body = configmap(&format!("probe-{probes}"), 0);
        let path = format!("/api/v1/namespaces/{NAMESPACE}/configmaps");
        let (status, _) = conn
            .send(Method::POST, &path, Some(("application/json", body)))
            .await
            .expect("probe");
        assert!(status.is_success(), "probe: {status}");
        let after = webhooks.calls();
        if after.0 > before.0 && after.1 > before.1 {
            return probes;
        }
        assert!(Instant::now() < deadline, "the webhooks never took effect");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let mut create_p50 = vec![Vec::new(); args.authorization_mode.len()];
    for round in 1..=args.rounds {
        for (i, mode) in args.authorization_mode.iter().enumerate() {
            println!("\n## round {round}, authorization {mode}\n");
            create_p50[i].push(run(&args, mode).await);
        }
    }
    if args.rounds * args.authorization_mode.len() > 1 {
        let median = |v: &[f64]| {
            let mut v = v.to_vec();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let first = median(&create_p50[0]);
        println!(
            "\n| authorization | create p50 ms by round | median | against {} |",
            args.authorization_mode[0]
        );
        println!("|---|---|---|---|");
        for (mode, p50s) in args.authorization_mode.iter().zip(&create_p50) {
            let rounds: Vec<String> = p50s.iter().map(|p| format!("{p:.2}")).collect();
            let m = median(p50s);
            println!(
                "| {mode} | {} | {m:.2} | {:+.1}% |",
                rounds.join(" / "),
                (m / first - 1.0) * 100.0
            );
        }
    }
}

/// One run against a new cluster and API server; create p50 in ms.
async fn run(args: &Args, mode: &str) -> f64 {
    let dir = tempfile::tempdir().expect("temp dir");
    let cluster = TestCluster::start(&dir.path().join("ballast"), 3, &[]);
    let api = ApiServer::start(
        &dir.path().join("api"),
        &cluster.endpoints(),
        &["--authorization-mode", mode],
    );
    let conns = clients(&api, args.conns).await;
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
        .to_string();
    let (status, _) = conns[0]
        .send(
            Method::POST,
            "/api/v1/namespaces",
            Some(("application/json", Bytes::from(ns))),
        )
        .await
        .expect("create namespace");
    assert!(status.is_success(), "create namespace: {status}");
    let collection = format!("/api/v1/namespaces/{NAMESPACE}/configmaps");
    let (webhooks, probes) = if args.webhooks {
        let webhooks = Webhooks::start().await.expect("webhooks");
        let probes = hook(&conns[0], &webhooks).await;
        (Some(webhooks), probes)
    } else {
        (None, 0)
    };
    let calls_before = webhooks.as_ref().map(Webhooks::calls);
    let metrics_before = metrics(&conns[0]).await;

    println!(
        "ballast-apiserver over 3 Ballast members, {} clients on {} connections, authorization {mode}, {}\n",
        args.clients,
        args.conns,
        if args.webhooks { "two admission webhooks" } else { "no webhooks" }
    );
    println!("| operation | ops | ops/s | p50 ms | p99 ms | max ms | target |");
    println!("|---|---|---|---|---|---|---|");

    let path = collection.clone();
    let (h, elapsed) = drive(&conns, args.clients, args.objects, move |c, i| {
        let path = path.clone();
        async move {
            let body = configmap(&format!("cm-{i:06}"), now_us());
            c.send(Method::POST, &path, Some(("application/json", body)))
                .await
                .expect("create")
                .0
        }
    })
    .await;
    let p99 = ms(h.value_at_quantile(0.99));
    let create_p50 = ms(h.value_at_quantile(0.5));
    row(
        "create",
        &h,
        args.objects as u64,
        elapsed,
        Some((p99, CREATE_P99_MS)),
    );
    let stages = metrics(&conns[0]).await.since(&metrics_before);
    println!(
        "\nAuthorization ({mode}): {} decisions, {:.1} us each on average ({:.3}% of create p50).",
        stages.decisions,
        stages.authorization_us(),
        stages.authorization_us() / 1000.0 / create_p50 * 100.0
    );
    if let (Some(webhooks), Some(before)) = (&webhooks, calls_before) {
        let after = webhooks.calls();
        let calls = (after.0 - before.0, after.1 - before.1);
        let objects = args.objects as u64;
        assert_eq!(
            calls,
            (objects, objects),
            "every create goes through both webhooks"
        );
        println!(
            "{} calls to the webhooks on {} connections, {:.2} ms each on average.",
            calls.0 + calls.1,
            webhooks.connections(),
            stages.webhook_us() / 1000.0
        );
    }

    let path = collection.clone();
    let objects = args.objects;
    let (h, elapsed) = drive(&conns, args.clients, args.objects, move |c, _| {
        let path = format!("{path}/cm-{:06}", fastrand::usize(..objects));
        async move { c.send(Method::GET, &path, None).await.expect("get").0 }
    })
    .await;
    row("get", &h, args.objects as u64, elapsed, None);

    let lists: &[(&str, &str)] = if args.lists == 0 {
        &[]
    } else {
        &[
            ("list (store)", ""),
            ("list (watch cache, rv=0)", "?resourceVersion=0"),
        ]
    };
    for &(what, query) in lists {
        // One unmeasured LIST first: the steady state is what is measured.
        conns[0]
            .send(Method::GET, &format!("{collection}{query}"), None)
            .await
            .expect("list");
        let mut h = histogram();
        let started = Instant::now();
        for _ in 0..args.lists {
            let at = Instant::now();
            let (status, body) = conns[0]
                .send(Method::GET, &format!("{collection}{query}"), None)
                .await
                .expect("list");
            assert!(status.is_success());
            h.record(at.elapsed().as_micros() as u64).expect("record");
            let list: Value = serde_json::from_slice(&body).expect("a list");
            // The bench's objects, and the root CA ConfigMap every namespace gets.
            assert_eq!(
                list["items"].as_array().map(Vec::len),
                Some(args.objects + 1 + probes),
                "{what}"
            );
        }
        let p99 = ms(h.value_at_quantile(0.99));
        row(
            &format!("{what} of {}", args.objects),
            &h,
            args.lists as u64,
            started.elapsed(),
            Some((p99, LIST_MS)),
        );
    }

    if args.watchers > 0 {
        fan_out(args, &api, &conns, &collection).await;
    }
    create_p50
}

/// Every watcher must see every change.
async fn fan_out(args: &Args, api: &ApiServer, conns: &[KubeClient], collection: &str) {
    let (_, body) = conns[0]
        .send(Method::GET, &format!("{collection}?limit=1"), None)
        .await
        .expect("list");
    let rv = serde_json::from_slice::<Value>(&body).expect("list")["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_string();
    let watch_conns = clients(api, args.watchers.div_ceil(WATCHERS_PER_CONN)).await;
    let mut watchers = Vec::new();
    for w in 0..args.watchers {
        let conn = watch_conns[w / WATCHERS_PER_CONN].clone();
        let path = format!("{collection}?watch=true&resourceVersion={rv}");
        let changes = args.changes;
        let response = conn.start(Method::GET, &path, None).await.expect("watch");
        watchers.push(tokio::spawn(async move {
            let mut body = response.into_body();
            let mut h = histogram();
            let mut pending = Vec::new();
            let mut seen = 0;
            while seen < changes {
                let Some(frame) = body.frame().await else {
                    break;
                };
                let Ok(data) = frame.map(|f| f.into_data().unwrap_or_default()) else {
                    break;
                };
                pending.extend_from_slice(&data);
                while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=end).collect();
                    let event: Value = serde_json::from_slice(&line).expect("an event");
                    if let Some(sent) =
                        event["object"]["metadata"]["annotations"]["bench/sent-us"].as_str()
                    {
                        let sent: u64 = sent.parse().expect("stamp");
                        h.record(now_us().saturating_sub(sent).max(1))
                            .expect("record");
                        seen += 1;
                    }
                }
            }
            (seen, h)
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = Instant::now();
    let path = format!("{collection}/cm-000000");
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / CHANGE_RATE));
    for _ in 0..args.changes {
        tick.tick().await;
        let patch = json!({"metadata": {"annotations": {"bench/sent-us": now_us().to_string()}}})
            .to_string();
        let (status, _) = conns[0]
            .send(
                Method::PATCH,
                &path,
                Some(("application/merge-patch+json", Bytes::from(patch))),
            )
            .await
            .expect("patch");
        assert!(status.is_success(), "patch: {status}");
    }
    let mut all = histogram();
    let mut complete = 0;
    for watcher in watchers {
        let (seen, h) = tokio::time::timeout(Duration::from_secs(60), watcher)
            .await
            .expect("a watcher stalled")
            .expect("watcher");
        if seen == args.changes {
            complete += 1;
        }
        all.add(h).expect("merge");
    }
    let p99 = ms(all.value_at_quantile(0.99));
    row(
        &format!("event to {} watchers", args.watchers),
        &all,
        all.len(),
        started.elapsed(),
        Some((p99, FANOUT_P99_MS)),
    );
    println!(
        "\n{complete} of {} watchers saw all {} changes.",
        args.watchers, args.changes
    );
    assert_eq!(complete, args.watchers, "a watcher missed an event");
}
