//! `load`: drives an etcd v3 endpoint (Ballast or etcd) with one of etcd's benchmark
//! workloads and prints one JSON line of results.
//!
//! ```text
//! load --endpoints 127.0.0.1:2379 --clients 64 --conns 8 --total 100000 put --value-size 256
//! load --endpoints 127.0.0.1:2379 --duration 30s range --consistency s
//! load --endpoints 127.0.0.1:2379 --duration 20s watch --watchers 100 --rate 200
//! load --endpoints 127.0.0.1:2379 --server-pids $(pgrep -d, ballast) --duration 20s put
//! ```

use std::time::Duration;

use ballast_benches::load::{run, Settings, Workload};
use clap::{Parser, Subcommand, ValueEnum};

// The servers' allocator, so the load generator takes less of the CPU the servers share.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "load",
    about = "etcd v3 API load generator (works against Ballast and etcd)"
)]
struct Args {
    /// Comma-separated endpoints.
    #[arg(long, default_value = "127.0.0.1:2379", value_delimiter = ',')]
    endpoints: Vec<String>,
    /// Concurrent clients.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// gRPC connections the clients share.
    #[arg(long, default_value_t = 8)]
    conns: usize,
    /// Key size in bytes.
    #[arg(long, default_value_t = 8)]
    key_size: usize,
    /// Value size in bytes.
    #[arg(long, default_value_t = 256)]
    value_size: usize,
    /// Number of distinct keys.
    #[arg(long, default_value_t = 10_000)]
    key_space: u64,
    /// Total operations (exclusive with --duration).
    #[arg(long)]
    total: Option<u64>,
    /// Run time, e.g. 30s (exclusive with --total).
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// No progress line on stderr.
    #[arg(long)]
    quiet: bool,
    /// Comma-separated server process ids: the report adds their CPU time during the
    /// run (`server_cpu_seconds`).
    #[arg(long, value_delimiter = ',')]
    server_pids: Vec<u32>,
    /// Authenticate as this user, given as name:password (as etcd's `benchmark --user`).
    #[arg(long, value_parser = parse_user)]
    user: Option<(String, String)>,
    #[command(subcommand)]
    workload: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Consistency {
    /// Linearizable.
    L,
    /// Serializable.
    S,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Puts.
    Put {
        /// Keys in sequence instead of at random.
        #[arg(long)]
        sequential_keys: bool,
    },
    /// Single-key reads.
    Range {
        #[arg(long, value_enum, default_value = "l")]
        consistency: Consistency,
    },
    /// Read, then compare-and-swap the key (kube-apiserver updates).
    Txn,
    /// Watchers on a prefix, measuring put-to-event latency.
    Watch {
        #[arg(long, default_value_t = 100)]
        watchers: usize,
        /// Puts per second.
        #[arg(long, default_value_t = 100)]
        rate: u64,
        /// More watchers that read one response a second (not measured).
        #[arg(long, default_value_t = 0)]
        slow: usize,
    },
    /// Lease grant, keep-alive, revoke.
    Lease,
}

fn parse_user(text: &str) -> Result<(String, String), String> {
    match text.split_once(':') {
        Some((name, password)) if !name.is_empty() => Ok((name.into(), password.into())),
        _ => Err(format!("bad user {text:?} (use name:password)")),
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = number
        .parse()
        .map_err(|_| format!("bad duration {text:?}"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" | "" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(60 * n)),
        _ => Err(format!("bad duration unit in {text:?}")),
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let workload = match args.workload {
        Command::Put { sequential_keys } => Workload::Put {
            sequential: sequential_keys,
        },
        Command::Range { consistency } => Workload::Range {
            serializable: matches!(consistency, Consistency::S),
        },
        Command::Txn => Workload::TxnUpdate,
        Command::Watch {
            watchers,
            rate,
            slow,
        } => Workload::Watch {
            watchers,
            rate,
            slow,
        },
        Command::Lease => Workload::Lease,
    };
    let duration = match (args.total, args.duration) {
        (None, None) => Some(Duration::from_secs(10)),
        (_, duration) => duration,
    };
    let settings = Settings {
        endpoints: args.endpoints,
        clients: args.clients,
        connections: args.conns,
        key_size: args.key_size,
        value_size: args.value_size,
        key_space: args.key_space,
        total: args.total,
        duration,
        progress: !args.quiet,
        server_pids: args.server_pids,
        credentials: args.user,
    };
    match run(workload, &settings).await {
        Ok(report) => {
            println!("{}", report.json());
            std::process::ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("load: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
