//! Test harness: start real `ballast` processes on loopback, talk to them with
//! `ballast-client` and `etcdctl`, kill and restart them.
//!
//! Nodes listen on ports picked free just before start; a start that loses the race
//! for its port is retried on another. Waits are on conditions (the node's "ready" log
//! line, a revision reached), never fixed sleeps.

pub mod linearizability;

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
        build.args(["build", "--quiet", "--workspace", "--examples"]);
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

/// The lowest port handed out; below it sit well-known services.
const PORT_FLOOR: u16 = 10_000;

/// A port that was free a moment ago, below the kernel's ephemeral range: a port from
/// that range can be taken by any outgoing connection (a member dialing its peers)
/// between the pick and the listen. Ports are handed out in turn from a start that
/// differs per process, so no two nodes of one test process get the same one.
pub fn free_port() -> u16 {
    static NEXT: std::sync::Mutex<Option<u16>> = std::sync::Mutex::new(None);
    let ceiling = ephemeral_floor();
    if ceiling <= PORT_FLOOR + 1 {
        return ephemeral_port();
    }
    let span = ceiling - PORT_FLOOR;
    let mut next = NEXT.lock().expect("port counter lock poisoned");
    let mut port = next.unwrap_or_else(|| {
        let seed = std::process::id()
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
        PORT_FLOOR + (seed % u32::from(span)) as u16
    });
    for _ in 0..span {
        let candidate = port;
        port = if port + 1 >= ceiling {
            PORT_FLOOR
        } else {
            port + 1
        };
        if TcpListener::bind(("127.0.0.1", candidate)).is_ok() {
            *next = Some(port);
            return candidate;
        }
    }
    ephemeral_port()
}

/// The first port of the kernel's ephemeral range (Linux's default when unreadable).
fn ephemeral_floor() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

fn ephemeral_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// A `ballast` process with its own data directory.
#[derive(Debug)]
pub struct Node {
    pub dir: PathBuf,
    pub name: String,
    /// Client port (gRPC and HTTP).
    pub port: u16,
    /// Peer port: part of the member's identity, kept across restarts.
    pub peer_port: u16,
    /// `--initial-cluster`; None for a member alone.
    pub initial_cluster: Option<String>,
    /// `--initial-cluster-state`.
    pub cluster_state: String,
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

    /// Starts a single-member node with extra flags.
    pub fn start_with(dir: &Path, extra_args: &[&str]) -> Node {
        let mut node = Node::new(dir, "node", free_port(), None, extra_args);
        node.launch();
        node
    }

    /// A node not started yet, for clusters.
    pub fn new(
        dir: &Path,
        name: &str,
        peer_port: u16,
        initial_cluster: Option<String>,
        extra_args: &[&str],
    ) -> Node {
        Node {
            dir: dir.to_path_buf(),
            name: name.to_string(),
            port: 0,
            peer_port,
            initial_cluster,
            cluster_state: "new".into(),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            env: Vec::new(),
            child: None,
            log: PathBuf::new(),
            starts: 0,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    pub fn address(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The node's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn launch(&mut self) {
        self.launch_on(None);
    }

    /// Starts the process and waits for it; on `port` if given (once), else on a fresh
    /// free port.
    fn launch_on(&mut self, mut port: Option<u16>) {
        for _ in 0..START_ATTEMPTS {
            self.port = port.take().unwrap_or_else(free_port);
            self.spawn();
            match self.wait_ready() {
                Ok(()) => return,
                Err(log) if log.contains("Address already in use") && self.starts == 1 => {
                    // Only a first start may move its peer port: it is not known yet.
                    self.peer_port = free_port();
                    self.starts = 0;
                    continue;
                }
                Err(log) if log.contains("Address already in use") => continue,
                Err(log) => panic!("ballast did not start:\n{log}"),
            }
        }
        panic!("ballast could not find a free port in {START_ATTEMPTS} attempts");
    }

    /// Starts the process without waiting for it to serve (cluster members need each
    /// other to elect a leader first). Picks a client port if none is set.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "spawn of a running node");
        if self.port == 0 {
            self.port = free_port();
        }
        self.starts += 1;
        self.log = self.dir.with_extension(format!("log.{}", self.starts));
        let log = std::fs::File::create(&self.log).expect("create log file");
        let url = self.url();
        let peer = self.peer_url();
        let initial = self
            .initial_cluster
            .clone()
            .unwrap_or_else(|| format!("{}={peer}", self.name));
        let mut command = Command::new(ballast_binary());
        command
            .args(["--name", &self.name, "--data-dir"])
            .arg(&self.dir)
            .args([
                "--listen-client-urls",
                &url,
                "--advertise-client-urls",
                &url,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args([
                "--initial-cluster",
                &initial,
                "--initial-cluster-state",
                &self.cluster_state,
            ])
            .args(&self.extra_args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log);
        self.child = Some(command.spawn().expect("spawn ballast"));
    }

    /// Waits until the node serves clients (it has a leader).
    pub fn wait_ready(&mut self) -> Result<(), String> {
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

    /// Sends a signal to the process (e.g. "STOP", "CONT").
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal}");
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

    /// Starts the node again on its data directory (on a new client port).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart of a running node");
        self.launch();
    }

    /// Starts the node again without waiting (for members of a cluster that may need
    /// the others back first), on a new client port: the old one may have been taken.
    pub fn respawn(&mut self) {
        assert!(self.child.is_none(), "restart of a running node");
        self.port = 0;
        self.spawn();
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

/// A cluster of `ballast` processes on loopback.
#[derive(Debug)]
pub struct TestCluster {
    pub dir: PathBuf,
    pub nodes: Vec<Node>,
}

impl TestCluster {
    /// Starts `size` members named n0, n1, ... and waits until every one serves.
    pub fn start(dir: &Path, size: usize, extra_args: &[&str]) -> TestCluster {
        std::fs::create_dir_all(dir).expect("cluster directory");
        let peer_ports: Vec<u16> = (0..size).map(|_| free_port()).collect();
        let initial = (0..size)
            .map(|i| format!("n{i}=http://127.0.0.1:{}", peer_ports[i]))
            .collect::<Vec<_>>()
            .join(",");
        let mut nodes: Vec<Node> = (0..size)
            .map(|i| {
                Node::new(
                    &dir.join(format!("n{i}")),
                    &format!("n{i}"),
                    peer_ports[i],
                    Some(initial.clone()),
                    extra_args,
                )
            })
            .collect();
        for node in &mut nodes {
            node.spawn();
        }
        for node in &mut nodes {
            if let Err(log) = node.wait_ready() {
                panic!("member {} did not start:\n{log}", node.name);
            }
        }
        TestCluster {
            dir: dir.to_path_buf(),
            nodes,
        }
    }

    /// Client endpoints of the running members.
    pub fn endpoints(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.is_running())
            .map(|n| n.endpoint())
            .collect()
    }

    /// A client of every running member.
    pub async fn client(&self) -> Client {
        Client::connect(self.endpoints(), ConnectOptions::default())
            .await
            .expect("connect to the cluster")
    }

    /// Index of the member that leads, as the running members agree; waits for one.
    pub async fn leader(&self) -> usize {
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            let mut ids = Vec::new();
            let mut leaders = Vec::new();
            for node in self.nodes.iter().filter(|n| n.is_running()) {
                let Ok(client) =
                    Client::connect([node.endpoint()], ConnectOptions::default()).await
                else {
                    continue;
                };
                if let Ok(status) = client.status().await {
                    ids.push((status.header.member_id, node.name.clone()));
                    leaders.push(status.leader);
                }
            }
            if let Some(&leader) = leaders.first() {
                if leader != 0 && leaders.iter().all(|l| *l == leader) {
                    if let Some((_, name)) = ids.iter().find(|(id, _)| *id == leader) {
                        return self
                            .nodes
                            .iter()
                            .position(|n| &n.name == name)
                            .expect("known name");
                    }
                }
            }
            assert!(tokio::time::Instant::now() < deadline, "no agreed leader");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
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

/// A cluster of real etcd processes (Debian's etcd-server) on loopback.
#[derive(Debug)]
pub struct EtcdCluster {
    pub members: Vec<(Child, u16, PathBuf)>,
}

impl EtcdCluster {
    /// Starts `size` members and waits until each serves.
    pub fn start(dir: &Path, size: usize) -> EtcdCluster {
        std::fs::create_dir_all(dir).expect("cluster directory");
        let clients: Vec<u16> = (0..size).map(|_| free_port()).collect();
        let peers: Vec<u16> = (0..size).map(|_| free_port()).collect();
        let initial = (0..size)
            .map(|i| format!("e{i}=http://127.0.0.1:{}", peers[i]))
            .collect::<Vec<_>>()
            .join(",");
        let mut members = Vec::new();
        for i in 0..size {
            let data = dir.join(format!("e{i}"));
            let log = std::fs::File::create(data.with_extension("log")).expect("etcd log");
            let client = format!("http://127.0.0.1:{}", clients[i]);
            let peer = format!("http://127.0.0.1:{}", peers[i]);
            let child = Command::new("etcd")
                .args(["--name", &format!("e{i}"), "--data-dir"])
                .arg(&data)
                .args([
                    "--listen-client-urls",
                    &client,
                    "--advertise-client-urls",
                    &client,
                ])
                .args([
                    "--listen-peer-urls",
                    &peer,
                    "--initial-advertise-peer-urls",
                    &peer,
                ])
                .args([
                    "--initial-cluster",
                    &initial,
                    "--initial-cluster-state",
                    "new",
                ])
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("etcd is installed (Debian package etcd-server)");
            members.push((child, clients[i], data));
        }
        let deadline = Instant::now() + START_TIMEOUT;
        for (_, _, data) in &members {
            loop {
                let log = std::fs::read_to_string(data.with_extension("log")).unwrap_or_default();
                if log.contains("ready to serve client requests") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "etcd member did not start:\n{log}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        EtcdCluster { members }
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|(_, port, _)| format!("127.0.0.1:{port}"))
            .collect()
    }

    pub fn pids(&self) -> Vec<u32> {
        self.members
            .iter()
            .map(|(child, _, _)| child.id())
            .collect()
    }

    pub fn data_dirs(&self) -> Vec<PathBuf> {
        self.members
            .iter()
            .map(|(_, _, data)| data.clone())
            .collect()
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for (child, _, _) in &mut self.members {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Peak resident memory of a process in bytes (VmHWM, Linux).
pub fn peak_rss_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Bytes of files under `dir`.
pub fn disk_usage(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => disk_usage(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
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

/// A plain HTTP/1.1 GET on loopback; returns the whole response, headers included.
pub async fn http_get(address: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    socket
        .write_all(request.as_bytes())
        .await
        .expect("send request");
    let mut response = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        socket.read_to_string(&mut response),
    )
    .await
    .expect("an HTTP answer in time")
    .expect("read response");
    response
}

/// A small deterministic random number generator (xorshift64*), so workloads replay
/// from their seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..bound`.
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }
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
