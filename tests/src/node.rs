//! One `ballast` process with its own data directory: start, kill, restart.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use ballast_client::{Client, ConnectOptions};

use crate::flags::member_flags;
use crate::{ballast_binary, free_port, rss_of, WAIT};

/// Starts retried when the picked port was taken meanwhile.
const START_ATTEMPTS: usize = 5;

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
            .args(member_flags(
                &self.name,
                &self.dir,
                &url,
                &peer,
                &initial,
                &self.cluster_state,
            ))
            .args(&self.extra_args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log);
        self.child = Some(command.spawn().expect("spawn ballast"));
    }

    /// Waits until the node serves clients (it has a leader).
    pub fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + WAIT;
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
                return Err(format!("not ready after {WAIT:?}:\n{log}"));
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
        rss_of(self.pid())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}
