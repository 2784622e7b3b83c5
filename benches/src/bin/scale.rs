//! Memory and restart time at scale: load N keys into a fresh single-member server
//! (Ballast or etcd, the same way), then kill -9 it and time the restart.
//!
//! `cargo run --release -p ballast-benches --bin scale -- --server ballast --keys 100000`
//!
//! Prints one JSON line: RSS after the load, restart time (process start to the first
//! answered read), RSS after the restart and after reading every key once (in pages of
//! [`READ_PAGE`] keys, as a client lists a large prefix).

use std::time::{Duration, Instant};

use ballast_client::{Client, ConnectOptions, GetOptions, PutOptions};
use ballast_tests::{rss_of, Etcd, Node};
use clap::{Parser, ValueEnum};

/// Keys per range when every key is read back after the restart.
const READ_PAGE: i64 = 10_000;
/// The backend quota of both servers for the run: far above any load here, so the
/// default 2 GiB quota (etcd's, which Ballast keeps for compatibility) ends no run.
const QUOTA_BYTES: &str = "68719476736";
/// Load progress is reported on stderr every this many keys.
const PROGRESS_EVERY: usize = 1_000_000;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Server {
    Ballast,
    Etcd,
}

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, value_enum, default_value = "ballast")]
    server: Server,
    /// Keys to load.
    #[arg(long, default_value_t = 100_000)]
    keys: usize,
    /// Bytes per value (random, so they do not compress).
    #[arg(long, default_value_t = 256)]
    value_size: usize,
    /// Concurrent writers.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Keep the server's data and logs in this (new) directory instead of a temporary one.
    #[arg(long)]
    keep_dir: Option<std::path::PathBuf>,
    /// The etcd binary for `--server etcd`: a path, `3.5.1` (installed on first use), or
    /// `debian` for Debian's etcd on the PATH; the default is `BALLAST_ETCD`, else Debian's.
    #[arg(long)]
    etcd: Option<String>,
    /// Skip reading every key back after the restart (its RSS is then not measured):
    /// each page's count scans the rest of the range, so with 10,000,000 keys Ballast
    /// would take most of an hour over it.
    #[arg(long)]
    no_read_back: bool,
}

/// One of the two servers under test.
enum Running {
    Ballast(Node),
    Etcd(Etcd),
}

impl Running {
    fn endpoint(&self) -> String {
        match self {
            Running::Ballast(n) => n.endpoint(),
            Running::Etcd(e) => e.endpoint(),
        }
    }
    fn rss(&self) -> u64 {
        match self {
            Running::Ballast(n) => n.rss_bytes(),
            Running::Etcd(e) => rss_of(e.pid()),
        }
    }
    fn kill9(&mut self) {
        match self {
            Running::Ballast(n) => n.kill9(),
            Running::Etcd(e) => e.kill9(),
        }
    }
    fn restart(&mut self) {
        match self {
            Running::Ballast(n) => n.restart(),
            Running::Etcd(e) => e.restart(),
        }
    }
}

async fn connect(endpoint: &str) -> Client {
    Client::connect([endpoint], ConnectOptions::default())
        .await
        .expect("connect")
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    // Read by ballast_tests::etcd_binary; set before any thread could read it.
    match args.etcd.as_deref() {
        Some("debian") => std::env::remove_var("BALLAST_ETCD"),
        Some(etcd) => std::env::set_var("BALLAST_ETCD", etcd),
        None => {}
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let data = match &args.keep_dir {
        Some(kept) => {
            std::fs::create_dir_all(kept).expect("create the kept directory");
            kept.join("data")
        }
        None => dir.path().join("data"),
    };
    let mut server = match args.server {
        Server::Ballast => Running::Ballast(Node::start_with(
            &data,
            &["--quota-backend-bytes", QUOTA_BYTES],
        )),
        Server::Etcd => Running::Etcd(Etcd::start_with(
            &data,
            &["--quota-backend-bytes", QUOTA_BYTES],
            false,
        )),
    };
    let client = connect(&server.endpoint()).await;

    let load_started = Instant::now();
    let per_client = args.keys.div_ceil(args.clients);
    let written = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut writers = Vec::new();
    for c in 0..args.clients {
        let client = client.clone();
        let written = written.clone();
        let value_size = args.value_size;
        writers.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(c as u64);
            let mut value = vec![0u8; value_size];
            for i in c * per_client..((c + 1) * per_client) {
                // Random bytes: the data takes its full size on disk and in the page
                // cache, as it would not if it compressed to nothing.
                rng.fill(&mut value);
                client
                    .put(format!("/registry/bench/{i:09}"), &value, PutOptions::new())
                    .await
                    .expect("put");
                let n = written.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                if n.is_multiple_of(PROGRESS_EVERY) {
                    eprintln!("{n} keys after {:?}", load_started.elapsed());
                }
            }
        }));
    }
    for writer in writers {
        writer.await.expect("writer");
    }
    let load_seconds = load_started.elapsed().as_secs_f64();
    let rss_loaded = server.rss();

    server.kill9();
    let restart_started = Instant::now();
    server.restart();
    eprintln!("process ready after {:?}", restart_started.elapsed());
    let client = connect(&server.endpoint()).await;
    eprintln!("connected after {:?}", restart_started.elapsed());
    loop {
        if client
            .get("/registry/bench/000000000", GetOptions::new())
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let restart_seconds = restart_started.elapsed().as_secs_f64();
    let rss_restarted = server.rss();
    let count = client
        .get(
            "/registry/bench/",
            GetOptions::new().with_prefix().with_count_only(),
        )
        .await
        .expect("count")
        .count;
    assert_eq!(
        count as usize,
        per_client * args.clients,
        "every key is back"
    );
    let rss_after_read = if args.no_read_back {
        "null".to_string()
    } else {
        let mut read = 0usize;
        let mut from = b"/registry/bench/".to_vec();
        loop {
            let page = client
                .get(
                    &from,
                    GetOptions::new()
                        .with_range("/registry/bench0")
                        .with_limit(READ_PAGE),
                )
                .await
                .expect("read a page");
            read += page.kvs.len();
            let Some(last) = page.kvs.last() else { break };
            if !page.more {
                break;
            }
            from = last.key.to_vec();
            from.push(0);
        }
        assert_eq!(read, count as usize, "every key read back");
        format!("{:.1}", server.rss() as f64 / (1 << 20) as f64)
    };
    println!(
        "{{\"server\":\"{:?}\",\"keys\":{},\"value_size\":{},\"load_seconds\":{:.2},\"rss_loaded_mib\":{:.1},\"restart_seconds\":{:.3},\"rss_restarted_mib\":{:.1},\"rss_after_full_read_mib\":{}}}",
        args.server,
        count,
        args.value_size,
        load_seconds,
        rss_loaded as f64 / (1 << 20) as f64,
        restart_seconds,
        rss_restarted as f64 / (1 << 20) as f64,
        rss_after_read,
    );
}
