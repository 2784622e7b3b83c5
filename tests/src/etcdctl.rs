//! `etcdctl`, the client nobody here wrote.

use std::process::{Command, Stdio};

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
