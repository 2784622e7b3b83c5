//! The binaries under test, built once per test process in the test's own profile.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

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
        // Both binaries of the server crate: `ballast` and `ballastutl`.
        build.args(["build", "--quiet", "-p", "ballast-server", "--bins"]);
        if profile_dir.ends_with("release") {
            build.arg("--release");
        }
        let status = build.status().expect("run cargo build");
        assert!(status.success(), "building ballast failed");
        profile_dir.join("ballast")
    })
}

/// Path of the `ballastutl` binary, built with `ballast`.
pub fn ballastutl_binary() -> PathBuf {
    ballast_binary().with_file_name("ballastutl")
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

/// Runs `scripts/<script>` of the workspace (the installers of outside tools, which do
/// nothing when the tool is there) and returns `.tools/<dir>`.
pub(crate) fn installed_tool(script: &str, dir: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf();
    let status = Command::new(root.join("scripts").join(script))
        .status()
        .unwrap_or_else(|e| panic!("run scripts/{script}: {e}"));
    assert!(status.success(), "scripts/{script} failed");
    root.join(".tools").join(dir)
}
