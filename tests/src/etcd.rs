//! Real etcd processes (Debian's etcd-server, or the binary `BALLAST_ETCD` names),
//! alone or as a cluster.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::flags::member_flags;
use crate::{etcd_35_dir, free_port, WAIT};

/// How long etcd may take to serve after it starts: it rebuilds its whole key index
/// first (35 s with 10,000,000 keys on this project's machines, for `scale`).
const START_WAIT: Duration = Duration::from_secs(300);

/// The etcd these helpers start: `BALLAST_ETCD` names a binary, or `3.5.1` for the one
/// `scripts/ensure-etcd-3.5` installs (installed on first use); unset, Debian's `etcd`
/// on the PATH.
pub fn etcd_binary() -> PathBuf {
    match std::env::var("BALLAST_ETCD") {
        Ok(name) if name == "3.5.1" || name == "3.5" => etcd_35_dir().join("etcd"),
        Ok(path) if !path.is_empty() => PathBuf::from(path),
        _ => PathBuf::from("etcd"),
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
    /// The etcd binary ([`etcd_binary`] unless a constructor says otherwise).
    pub binary: PathBuf,
    /// The peer port; 0 picks one at each start.
    peer_port: u16,
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
            binary: etcd_binary(),
            peer_port: 0,
            child: None,
            log: dir.with_extension("etcd.log"),
        };
        etcd.launch();
        etcd
    }

    /// Restores `snapshot` into `dir` with etcdutl 3.5.1 (`snapshot restore`, checking
    /// its SHA-256) and starts etcd 3.5.1 on the data dir it made.
    pub fn start_restored(dir: &Path, snapshot: &Path) -> Etcd {
        let peer_port = free_port();
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let output = Command::new(etcd_35_dir().join("etcdutl"))
            .args(["snapshot", "restore"])
            .arg(snapshot)
            .arg("--data-dir")
            .arg(dir)
            .args(["--name", "etcd", "--initial-cluster"])
            .arg(format!("etcd={peer_url}"))
            .args(["--initial-advertise-peer-urls", &peer_url])
            .output()
            .expect("run etcdutl");
        assert!(
            output.status.success(),
            "etcdutl snapshot restore failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let mut etcd = Etcd {
            dir: dir.to_path_buf(),
            port: 0,
            extra_args: Vec::new(),
            https: false,
            binary: etcd_35_dir().join("etcd"),
            peer_port,
            child: None,
            log: dir.with_extension("etcd.log"),
        };
        etcd.launch();
        etcd
    }

    fn launch(&mut self) {
        self.port = free_port();
        let peer = if self.peer_port == 0 {
            free_port()
        } else {
            self.peer_port
        };
        let scheme = if self.https { "https" } else { "http" };
        let url = format!("{scheme}://127.0.0.1:{}", self.port);
        let peer_url = format!("http://127.0.0.1:{peer}");
        let log = std::fs::File::create(&self.log).expect("create etcd log");
        let child = Command::new(&self.binary)
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
        let deadline = Instant::now() + START_WAIT;
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
            let child = Command::new(etcd_binary())
                .args(member_flags(
                    &format!("e{i}"),
                    &data,
                    &client,
                    &peer,
                    &initial,
                    "new",
                ))
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("etcd is installed (Debian package etcd-server)");
            members.push((child, clients[i], data));
        }
        let deadline = Instant::now() + WAIT;
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
