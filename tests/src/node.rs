//! One `ballast` process with its own data directory: start, kill, restart.

use std::net::{SocketAddr, TcpListener};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use ballast_client::{Client, ConnectOptions};
use command_fds::{CommandFdExt, FdMapping};

use crate::flags::member_flags;
use crate::{ballast_binary, bind_port, port_of, rss_of, WAIT};

/// The first file descriptor a child inherits sockets on (systemd's `SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: i32 = 3;
/// How long one readiness probe waits for `/health` to answer.
const HEALTH_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

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
    /// "http", or "https" for a member whose peers talk TLS.
    pub peer_scheme: String,
    pub extra_args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// The peer socket the next start inherits, bound before it.
    peer_listener: Option<TcpListener>,
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
        let mut node = Node::new(dir, "node", bind_port(), None, extra_args);
        node.launch(None);
        node
    }

    /// A node not started yet, for clusters: its peer socket is bound already
    /// ([`bind_port`]), so its peer URL can go into `--initial-cluster`.
    pub fn new(
        dir: &Path,
        name: &str,
        peer: TcpListener,
        initial_cluster: Option<String>,
        extra_args: &[&str],
    ) -> Node {
        Node {
            dir: dir.to_path_buf(),
            name: name.to_string(),
            port: 0,
            peer_port: port_of(&peer),
            peer_listener: Some(peer),
            initial_cluster,
            cluster_state: "new".into(),
            peer_scheme: "http".into(),
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
        format!("{}://127.0.0.1:{}", self.peer_scheme, self.peer_port)
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

    /// Starts the process (on the client port `port`, else a new one) and waits until it
    /// serves.
    fn launch(&mut self, port: Option<u16>) {
        self.port = port.unwrap_or(0);
        self.spawn();
        if let Err(log) = self.wait_ready() {
            panic!("ballast did not start:\n{log}");
        }
    }

    /// Starts the process without waiting for it to serve (cluster members need each
    /// other to elect a leader first). Its sockets are bound here and inherited: the
    /// client port on a new port unless one is set, the peer port on the member's own
    /// (bound again after a restart; the member's identity, so it must not move).
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "spawn of a running node");
        let client = if self.port == 0 {
            bind_port()
        } else {
            TcpListener::bind(("127.0.0.1", self.port))
                .unwrap_or_else(|e| panic!("client port {} taken meanwhile: {e}", self.port))
        };
        self.port = port_of(&client);
        let peer = self.peer_listener.take().unwrap_or_else(|| {
            TcpListener::bind(("127.0.0.1", self.peer_port))
                .unwrap_or_else(|e| panic!("peer port {} taken while down: {e}", self.peer_port))
        });
        self.starts += 1;
        self.log = self.dir.with_extension(format!("log.{}", self.starts));
        let log = std::fs::File::create(&self.log).expect("create log file");
        let url = self.url();
        let peer_url = self.peer_url();
        let initial = self
            .initial_cluster
            .clone()
            .unwrap_or_else(|| format!("{}={peer_url}", self.name));
        let sockets: Vec<OwnedFd> = vec![client.into(), peer.into()];
        let count = sockets.len();
        let mappings = sockets
            .into_iter()
            .zip(LISTEN_FDS_START..)
            .map(|(parent_fd, child_fd)| FdMapping {
                parent_fd,
                child_fd,
            })
            .collect();
        let mut command = Command::new(ballast_binary());
        command
            .args(member_flags(
                &self.name,
                &self.dir,
                &url,
                &peer_url,
                &initial,
                &self.cluster_state,
            ))
            .args(&self.extra_args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("LISTEN_FDS", count.to_string())
            .stdout(Stdio::null())
            .stderr(log);
        command
            .fd_mappings(mappings)
            .expect("hand the sockets to ballast");
        // Our copies close when `command` is dropped: the child holds the sockets alone,
        // so a killed member's ports refuse connections as a dead process's would.
        self.child = Some(command.spawn().expect("spawn ballast"));
    }

    /// Waits until the node serves clients (it has a leader): its `/health` answers.
    pub fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + WAIT;
        loop {
            if self.health_probe() {
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
                return Err(format!("exited with {status}:\n{}", self.log()));
            }
            if Instant::now() > deadline {
                return Err(format!("not ready after {WAIT:?}:\n{}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// One GET of `/health`; true if it answered healthy. Before the member has a leader
    /// the request waits in the socket's backlog, so each probe is bounded.
    fn health_probe(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut socket) =
            std::net::TcpStream::connect_timeout(&self.address(), HEALTH_PROBE_TIMEOUT)
        else {
            return false;
        };
        let _ = socket.set_read_timeout(Some(HEALTH_PROBE_TIMEOUT));
        let request = "GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
        if socket.write_all(request.as_bytes()).is_err() {
            return false;
        }
        let mut response = String::new();
        let _ = socket.read_to_string(&mut response);
        response.starts_with("HTTP/1.1 200") && response.contains("\"health\":\"true\"")
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
        self.launch(None);
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
        self.launch(Some(port));
    }

    /// A client connected to this node.
    pub async fn client(&self) -> Client {
        Client::connect([self.endpoint()], ConnectOptions::default())
            .await
            .expect("connect to ballast")
    }

    /// The store's revision now.
    pub async fn revision(&self) -> i64 {
        let client = self.client().await;
        let answer = client
            .get("\0", ballast_client::GetOptions::new().with_keys_only())
            .await
            .expect("a read");
        answer.header.revision
    }

    /// The keys written after `revision` (and still there).
    pub async fn written_since(&self, revision: i64) -> Vec<String> {
        let client = self.client().await;
        let all = client
            .get(
                "/",
                ballast_client::GetOptions::new()
                    .with_prefix()
                    .with_keys_only(),
            )
            .await
            .expect("a read");
        all.kvs
            .iter()
            .filter(|kv| kv.mod_revision > revision)
            .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
            .collect()
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
