//! The load generator: etcd's `benchmark` workloads over the etcd v3 API, so the same
//! run measures Ballast or etcd. Latencies go into HDR histograms; a run ends with one
//! JSON line of results, including the generator's own CPU time so a saturated
//! generator shows.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ballast_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, PutOptions, Txn, TxnOp, WatchOptions,
};
use hdrhistogram::Histogram;

/// Longest latency a histogram records, in microseconds (60 s); longer ones are clamped.
const LATENCY_MAX_US: u64 = 60_000_000;
/// Significant figures the histograms keep.
const LATENCY_PRECISION: u8 = 3;

/// What to run.
#[derive(Debug, Clone)]
pub enum Workload {
    /// Puts of `value_size` bytes to keys of `key_size` bytes drawn from `key_space`.
    Put { sequential: bool },
    /// Single-key reads of keys that exist (written first).
    Range { serializable: bool },
    /// kube-apiserver's GuaranteedUpdate: read a key, then a txn that writes it only if
    /// its mod revision is unchanged (else reads it).
    TxnUpdate,
    /// `watchers` watchers on one prefix; puts at `rate` per second; measures the time
    /// from the put's call to each watcher's event. `slow` more watchers read only one
    /// response per [`SLOW_WATCHER_PAUSE`] and are not measured: they must not delay
    /// the others.
    Watch {
        watchers: usize,
        rate: u64,
        slow: usize,
    },
    /// Grant a lease, renew it once, revoke it.
    Lease,
}

impl Workload {
    /// The name its report carries.
    pub fn name(&self) -> String {
        match self {
            Workload::Put { sequential: true } => "put-sequential".to_string(),
            Workload::Put { sequential: false } => "put".to_string(),
            Workload::Range { serializable: true } => "range-serializable".to_string(),
            Workload::Range {
                serializable: false,
            } => "range-linearizable".to_string(),
            Workload::TxnUpdate => "txn-update".to_string(),
            Workload::Watch {
                watchers, slow: 0, ..
            } => format!("watch-{watchers}"),
            Workload::Watch { watchers, slow, .. } => {
                format!("watch-{watchers}-with-{slow}-slow")
            }
            Workload::Lease => "lease".to_string(),
        }
    }
}

/// How to run it.
#[derive(Debug, Clone)]
pub struct Settings {
    pub endpoints: Vec<String>,
    /// Concurrent workers.
    pub clients: usize,
    /// gRPC connections (clients are spread over them).
    pub connections: usize,
    pub key_size: usize,
    pub value_size: usize,
    pub key_space: u64,
    /// Stop after this many operations (in total)...
    pub total: Option<u64>,
    /// ...or after this long.
    pub duration: Option<Duration>,
    /// Print a progress line to stderr every second.
    pub progress: bool,
    /// Server processes whose CPU time the report gives (Linux /proc; none: not
    /// measured). CPU per operation varies less than throughput on a shared machine.
    pub server_pids: Vec<u32>,
    /// User and password to authenticate as (the server's auth on); the workload's
    /// name then ends in `-auth`.
    pub credentials: Option<(String, String)>,
}

impl Settings {
    fn connect_options(&self) -> ConnectOptions {
        ConnectOptions {
            credentials: self.credentials.clone(),
            ..ConnectOptions::default()
        }
    }
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct Report {
    pub workload: String,
    pub ops: u64,
    pub errors: u64,
    pub seconds: f64,
    pub qps: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub client_cpu_seconds: f64,
    /// CPU time of `Settings::server_pids` during the run, if any were given.
    pub server_cpu_seconds: Option<f64>,
}

impl Report {
    /// One JSON line.
    pub fn json(&self) -> String {
        let server = self
            .server_cpu_seconds
            .map(|s| format!(",\"server_cpu_seconds\":{s:.2}"))
            .unwrap_or_default();
        format!(
            "{{\"workload\":\"{}\",\"ops\":{},\"errors\":{},\"seconds\":{:.3},\"qps\":{:.1},\"p50_ms\":{:.3},\"p90_ms\":{:.3},\"p99_ms\":{:.3},\"p999_ms\":{:.3},\"client_cpu_seconds\":{:.2}{}}}",
            self.workload,
            self.ops,
            self.errors,
            self.seconds,
            self.qps,
            self.p50_ms,
            self.p90_ms,
            self.p99_ms,
            self.p999_ms,
            self.client_cpu_seconds,
            server
        )
    }

    /// Microseconds of server CPU per operation, if measured.
    pub fn server_cpu_us_per_op(&self) -> Option<f64> {
        self.server_cpu_seconds
            .map(|s| s * 1e6 / self.ops.max(1) as f64)
    }
}

/// CPU time (user + system) this process has used, in seconds (Linux /proc).
pub fn process_cpu_seconds() -> f64 {
    cpu_seconds_of(std::process::id())
}

/// CPU time (user + system) of process `pid`, in seconds; 0 once it is gone.
pub fn cpu_seconds_of(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat_cpu_seconds(&stat)
}

/// The user + system CPU time in a `/proc/<pid>/stat` line, in seconds.
fn stat_cpu_seconds(stat: &str) -> f64 {
    // Fields after the command name (which may contain spaces) start after ") ".
    let after = stat.rsplit_once(") ").map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after ") ".
    (ticks(11) + ticks(12)) / clock_ticks_per_second()
}

fn servers_cpu_seconds(pids: &[u32]) -> f64 {
    pids.iter().map(|&pid| cpu_seconds_of(pid)).sum()
}

/// Server CPU, in cores, below which servers count as quiet: an idle 3-member cluster
/// (heartbeats, timers) takes one to three hundredths of a core.
pub const QUIET_CORES: f64 = 0.1;
/// How long the servers' CPU is watched to judge them quiet (ten clock ticks per tenth
/// of a core).
pub const QUIET_WINDOW: Duration = Duration::from_secs(1);

/// Waits until the processes `pids` together use less than [`QUIET_CORES`] over a
/// [`QUIET_WINDOW`], for at most about `limit`; false if they never did. Before a
/// measured run, so that what a server still does after the last one (flushes,
/// compactions, garbage collection) does not land in the next run's numbers.
pub async fn wait_quiet(pids: &[u32], limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        let before = servers_cpu_seconds(pids);
        let started = Instant::now();
        tokio::time::sleep(QUIET_WINDOW).await;
        let cores = (servers_cpu_seconds(pids) - before) / started.elapsed().as_secs_f64();
        if cores < QUIET_CORES {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
    }
}

fn clock_ticks_per_second() -> f64 {
    // sysconf(_SC_CLK_TCK) is 100 on every Linux we run on.
    100.0
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_MAX_US, LATENCY_PRECISION)
        .expect("valid histogram bounds")
}

/// The key of index `i`: a fixed prefix, then the index, padded to `size` bytes.
pub fn key(i: u64, size: usize) -> String {
    let body = format!("/bench/{i:012}");
    if body.len() >= size {
        body
    } else {
        format!("{body}{}", "k".repeat(size - body.len()))
    }
}

/// Shared counters of a run.
struct Progress {
    done: AtomicU64,
    errors: AtomicU64,
    stop: AtomicBool,
}

/// Opens the connections, spread over the endpoints as etcd's `benchmark` spreads them:
/// connection i starts on endpoint i (mod their number) and fails over to the others.
async fn connections(settings: &Settings) -> Result<Vec<Client>, ballast_client::Error> {
    let mut clients = Vec::new();
    for i in 0..settings.connections.max(1) {
        let mut endpoints = settings.endpoints.clone();
        let count = endpoints.len();
        if count > 0 {
            endpoints.rotate_left(i % count);
        }
        clients.push(Client::connect(endpoints, settings.connect_options()).await?);
    }
    Ok(clients)
}

/// Runs a workload and reports.
pub async fn run(workload: Workload, settings: &Settings) -> Result<Report, ballast_client::Error> {
    let clients = connections(settings).await?;
    let name = match settings.credentials {
        Some(_) => format!("{}-auth", workload.name()),
        None => workload.name(),
    };
    if matches!(workload, Workload::Range { .. } | Workload::TxnUpdate) {
        populate(&clients[0], settings).await?;
    }
    let cpu_before = process_cpu_seconds();
    let servers_before = servers_cpu_seconds(&settings.server_pids);
    let progress = Arc::new(Progress {
        done: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let histogram = Arc::new(Mutex::new(new_histogram()));
    let started = Instant::now();
    let reporter = settings.progress.then(|| {
        let progress = progress.clone();
        tokio::spawn(async move {
            let mut last = 0;
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let done = progress.done.load(Ordering::Relaxed);
                eprint!(
                    "\r{done} ops, {} /s, {} errors   ",
                    done - last,
                    progress.errors.load(Ordering::Relaxed)
                );
                last = done;
            }
        })
    });
    let deadline = settings.duration.map(|d| started + d);
    match workload.clone() {
        Workload::Watch {
            watchers,
            rate,
            slow,
        } => {
            let shape = WatchShape {
                watchers,
                rate,
                slow,
            };
            watch_run(&clients, settings, shape, &progress, &histogram, deadline).await?;
        }
        _ => {
            let mut workers = Vec::new();
            for c in 0..settings.clients {
                let client = clients[c % clients.len()].clone();
                let progress = progress.clone();
                let histogram = histogram.clone();
                let workload = workload.clone();
                let settings = settings.clone();
                workers.push(tokio::spawn(async move {
                    worker(c, client, workload, settings, progress, histogram, deadline).await
                }));
            }
            for w in workers {
                let _ = w.await;
            }
        }
    }
    if let Some(reporter) = reporter {
        reporter.abort();
        eprintln!();
    }
    let seconds = started.elapsed().as_secs_f64();
    let ops = progress.done.load(Ordering::Relaxed);
    let h = histogram.lock().expect("histogram lock").clone();
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    Ok(Report {
        workload: name,
        ops,
        errors: progress.errors.load(Ordering::Relaxed),
        seconds,
        qps: ops as f64 / seconds,
        p50_ms: ms(0.5),
        p90_ms: ms(0.9),
        p99_ms: ms(0.99),
        p999_ms: ms(0.999),
        client_cpu_seconds: process_cpu_seconds() - cpu_before,
        server_cpu_seconds: (!settings.server_pids.is_empty())
            .then(|| servers_cpu_seconds(&settings.server_pids) - servers_before),
    })
}

/// Writes every key of the key space once, so reads and updates find them.
async fn populate(client: &Client, settings: &Settings) -> Result<(), ballast_client::Error> {
    let value = vec![b'v'; settings.value_size];
    let workers = 32u64.min(settings.key_space.max(1));
    let mut tasks = Vec::new();
    for w in 0..workers {
        let client = client.clone();
        let value = value.clone();
        let (space, size) = (settings.key_space, settings.key_size);
        tasks.push(tokio::spawn(async move {
            let mut i = w;
            while i < space {
                client.put(key(i, size), &value, PutOptions::new()).await?;
                i += workers;
            }
            Ok::<_, ballast_client::Error>(())
        }));
    }
    for t in tasks {
        t.await.expect("populate task")?;
    }
    Ok(())
}

/// Claims the next operation of the run; false when the run is over.
fn claim(progress: &Progress, settings: &Settings, deadline: Option<Instant>) -> bool {
    if progress.stop.load(Ordering::Relaxed) {
        return false;
    }
    if deadline.is_some_and(|d| Instant::now() >= d) {
        progress.stop.store(true, Ordering::Relaxed);
        return false;
    }
    if let Some(total) = settings.total {
        let done = progress.done.load(Ordering::Relaxed) + progress.errors.load(Ordering::Relaxed);
        if done >= total {
            progress.stop.store(true, Ordering::Relaxed);
            return false;
        }
    }
    true
}

/// Prints the first error of a run, so that a count of errors comes with a cause.
fn note_error(progress: &Progress, err: &ballast_client::Error) {
    if progress.errors.load(Ordering::Relaxed) == 0 {
        eprintln!("first error: {err}");
    }
}

async fn worker(
    id: usize,
    client: Client,
    workload: Workload,
    settings: Settings,
    progress: Arc<Progress>,
    histogram: Arc<Mutex<Histogram<u64>>>,
    deadline: Option<Instant>,
) {
    // Seeded per worker: reproducible, and no shared state.
    let mut rng = fastrand::Rng::with_seed(0x9E37_79B9_7F4A_7C15 ^ (id as u64 + 1));
    let value = vec![b'v'; settings.value_size];
    let mut local = new_histogram();
    let mut sequence = id as u64;
    while claim(&progress, &settings, deadline) {
        let started = Instant::now();
        let outcome: Result<(), ballast_client::Error> = match &workload {
            Workload::Put { sequential } => {
                let i = if *sequential {
                    sequence += settings.clients as u64;
                    sequence % settings.key_space.max(1)
                } else {
                    rng.u64(..settings.key_space.max(1))
                };
                client
                    .put(key(i, settings.key_size), &value, PutOptions::new())
                    .await
                    .map(drop)
            }
            Workload::Range { serializable } => {
                let mut options = GetOptions::new();
                if *serializable {
                    options = options.with_serializable();
                }
                client
                    .get(
                        key(rng.u64(..settings.key_space.max(1)), settings.key_size),
                        options,
                    )
                    .await
                    .map(drop)
            }
            Workload::TxnUpdate => {
                let k = key(rng.u64(..settings.key_space.max(1)), settings.key_size);
                match client.get(&k, GetOptions::new().with_serializable()).await {
                    Ok(current) => {
                        let revision = current.kvs.first().map_or(0, |kv| kv.mod_revision);
                        let update = Txn::new()
                            .when([Compare::mod_revision(&k, CompareOp::Equal, revision)])
                            .and_then([TxnOp::put(&k, &value, PutOptions::new())])
                            .or_else([TxnOp::get(&k, GetOptions::new())]);
                        client.txn(update).await.map(drop)
                    }
                    Err(err) => Err(err),
                }
            }
            Workload::Lease => match client.lease_grant(60, 0).await {
                Ok(lease) => match client.lease_keep_alive(lease.id).await {
                    Ok(_) => client.lease_revoke(lease.id).await.map(drop),
                    Err(err) => Err(err),
                },
                Err(err) => Err(err),
            },
            Workload::Watch { .. } => unreachable!("watch runs its own loop"),
        };
        let ok = match outcome {
            Ok(()) => true,
            Err(err) => {
                note_error(&progress, &err);
                false
            }
        };
        if ok {
            let micros = (started.elapsed().as_micros() as u64).clamp(1, LATENCY_MAX_US);
            local.record(micros).expect("latency within bounds");
            progress.done.fetch_add(1, Ordering::Relaxed);
        } else {
            progress.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
    histogram
        .lock()
        .expect("histogram lock")
        .add(&local)
        .expect("compatible histograms");
}

/// Watchers on one prefix; one writer at `rate` puts per second whose values carry the
/// time of the put; each event's latency is measured at the watcher.
/// How long a slow watcher waits between reading two responses.
pub const SLOW_WATCHER_PAUSE: Duration = Duration::from_secs(1);

/// The watch workload's watchers and write rate.
struct WatchShape {
    watchers: usize,
    rate: u64,
    slow: usize,
}

async fn watch_run(
    clients: &[Client],
    settings: &Settings,
    shape: WatchShape,
    progress: &Arc<Progress>,
    histogram: &Arc<Mutex<Histogram<u64>>>,
    deadline: Option<Instant>,
) -> Result<(), ballast_client::Error> {
    let WatchShape {
        watchers,
        rate,
        slow,
    } = shape;
    let epoch = Instant::now();
    // Slow watchers get their own connection: an unread stream fills its connection's
    // HTTP/2 window in the client, which would stall the measured watchers for reasons
    // that have nothing to do with the server.
    let mut slow_readers = Vec::new();
    if slow > 0 {
        let client =
            Client::connect(settings.endpoints.clone(), settings.connect_options()).await?;
        for _ in 0..slow {
            let (watcher, mut stream) = client
                .watch("/watch-bench/", WatchOptions::new().with_prefix())
                .await?;
            let progress = progress.clone();
            slow_readers.push(tokio::spawn(async move {
                let _keep = watcher;
                while !progress.stop.load(Ordering::Relaxed) {
                    tokio::time::sleep(SLOW_WATCHER_PAUSE).await;
                    if !matches!(stream.message().await, Ok(Some(_))) {
                        break;
                    }
                }
            }));
        }
    }
    let mut streams = Vec::new();
    for w in 0..watchers {
        let client = &clients[w % clients.len()];
        let (_watcher, stream) = client
            .watch("/watch-bench/", WatchOptions::new().with_prefix())
            .await?;
        streams.push((_watcher, stream));
    }
    let mut readers = Vec::new();
    for (watcher, mut stream) in streams {
        let progress = progress.clone();
        let histogram = histogram.clone();
        readers.push(tokio::spawn(async move {
            let _keep = watcher;
            let mut local = new_histogram();
            while let Ok(Some(response)) = stream.message().await {
                for event in response.events {
                    if event.kv.key.ends_with(b"/stop") {
                        continue;
                    }
                    let sent: u64 = event
                        .kv
                        .value_str()
                        .ok()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    let now = epoch.elapsed().as_micros() as u64;
                    local
                        .record(now.saturating_sub(sent).clamp(1, LATENCY_MAX_US))
                        .expect("latency within bounds");
                    progress.done.fetch_add(1, Ordering::Relaxed);
                }
                if progress.stop.load(Ordering::Relaxed) {
                    break;
                }
            }
            histogram
                .lock()
                .expect("histogram lock")
                .add(&local)
                .expect("compatible histograms");
        }));
    }
    let writer = clients[0].clone();
    let interval = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let mut ticker = tokio::time::interval(interval);
    let mut i = 0u64;
    loop {
        ticker.tick().await;
        let writes_done = settings.total.is_some_and(|t| i * watchers as u64 >= t);
        if writes_done || deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let stamp = epoch.elapsed().as_micros().to_string();
        if writer
            .put(
                format!("/watch-bench/{}", i % settings.key_space.max(1)),
                stamp,
                PutOptions::new(),
            )
            .await
            .is_err()
        {
            progress.errors.fetch_add(1, Ordering::Relaxed);
        }
        i += 1;
    }
    // Let the last events arrive, then stop the readers.
    tokio::time::sleep(Duration::from_millis(500)).await;
    progress.stop.store(true, Ordering::Relaxed);
    writer
        .put("/watch-bench/stop", "0", PutOptions::new())
        .await?;
    for r in readers {
        let _ = tokio::time::timeout(Duration::from_secs(5), r).await;
    }
    for r in slow_readers {
        r.abort();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_cpu_is_user_plus_system_after_the_command_name() {
        // A command name with a space and a parenthesis must not shift the fields.
        let stat = "4242 (ball ast) x) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 130 7 9 20 0 3";
        assert_eq!(stat_cpu_seconds(stat), 3.8);
        assert_eq!(stat_cpu_seconds(""), 0.0);
    }

    #[test]
    fn cpu_of_a_process_grows_while_it_works() {
        let before = cpu_seconds_of(std::process::id());
        let started = Instant::now();
        let mut spins = 0u64;
        while cpu_seconds_of(std::process::id()) <= before && started.elapsed().as_secs() < 10 {
            spins = std::hint::black_box(spins.wrapping_add(1));
        }
        assert!(cpu_seconds_of(std::process::id()) > before);
        assert_eq!(cpu_seconds_of(u32::MAX), 0.0);
    }

    /// A child process, killed when dropped.
    struct Child(std::process::Child);

    impl Drop for Child {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn child(script: &str) -> Child {
        Child(
            std::process::Command::new("sh")
                .args(["-c", script])
                .spawn()
                .expect("sh runs"),
        )
    }

    #[tokio::test]
    async fn an_idle_process_is_quiet_and_a_spinning_one_is_not() {
        let idle = child("exec sleep 60");
        assert!(wait_quiet(&[idle.0.id()], Duration::from_secs(5)).await);
        let busy = child("while :; do :; done");
        assert!(!wait_quiet(&[busy.0.id()], Duration::from_secs(2)).await);
        assert!(
            !wait_quiet(&[idle.0.id(), busy.0.id()], Duration::from_secs(2)).await,
            "quiet means all of them together"
        );
    }
}
