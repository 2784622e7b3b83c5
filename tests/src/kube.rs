//! `ballast-apiserver` in front of a store, with a development PKI and an admin
//! kubeconfig (`scripts/kube-dev-pki`), driven by the real kubectl 1.32.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::{ballast_binary, free_port, WAIT};

/// kubectl 1.32 itself (the bare `kubectl` on these machines is a version dispatcher).
pub const KUBECTL: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.32";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Path of the `ballast-apiserver` binary, built once per test process.
pub fn apiserver_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let profile_dir = ballast_binary()
            .parent()
            .expect("target/<profile>")
            .to_path_buf();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build.args(["build", "--quiet", "-p", "ballast-apiserver", "--bins"]);
        if profile_dir.ends_with("release") {
            build.arg("--release");
        }
        assert!(
            build.status().expect("run cargo build").success(),
            "building ballast-apiserver failed"
        );
        profile_dir.join("ballast-apiserver")
    })
}

/// One `ballast-apiserver` process.
#[derive(Debug)]
pub struct ApiServer {
    /// Its directory: pki/, kubeconfig, kubectl's home.
    pub dir: PathBuf,
    /// The HTTPS port.
    pub port: u16,
    child: Option<Child>,
    log: PathBuf,
}

impl ApiServer {
    /// Starts an API server over `etcd_servers` in `dir` and waits until it is ready.
    pub fn start(dir: &Path, etcd_servers: &[String], extra_args: &[&str]) -> ApiServer {
        std::fs::create_dir_all(dir.join("home")).expect("create the API server's dir");
        let port = free_port();
        let status = Command::new(workspace().join("scripts/kube-dev-pki"))
            .arg(dir)
            .arg(port.to_string())
            .stdout(Stdio::null())
            .status()
            .expect("run scripts/kube-dev-pki");
        assert!(status.success(), "scripts/kube-dev-pki failed");
        let log = dir.join("apiserver.log");
        let pki = dir.join("pki");
        let child = Command::new(apiserver_binary())
            .arg("--etcd-servers")
            .arg(etcd_servers.join(","))
            .args([
                "--bind-address",
                "127.0.0.1",
                "--secure-port",
                &port.to_string(),
            ])
            .arg("--tls-cert-file")
            .arg(pki.join("apiserver.crt"))
            .arg("--tls-private-key-file")
            .arg(pki.join("apiserver.key"))
            .arg("--client-ca-file")
            .arg(pki.join("ca.crt"))
            .arg("--cert-dir")
            .arg(dir.join("cert-dir"))
            .args(extra_args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("create the log"))
            .spawn()
            .expect("spawn ballast-apiserver");
        let mut server = ApiServer {
            dir: dir.to_path_buf(),
            port,
            child: Some(child),
            log,
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + WAIT;
        loop {
            let (ok, out, _) = self.kubectl(&["get", "--raw", "/readyz"]);
            if ok && out.trim() == "ok" {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().expect("poll"))
            {
                panic!("ballast-apiserver exited with {status}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "ballast-apiserver not ready:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The admin kubeconfig.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A kubectl command, ready to run as the admin with its own home (discovery cache).
    pub fn kubectl_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(KUBECTL);
        command
            .args(args)
            .env("KUBECONFIG", self.kubeconfig())
            .env("HOME", self.dir.join("home"))
            .env_remove("KUBERNETES_SERVICE_HOST");
        command
    }

    /// Runs kubectl; returns (success, stdout, stderr).
    pub fn kubectl(&self, args: &[&str]) -> (bool, String, String) {
        self.kubectl_stdin(args, None)
    }

    /// Runs kubectl with `stdin`; returns (success, stdout, stderr).
    pub fn kubectl_stdin(&self, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        use std::io::Write as _;
        let mut child = self
            .kubectl_command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("run {KUBECTL}: {e}"));
        let mut input = child.stdin.take().expect("stdin");
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).expect("write stdin");
        }
        drop(input);
        let output = child.wait_with_output().expect("kubectl output");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// One HTTPS request with curl as the admin: (status, headers, body). `body` is sent
    /// with `content_type` when given.
    pub fn curl(
        &self,
        method: &str,
        path: &str,
        headers: &[&str],
        body: Option<(&str, &str)>,
    ) -> (u16, String, String) {
        self.curl_with(&[], method, path, headers, body)
    }

    /// [`ApiServer::curl`] with more curl options (`--http1.1`).
    pub fn curl_with(
        &self,
        options: &[&str],
        method: &str,
        path: &str,
        headers: &[&str],
        body: Option<(&str, &str)>,
    ) -> (u16, String, String) {
        let pki = self.dir.join("pki");
        let mut command = Command::new("curl");
        command
            .args(["-sS", "-D", "-", "-X", method])
            .arg("--cacert")
            .arg(pki.join("ca.crt"))
            .arg("--cert")
            .arg(pki.join("admin.crt"))
            .arg("--key")
            .arg(pki.join("admin.key"))
            .args(["--max-time", "30"])
            .args(options);
        for header in headers {
            command.args(["-H", header]);
        }
        if let Some((content_type, data)) = body {
            command.args([
                "-H",
                &format!("Content-Type: {content_type}"),
                "--data-binary",
                data,
            ]);
        }
        let output = command
            .arg(format!("{}{path}", self.url()))
            .output()
            .expect("run curl");
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "curl {method} {path}: {text}{}",
                    String::from_utf8_lossy(&output.stderr)
                )
            });
        (status, head.to_string(), body.to_string())
    }

    /// Runs kubectl and returns its stdout; panics with its stderr if it fails.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.kubectl(args);
        assert!(ok, "kubectl {args:?} failed: {err}\n{out}");
        out
    }

    /// Runs kubectl expecting a failure; returns its stderr.
    pub fn kubectl_fails(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.kubectl(args);
        assert!(!ok, "kubectl {args:?} succeeded: {out}");
        err
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
