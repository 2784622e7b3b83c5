//! `compare`: a 3-member Ballast cluster and a 3-member etcd cluster on this machine,
//! the same workloads against each in turn, and a side-by-side table. Beside throughput
//! and p99 it gives each server's CPU per operation: the members' CPU time (from /proc)
//! during a workload divided by its operations. On a shared machine that varies less
//! than throughput, and where both servers are CPU-bound it is what the throughput
//! ratio follows.
//!
//! `cargo run --release -p ballast-benches --bin compare -- --duration 20s`
//! (or `make bench-compare`).

use std::time::Duration;

use ballast_benches::load::{run, Report, Settings, Workload};
use ballast_tests::{disk_usage, peak_rss_of, EtcdCluster, TestCluster};
use clap::Parser;

// The servers' allocator, so the load generator takes less of the CPU the servers share.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "compare",
    about = "Ballast against etcd, same machine, same run"
)]
struct Args {
    /// Length of each workload.
    #[arg(long, default_value = "20s", value_parser = parse_seconds)]
    duration: Duration,
    /// Concurrent clients for put, range and txn.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// gRPC connections they share.
    #[arg(long, default_value_t = 8)]
    conns: usize,
    /// Watchers in the watch workload.
    #[arg(long, default_value_t = 100)]
    watchers: usize,
    /// Watchers on one member in the many-watchers workloads.
    #[arg(long, default_value_t = 10_000)]
    many_watchers: usize,
}

/// Puts per second in the watch workload.
const WATCH_RATE: u64 = 200;
/// Puts per second in the many-watchers workloads: each reaches every watcher.
const MANY_WATCHERS_RATE: u64 = 10;
/// Slow watchers (one read a second) beside the many.
const SLOW_WATCHERS: usize = 10;

fn parse_seconds(text: &str) -> Result<Duration, String> {
    text.trim_end_matches('s')
        .parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|_| format!("bad duration {text:?} (use e.g. 20s)"))
}

struct ServerRun {
    name: &'static str,
    reports: Vec<Report>,
    peak_rss: u64,
    disk: u64,
}

async fn workloads(
    name: &'static str,
    endpoints: Vec<String>,
    server_pids: Vec<u32>,
    args: &Args,
) -> Vec<Report> {
    let base = Settings {
        endpoints,
        server_pids,
        clients: args.clients,
        connections: args.conns,
        key_size: 32,
        value_size: 256,
        key_space: 100_000,
        total: None,
        duration: Some(args.duration),
        progress: false,
    };
    let one_member = Settings {
        endpoints: base.endpoints[..1].to_vec(),
        key_space: 1_000,
        ..base.clone()
    };
    let plan = [
        (Workload::Put { sequential: false }, base.clone()),
        (
            Workload::Range {
                serializable: false,
            },
            Settings {
                key_space: 10_000,
                ..base.clone()
            },
        ),
        (
            Workload::Range { serializable: true },
            Settings {
                key_space: 10_000,
                ..base.clone()
            },
        ),
        (
            Workload::TxnUpdate,
            Settings {
                key_space: 10_000,
                ..base.clone()
            },
        ),
        (
            Workload::Watch {
                watchers: args.watchers,
                rate: WATCH_RATE,
                slow: 0,
            },
            Settings {
                key_space: 1_000,
                ..base.clone()
            },
        ),
        // Many watchers on one member, then the same with a few slow ones beside them.
        (
            Workload::Watch {
                watchers: args.many_watchers,
                rate: MANY_WATCHERS_RATE,
                slow: 0,
            },
            one_member.clone(),
        ),
        (
            Workload::Watch {
                watchers: args.many_watchers,
                rate: MANY_WATCHERS_RATE,
                slow: SLOW_WATCHERS,
            },
            one_member,
        ),
        (
            Workload::Lease,
            Settings {
                clients: 16,
                ..base.clone()
            },
        ),
    ];
    let mut reports = Vec::new();
    for (workload, settings) in plan {
        let report = run(workload, &settings).await.expect("workload runs");
        eprintln!("{name}: {}", report.json());
        reports.push(report);
    }
    reports
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1 << 20) as f64)
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let dir = tempfile::tempdir().expect("temp dir");

    let ballast = {
        let cluster = TestCluster::start(&dir.path().join("ballast"), 3, &[]);
        let pids = cluster.nodes.iter().map(|n| n.pid()).collect();
        let reports = workloads("ballast", cluster.endpoints(), pids, &args).await;
        let peak_rss = cluster
            .nodes
            .iter()
            .map(|n| peak_rss_of(n.pid()))
            .max()
            .unwrap_or(0);
        let disk = cluster.nodes.iter().map(|n| disk_usage(&n.dir)).sum();
        ServerRun {
            name: "ballast",
            reports,
            peak_rss,
            disk,
        }
    };
    let etcd = {
        std::fs::create_dir_all(dir.path().join("etcd")).expect("etcd dir");
        let cluster = EtcdCluster::start(&dir.path().join("etcd"), 3);
        let reports = workloads("etcd", cluster.endpoints(), cluster.pids(), &args).await;
        let peak_rss = cluster
            .pids()
            .into_iter()
            .map(peak_rss_of)
            .max()
            .unwrap_or(0);
        let disk = cluster.data_dirs().iter().map(|d| disk_usage(d)).sum();
        ServerRun {
            name: "etcd",
            reports,
            peak_rss,
            disk,
        }
    };

    println!(
        "| workload | {b} qps | {e} qps | ratio | {b} p99 ms | {e} p99 ms | {b} CPU us/op | {e} CPU us/op | errors |",
        b = ballast.name,
        e = etcd.name
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let cpu = |r: &Report| {
        r.server_cpu_us_per_op()
            .map_or("-".into(), |us| format!("{us:.0}"))
    };
    for (b, e) in ballast.reports.iter().zip(&etcd.reports) {
        println!(
            "| {} | {:.0} | {:.0} | {:.2}x | {:.2} | {:.2} | {} | {} | {} / {} |",
            b.workload,
            b.qps,
            e.qps,
            b.qps / e.qps.max(1e-9),
            b.p99_ms,
            e.p99_ms,
            cpu(b),
            cpu(e),
            b.errors,
            e.errors
        );
    }
    println!(
        "| peak RSS (largest member) | {} | {} | {:.2}x | | | | | |",
        mib(ballast.peak_rss),
        mib(etcd.peak_rss),
        ballast.peak_rss as f64 / etcd.peak_rss.max(1) as f64
    );
    println!(
        "| on-disk size (3 members) | {} | {} | {:.2}x | | | | | |",
        mib(ballast.disk),
        mib(etcd.disk),
        ballast.disk as f64 / etcd.disk.max(1) as f64
    );
    println!();
    for line in verdicts(&ballast.reports, &etcd.reports, &args) {
        println!("{line}");
    }
}

/// The throughput and latency targets, each marked met or not met.
fn verdicts(ballast: &[Report], etcd: &[Report], args: &Args) -> Vec<String> {
    let find = |reports: &[Report], name: &str| {
        reports
            .iter()
            .find(|r| r.workload == name)
            .cloned()
            .expect("every workload ran")
    };
    let mark = |met: bool| if met { "met" } else { "NOT MET" };
    let (bp, ep) = (find(ballast, "put"), find(etcd, "put"));
    let (br, er) = (
        find(ballast, "range-linearizable"),
        find(etcd, "range-linearizable"),
    );
    let watch = Workload::Watch {
        watchers: args.watchers,
        rate: WATCH_RATE,
        slow: 0,
    }
    .name();
    let (bw, ew) = (find(ballast, &watch), find(etcd, &watch));
    let many = |slow| {
        Workload::Watch {
            watchers: args.many_watchers,
            rate: MANY_WATCHERS_RATE,
            slow,
        }
        .name()
    };
    let (calm, with_slow) = (find(ballast, &many(0)), find(ballast, &many(SLOW_WATCHERS)));
    vec![
        format!(
            "target put >= 2x etcd qps, p99 no worse: {:.2}x, p99 {:.2} vs {:.2} ms: {}",
            bp.qps / ep.qps,
            bp.p99_ms,
            ep.p99_ms,
            mark(bp.qps >= 2.0 * ep.qps && bp.p99_ms <= ep.p99_ms)
        ),
        format!(
            "target linearizable range >= 2x etcd qps: {:.2}x: {}",
            br.qps / er.qps,
            mark(br.qps >= 2.0 * er.qps)
        ),
        format!(
            "target {watch} put-to-event p99 no worse: {:.2} vs {:.2} ms: {}",
            bw.p99_ms,
            ew.p99_ms,
            mark(bw.p99_ms <= ew.p99_ms)
        ),
        format!(
            "target {} p99 within 2x of {} (slow watchers delay no one): {:.2} vs {:.2} ms: {}",
            with_slow.workload,
            calm.workload,
            with_slow.p99_ms,
            calm.p99_ms,
            mark(with_slow.p99_ms <= 2.0 * calm.p99_ms)
        ),
    ]
}
