//! `compare`: a 3-member Ballast cluster and a 3-member etcd cluster on this machine,
//! the same workloads against each in turn, and a side-by-side table. Both clusters run
//! throughout; each workload runs against one and then the other, the first alternating,
//! in `--rounds` rounds, and the table gives the medians and each round's throughput
//! ratio (of two runs seconds apart, so the machine's drift weighs on both alike).
//!
//! Beside throughput and p99 it gives each server's CPU per operation: the members' CPU
//! time (from /proc) during a workload divided by its operations. On a shared machine
//! that varies less than throughput, and where both servers are CPU-bound it is what the
//! throughput ratio follows.
//!
//! `cargo run --release -p ballast-benches --bin compare -- --duration 20s`
//! (or `make bench-compare`).

use std::time::Duration;

use ballast_benches::auth;
use ballast_benches::load::{run, wait_quiet, Report, Settings, Workload};
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
    /// Times every workload runs against each server; the table gives medians.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    rounds: u64,
    /// The etcd to compare with: a path to its binary, or `3.5.1` (installed on first use
    /// by scripts/ensure-etcd-3.5), or `debian` for Debian's etcd on the PATH.
    #[arg(long, env = "BALLAST_ETCD", default_value = "3.5.1")]
    etcd: String,
    /// A flag for every Ballast member, e.g. `--ballast-flag=--experimental-leader-lease-reads`
    /// (repeatable).
    #[arg(long = "ballast-flag", allow_hyphen_values = true)]
    ballast_flags: Vec<String>,
    /// Only this workload, by its name in the table (repeatable); the targets are judged
    /// on a run of them all.
    #[arg(long)]
    only: Vec<String>,
}

/// Ballast's CPU per operation, as a share of etcd's, that the efficiency target asks
/// for at most.
const CPU_SHARE_MAX: f64 = 0.5;
/// Ballast's throughput, as a multiple of etcd's, that the throughput target asks for.
const QPS_RATIO_MIN: f64 = 2.0;

/// Puts per second in the watch workload.
const WATCH_RATE: u64 = 200;
/// Puts per second in the many-watchers workloads: each reaches every watcher.
const MANY_WATCHERS_RATE: u64 = 10;
/// Slow watchers (one read a second) beside the many.
const SLOW_WATCHERS: usize = 10;
/// Throughput with auth on, as a share of auth off, that the auth target asks for.
const AUTH_QPS_SHARE_MIN: f64 = 0.9;
/// Longest wait for both clusters to go quiet before a run; past it the run starts anyway.
const SETTLE_MAX: Duration = Duration::from_secs(30);

fn parse_seconds(text: &str) -> Result<Duration, String> {
    text.trim_end_matches('s')
        .parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|_| format!("bad duration {text:?} (use e.g. 20s)"))
}

/// One cluster under test and what its workloads reported, by workload then round.
struct Side {
    name: String,
    endpoints: Vec<String>,
    pids: Vec<u32>,
    reports: Vec<Vec<Report>>,
    /// Whether auth is on now; workloads with credentials need it on, the others off.
    auth_on: bool,
}

/// The workloads, each with its settings against one cluster, in the order they run.
fn plan(endpoints: Vec<String>, server_pids: Vec<u32>, args: &Args) -> Vec<(Workload, Settings)> {
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
        credentials: None,
    };
    // Auth on, as a user whose role grants the benchmark's prefix: what checking every
    // request costs, against the same workload with auth off.
    let with_auth = |settings: &Settings| Settings {
        credentials: Some(auth::credentials()),
        ..settings.clone()
    };
    let ranges = Settings {
        key_space: 10_000,
        ..base.clone()
    };
    let one_member = Settings {
        endpoints: base.endpoints[..1].to_vec(),
        key_space: 1_000,
        ..base.clone()
    };
    vec![
        (Workload::Put { sequential: false }, base.clone()),
        (Workload::Put { sequential: false }, with_auth(&base)),
        (
            Workload::Range {
                serializable: false,
            },
            ranges.clone(),
        ),
        (
            Workload::Range {
                serializable: false,
            },
            with_auth(&ranges),
        ),
        (Workload::Range { serializable: true }, ranges.clone()),
        (Workload::TxnUpdate, ranges),
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
    ]
}

/// Runs every workload against both clusters, the two back to back for each workload and
/// the one going first alternating, so that a machine whose speed drifts during the run
/// (a shared VM) weighs on both alike. Each run starts once both clusters are quiet, so
/// neither pays for what the other still does after its run.
async fn run_all(sides: &mut [Side; 2], args: &Args) {
    let plans = sides.each_ref().map(|side| {
        let mut plan = plan(side.endpoints.clone(), side.pids.clone(), args);
        plan.retain(|(workload, settings)| {
            let name = match settings.credentials {
                Some(_) => format!("{}-auth", workload.name()),
                None => workload.name(),
            };
            args.only.is_empty() || args.only.contains(&name)
        });
        plan
    });
    for side in sides.iter_mut() {
        side.reports = vec![Vec::new(); plans[0].len()];
    }
    for round in 0..args.rounds as usize {
        for (i, pair) in plans[0].iter().zip(&plans[1]).enumerate() {
            let both = [pair.0, pair.1];
            let first = (round + i) % 2;
            for s in [first, 1 - first] {
                for side in sides.iter() {
                    if !wait_quiet(&side.pids, SETTLE_MAX).await {
                        eprintln!(
                            "{} still busy after {SETTLE_MAX:?}; running anyway",
                            side.name
                        );
                    }
                }
                let (workload, settings) = both[s];
                let side = &mut sides[s];
                if side.auth_on != settings.credentials.is_some() {
                    side.auth_on = !side.auth_on;
                    auth::set_enabled(&side.endpoints, side.auth_on)
                        .await
                        .expect("auth turned on or off");
                }
                let report = run(workload.clone(), settings)
                    .await
                    .expect("workload runs");
                eprintln!("round {} {}: {}", round + 1, sides[s].name, report.json());
                sides[s].reports[i].push(report);
            }
        }
    }
}

/// "etcd-<version>", as the binary under test reports it.
fn etcd_name() -> String {
    let out = std::process::Command::new(ballast_tests::etcd_binary())
        .arg("--version")
        .output()
        .expect("run etcd --version");
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text
        .lines()
        .find_map(|l| l.strip_prefix("etcd Version: "))
        .unwrap_or("unknown");
    format!("etcd-{}", version.trim())
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1 << 20) as f64)
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    // Read by ballast_tests::etcd_binary; set before any thread could read it.
    match args.etcd.as_str() {
        "debian" => std::env::remove_var("BALLAST_ETCD"),
        etcd => std::env::set_var("BALLAST_ETCD", etcd),
    }
    let dir = tempfile::tempdir().expect("temp dir");

    let flags: Vec<&str> = args.ballast_flags.iter().map(String::as_str).collect();
    let ballast = TestCluster::start(&dir.path().join("ballast"), 3, &flags);
    std::fs::create_dir_all(dir.path().join("etcd")).expect("etcd dir");
    let etcd = EtcdCluster::start(&dir.path().join("etcd"), 3);
    let mut sides = [
        Side {
            name: "ballast".into(),
            endpoints: ballast.endpoints(),
            pids: ballast.nodes.iter().map(|n| n.pid()).collect(),
            reports: Vec::new(),
            auth_on: false,
        },
        Side {
            name: etcd_name(),
            endpoints: etcd.endpoints(),
            pids: etcd.pids(),
            reports: Vec::new(),
            auth_on: false,
        },
    ];
    for side in &sides {
        auth::create_users(&side.endpoints)
            .await
            .expect("benchmark users created");
    }
    run_all(&mut sides, &args).await;
    let peak_rss = sides
        .each_ref()
        .map(|side| side.pids.iter().map(|&p| peak_rss_of(p)).max().unwrap_or(0));
    let disk = [
        ballast
            .nodes
            .iter()
            .map(|n| disk_usage(&n.dir))
            .sum::<u64>(),
        etcd.data_dirs().iter().map(|d| disk_usage(d)).sum(),
    ];
    let [b, e] = &sides;

    println!(
        "| workload | {b} qps | {e} qps | ratio | {b} p99 ms | {e} p99 ms | {b} CPU us/op | {e} CPU us/op | errors | ratio by round |",
        b = b.name,
        e = e.name
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let cpu = |us: Option<f64>| us.map_or("-".into(), |us| format!("{us:.0}"));
    let mut summaries = Vec::new();
    for (br, er) in b.reports.iter().zip(&e.reports) {
        let pair = Pair::of(br, er);
        println!(
            "| {} | {:.0} | {:.0} | {:.2}x | {:.2} | {:.2} | {} | {} | {} / {} | {} |",
            pair.workload,
            pair.qps[0],
            pair.qps[1],
            pair.ratio,
            pair.p99_ms[0],
            pair.p99_ms[1],
            cpu(pair.cpu_us_per_op[0]),
            cpu(pair.cpu_us_per_op[1]),
            pair.errors[0],
            pair.errors[1],
            pair.round_ratios
                .iter()
                .map(|r| format!("{r:.2}"))
                .collect::<Vec<_>>()
                .join(" "),
        );
        summaries.push(pair);
    }
    println!(
        "| peak RSS (largest member) | {} | {} | {:.2}x | | | | | | |",
        mib(peak_rss[0]),
        mib(peak_rss[1]),
        peak_rss[0] as f64 / peak_rss[1].max(1) as f64
    );
    println!(
        "| on-disk size (3 members) | {} | {} | {:.2}x | | | | | | |",
        mib(disk[0]),
        mib(disk[1]),
        disk[0] as f64 / disk[1].max(1) as f64
    );
    println!();
    if !args.only.is_empty() {
        return;
    }
    for line in verdicts(&summaries, &args) {
        println!("{line}");
    }
    for name in ["put", "range-linearizable"] {
        println!("{}", auth_verdict(&b.reports, name));
    }
}

/// The auth target: Ballast's `<name>-auth` throughput within 10% of `<name>`'s. The
/// ratio is the median of each round's, where the two ran minutes apart at most.
fn auth_verdict(reports: &[Vec<Report>], name: &str) -> String {
    let of = |workload: &str| {
        reports
            .iter()
            .find(|r| r[0].workload == workload)
            .expect("every workload ran")
    };
    let (off, on) = (of(name), of(&format!("{name}-auth")));
    let ratio = median(
        off.iter()
            .zip(on)
            .map(|(off, on)| on.qps / off.qps.max(1e-9)),
    );
    let cpu = |r: &[Report]| median(r.iter().filter_map(|r| r.server_cpu_us_per_op()));
    let met = if ratio >= AUTH_QPS_SHARE_MIN {
        "met"
    } else {
        "NOT MET"
    };
    format!(
        "target ballast {name} with auth on >= {:.0}% of auth off: {:.0}% (CPU {:.0} vs {:.0} us/op): {met}",
        AUTH_QPS_SHARE_MIN * 100.0,
        ratio * 100.0,
        cpu(on),
        cpu(off),
    )
}

/// One workload on both servers over the rounds: medians of each measure, and the
/// throughput ratio of each round, where the two ran back to back.
#[derive(Debug, Clone)]
struct Pair {
    workload: String,
    qps: [f64; 2],
    p99_ms: [f64; 2],
    cpu_us_per_op: [Option<f64>; 2],
    errors: [u64; 2],
    round_ratios: Vec<f64>,
    /// Median of the round ratios: a ratio of two runs minutes apart would carry the
    /// machine's drift between them.
    ratio: f64,
}

impl Pair {
    fn of(ballast: &[Report], etcd: &[Report]) -> Pair {
        assert_eq!(ballast.len(), etcd.len(), "both ran every round");
        let sides = [ballast, etcd];
        let round_ratios: Vec<f64> = ballast
            .iter()
            .zip(etcd)
            .map(|(b, e)| b.qps / e.qps.max(1e-9))
            .collect();
        Pair {
            workload: ballast[0].workload.clone(),
            qps: sides.map(|r| median(r.iter().map(|r| r.qps))),
            p99_ms: sides.map(|r| median(r.iter().map(|r| r.p99_ms))),
            cpu_us_per_op: sides.map(|r| {
                let measured: Vec<f64> =
                    r.iter().filter_map(|r| r.server_cpu_us_per_op()).collect();
                (!measured.is_empty()).then(|| median(measured))
            }),
            errors: sides.map(|r| r.iter().map(|r| r.errors).sum()),
            ratio: median(round_ratios.iter().copied()),
            round_ratios,
        }
    }
}

/// The middle value (the mean of the middle two for an even count).
fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.into_iter().collect();
    assert!(!values.is_empty(), "median of nothing");
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// The throughput and latency targets, each marked met or not met, judged on
/// the medians over the rounds.
fn verdicts(pairs: &[Pair], args: &Args) -> Vec<String> {
    let find = |name: &str| {
        pairs
            .iter()
            .find(|p| p.workload == name)
            .cloned()
            .expect("every workload ran")
    };
    let mark = |met: bool| if met { "met" } else { "NOT MET" };
    let efficiency = |name: &str| {
        let pair = find(name);
        let cpu_share = match pair.cpu_us_per_op {
            [Some(ballast), Some(etcd)] => Some(ballast / etcd),
            _ => None,
        };
        let met = cpu_share.is_some_and(|share| share <= CPU_SHARE_MAX)
            && pair.ratio >= QPS_RATIO_MIN
            && pair.p99_ms[0] <= pair.p99_ms[1];
        format!(
            "target {name}: CPU per op <= {CPU_SHARE_MAX}x etcd's, >= {QPS_RATIO_MIN}x qps, p99 no worse: CPU {}, {:.2}x qps, p99 {:.2} vs {:.2} ms: {}",
            cpu_share.map_or("unmeasured".into(), |share| format!("{share:.2}x")),
            pair.ratio,
            pair.p99_ms[0],
            pair.p99_ms[1],
            mark(met)
        )
    };
    let watch = find(
        &Workload::Watch {
            watchers: args.watchers,
            rate: WATCH_RATE,
            slow: 0,
        }
        .name(),
    );
    let many = |slow| {
        find(
            &Workload::Watch {
                watchers: args.many_watchers,
                rate: MANY_WATCHERS_RATE,
                slow,
            }
            .name(),
        )
    };
    let (calm, with_slow) = (many(0), many(SLOW_WATCHERS));
    let mut lines: Vec<String> = ["put", "range-linearizable", "txn-update", "lease"]
        .into_iter()
        .map(efficiency)
        .collect();
    lines.extend([
        format!(
            "target {} put-to-event p99 no worse: {:.2} vs {:.2} ms: {}",
            watch.workload,
            watch.p99_ms[0],
            watch.p99_ms[1],
            mark(watch.p99_ms[0] <= watch.p99_ms[1])
        ),
        format!(
            "target {} put-to-event p99 better: {:.2} vs {:.2} ms: {}",
            calm.workload,
            calm.p99_ms[0],
            calm.p99_ms[1],
            mark(calm.p99_ms[0] < calm.p99_ms[1])
        ),
        format!(
            "target {} p99 within 2x of {} (slow watchers delay no one): {:.2} vs {:.2} ms: {}",
            with_slow.workload,
            calm.workload,
            with_slow.p99_ms[0],
            calm.p99_ms[0],
            mark(with_slow.p99_ms[0] <= 2.0 * calm.p99_ms[0])
        ),
    ]);
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(qps: f64, p99_ms: f64, ops: u64, cpu: Option<f64>) -> Report {
        Report {
            workload: "put".into(),
            ops,
            errors: 1,
            seconds: 1.0,
            qps,
            p50_ms: 0.0,
            p90_ms: 0.0,
            p99_ms,
            p999_ms: 0.0,
            client_cpu_seconds: 0.0,
            server_cpu_seconds: cpu,
        }
    }

    #[test]
    fn median_takes_the_middle_or_the_mean_of_the_middle_two() {
        assert_eq!(median([3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median([4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median([7.0]), 7.0);
    }

    #[test]
    fn a_pair_ratio_is_the_median_of_its_rounds_ratios() {
        // Round 2 ran on a slow machine for both; its own ratio is what counts, not
        // Ballast's fast round against etcd's slow one.
        let ballast = [
            report(200.0, 5.0, 100, Some(0.02)),
            report(100.0, 9.0, 100, Some(0.04)),
            report(210.0, 4.0, 100, Some(0.01)),
        ];
        let etcd = [
            report(100.0, 6.0, 100, None),
            report(50.0, 8.0, 100, None),
            report(150.0, 3.0, 100, None),
        ];
        let pair = Pair::of(&ballast, &etcd);
        assert_eq!(pair.round_ratios, vec![2.0, 2.0, 1.4]);
        assert_eq!(pair.ratio, 2.0);
        assert_eq!(pair.qps, [200.0, 100.0]);
        assert_eq!(pair.p99_ms, [5.0, 6.0]);
        assert_eq!(pair.cpu_us_per_op, [Some(200.0), None]);
        assert_eq!(pair.errors, [3, 3]);
    }

    fn pair(workload: &str, ratio: f64, p99_ms: [f64; 2], cpu: [f64; 2]) -> Pair {
        Pair {
            workload: workload.into(),
            qps: [ratio, 1.0],
            p99_ms,
            cpu_us_per_op: cpu.map(Some),
            errors: [0, 0],
            round_ratios: vec![ratio],
            ratio,
        }
    }

    #[test]
    fn each_target_is_judged_on_its_own_measures() {
        let args = Args::parse_from(["compare"]);
        let watch = |watchers, slow| {
            Workload::Watch {
                watchers,
                rate: WATCH_RATE,
                slow,
            }
            .name()
        };
        let pairs = vec![
            // Met: half the CPU, twice the puts, a better p99.
            pair("put", 2.1, [5.0, 9.0], [50.0, 100.0]),
            // Each one short on one measure only.
            pair("range-linearizable", 2.5, [5.0, 9.0], [60.0, 100.0]),
            pair("txn-update", 1.9, [5.0, 9.0], [40.0, 100.0]),
            pair("lease", 2.5, [9.5, 9.0], [40.0, 100.0]),
            pair(&watch(100, 0), 1.0, [2.0, 2.0], [1.0, 1.0]),
            pair(&watch(10_000, 0), 1.0, [80.0, 80.0], [1.0, 1.0]),
            pair(
                &watch(10_000, SLOW_WATCHERS),
                1.0,
                [150.0, 80.0],
                [1.0, 1.0],
            ),
        ];
        let met: Vec<bool> = verdicts(&pairs, &args)
            .iter()
            .map(|line| line.ends_with(": met"))
            .collect();
        assert_eq!(met, [true, false, false, false, true, false, true]);
    }
}
