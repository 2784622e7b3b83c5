//! Python clients nobody here wrote (etcd3gw), installed under `.tools/python` by
//! `scripts/ensure-python-clients` on first use.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::binaries::installed_tool;

/// The directory to put on PYTHONPATH.
pub fn python_clients_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| installed_tool("ensure-python-clients", "python"))
}

/// Runs `script` (a path under `tests/python`) with the clients importable; returns
/// (success, stdout, stderr).
pub fn run_python(script: &str, args: &[&str]) -> (bool, String, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join(script);
    let output = Command::new("python3")
        .arg(path)
        .args(args)
        .env("PYTHONPATH", python_clients_dir())
        .output()
        .expect("run python3");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
