//! Test harness: start real `ballast` processes on loopback, talk to them with
//! `ballast-client` and `etcdctl`, kill and restart them.
//!
//! Nodes listen on ports picked free just before start; a start that loses the race
//! for its port is retried on another. Waits are on conditions (the node's "ready" log
//! line, a revision reached), never fixed sleeps.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ballast_client::{Client, ConnectOptions};

/// How long a node may take to start serving.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Starts retried when the picked port was taken meanwhile.
const START_ATTEMPTS: usize = 5;

/// Path of the `ballast` binary, built once per test process in the test's own profile.
pub fn ballast_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        // Tests run from target/<profile>/deps/, tools from target/<profile>/.
        let exe = std::env::current_exe().expect("executable path");
        let mut profile_dir = exe.parent().expect("target/<profile>/...").to_path_buf();
        if profile_dir.ends_with("deps") {
            profile_dir.pop();
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build.args([
            "build",
            "--quiet",
            "-p",
            "ballast-server",
            "--bin",
            "ballast",
        ]);
        if profile_dir.ends_with("release") {
            build.arg("--release");
        }
        let status = build.status().expect("run cargo build");
        assert!(status.success(), "building ballast failed");
        profile_dir.join("ballast")
    })
}

/// Directory of ballast-client's example binaries, built once per test process.
pub fn client_examples_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let binary = ballast_binary();
        let profile_dir = binary.parent().expect("target/<profile>");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build.args(["build", "--quiet", "-p", "ballast-client", "--examples"]);
        if profile_dir.ends_with("release") {
            build.arg("--release");
        }
        assert!(
            build.status().expect("run cargo build").success(),
            "building the examples failed"
        );
        profile_dir.join("examples")
    })
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// A `ballast` process with its own data directory.
#[derive(Debug)]
pub struct Node {
    pub dir: PathBuf,
    pub port: u16,
    pub extra_args: Vec<String>,
    pub env: Vec<(String, String)>,
    child: Option<Child>,
    log: PathBuf,
    starts: usize,
}

impl Node {
    /// Starts a single-member node in `dir` (created if needed).
    pub fn start(dir: &Path) -> Node {
        Node::start_with(dir, &[])
    }

    pub fn start_with(dir: &Path, extra_args: &[&str]) -> Node {
        let mut node = Node {
            dir: dir.to_path_buf(),
            port: 0,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            env: Vec::new(),
            child: None,
            log: PathBuf::new(),
            starts: 0,
        };
        node.launch();
        node
    }

    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn address(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// The node's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn launch(&mut self) {
        self.launch_on(None);
    }

    /// Starts the process; on `port` if given (once), else on a fresh free port.
    fn launch_on(&mut self, mut port: Option<u16>) {
        for _ in 0..START_ATTEMPTS {
            self.port = port.take().unwrap_or_else(free_port);
            self.starts += 1;
            self.log = self.dir.with_extension(format!("log.{}", self.starts));
            let log = std::fs::File::create(&self.log).expect("create log file");
            let url = self.url();
            let mut command = Command::new(ballast_binary());
            command
                .args(["--name", "node", "--data-dir"])
                .arg(&self.dir)
                .args([
                    "--listen-client-urls",
                    &url,
                    "--advertise-client-urls",
                    &url,
                ])
                .args(&self.extra_args)
                .envs(self.env.iter().map(|(k, v)| (k, v)))
                .stdout(Stdio::null())
                .stderr(log);
            let child = command.spawn().expect("spawn ballast");
            self.child = Some(child);
            match self.wait_ready() {
                Ok(()) => return,
                Err(log) if log.contains("Address already in use") => continue,
                Err(log) => panic!("ballast did not start:\n{log}"),
            }
        }
        panic!("ballast could not find a free port in {START_ATTEMPTS} attempts");
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let log = self.log();
            if log.contains("ready to serve client requests") {
                return Ok(());
            }
            if let Some(status) = self
                .child
                .as_mut()
                .expect("spawned")
                .try_wait()
                .expect("poll child")
            {
                self.child = None;
                return Err(format!("exited with {status}:\n{log}"));
            }
            if Instant::now() > deadline {
                return Err(format!("not ready after {START_TIMEOUT:?}:\n{log}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
        child.wait().expect("wait for ballast")
    }

    /// Starts the node again on its data directory (on a new port).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart of a running node");
        self.launch();
    }

    /// Starts the node again on its data directory and its old port, so clients that
    /// know the old address reconnect (panics if the port was taken meanwhile).
    pub fn restart_same_port(&mut self) {
        assert!(self.child.is_none(), "restart of a running node");
        let port = self.port;
        self.launch_on(Some(port));
        assert_eq!(self.port, port, "the old port was taken");
    }

    /// A client connected to this node.
    pub async fn client(&self) -> Client {
        Client::connect([self.endpoint()], ConnectOptions::default())
            .await
            .expect("connect to ballast")
    }

    /// Resident memory of the process in bytes (Linux).
    pub fn rss_bytes(&self) -> u64 {
        let statm =
            std::fs::read_to_string(format!("/proc/{}/statm", self.pid())).unwrap_or_default();
        statm
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u64>().ok())
            .map_or(0, |pages| pages * 4096)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A real etcd (Debian's etcd-server) on loopback, for side-by-side measurements and for
/// holding our client to the reference server.
#[derive(Debug)]
pub struct Etcd {
    pub dir: PathBuf,
    pub port: u16,
    /// Extra flags, e.g. TLS files or `--auth-token-ttl`.
    pub extra_args: Vec<String>,
    /// Serve clients over https.
    pub https: bool,
    child: Option<Child>,
    log: PathBuf,
}

impl Etcd {
    /// Starts a single-member etcd in `dir`; waits until it answers.
    pub fn start(dir: &Path) -> Etcd {
        Etcd::start_with(dir, &[], false)
    }

    /// Starts etcd with extra flags, over https if `https` (the flags must name the
    /// certificate and key).
    pub fn start_with(dir: &Path, extra_args: &[&str], https: bool) -> Etcd {
        let mut etcd = Etcd {
            dir: dir.to_path_buf(),
            port: 0,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            https,
            child: None,
            log: dir.with_extension("etcd.log"),
        };
        etcd.launch();
        etcd
    }

    fn launch(&mut self) {
        self.port = free_port();
        let peer = free_port();
        let scheme = if self.https { "https" } else { "http" };
        let url = format!("{scheme}://127.0.0.1:{}", self.port);
        let peer_url = format!("http://127.0.0.1:{peer}");
        let log = std::fs::File::create(&self.log).expect("create etcd log");
        let child = Command::new("etcd")
            .args(["--name", "etcd", "--data-dir"])
            .arg(&self.dir)
            .args([
                "--listen-client-urls",
                &url,
                "--advertise-client-urls",
                &url,
            ])
            .args([
                "--listen-peer-urls",
                &peer_url,
                "--initial-advertise-peer-urls",
                &peer_url,
            ])
            .args(["--initial-cluster", &format!("etcd={peer_url}")])
            .args(&self.extra_args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("etcd is installed (Debian package etcd-server)");
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            if log.contains("ready to serve client requests") {
                return;
            }
            assert!(Instant::now() < deadline, "etcd did not start:\n{log}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts etcd again on its data directory.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart of a running etcd");
        self.launch();
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Resident memory of a process in bytes (Linux).
pub fn rss_of(pid: u32) -> u64 {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).unwrap_or_default();
    statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// Runs etcdctl (v3 API) against `endpoint`; returns (success, stdout, stderr).
pub fn etcdctl(endpoint: &str, args: &[&str]) -> (bool, String, String) {
    etcdctl_stdin(endpoint, args, None)
}

/// Like [`etcdctl`], feeding `stdin` (for `etcdctl txn`).
pub fn etcdctl_stdin(endpoint: &str, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    use std::io::Write;
    let mut child = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .arg("--command-timeout=10s")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("etcdctl is installed (Debian package etcd-client)");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(input.as_bytes())
            .expect("write etcdctl stdin");
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("run etcdctl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Polls `check` until it holds or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
