//! The etcd-client crate's own lock and election tests (0.21, the Rust client most
//! projects use; its `v3lockpb`/`v3electionpb` calls) against a Ballast member: its
//! source as published, built as published, its `tests/client.rs` unchanged but for the
//! endpoint, which its harness fixes at `localhost:2379` and which here is the member's.

use std::path::{Path, PathBuf};
use std::process::Command;

use ballast_tests::Node;

const CRATE: &str = "etcd-client";
const VERSION: &str = "0.21.1";
/// Where its harness names the server.
const FIXED_ENDPOINT: &str = "localhost:2379";
/// The suite's tests of the Lock and Election services.
const TESTS: [&str; 2] = ["test_lock", "test_election"];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// The published crate's source directory, fetched through a throwaway project.
fn published_source(scratch: &Path) -> PathBuf {
    let project = scratch.join("fetch");
    std::fs::create_dir_all(project.join("src")).unwrap();
    std::fs::write(project.join("src/lib.rs"), "").unwrap();
    std::fs::write(
        project.join("Cargo.toml"),
        format!(
            "[package]\nname = \"fetch\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\n\
             [dependencies]\n{CRATE} = \"={VERSION}\"\n\n[workspace]\n"
        ),
    )
    .unwrap();
    let output = cargo()
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(project.join("Cargo.toml"))
        .output()
        .expect("run cargo metadata");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let manifest = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == CRATE && p["version"] == VERSION)
        .and_then(|p| p["manifest_path"].as_str())
        .expect("the crate is in the metadata");
    Path::new(manifest).parent().unwrap().to_path_buf()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn etcd_client_lock_and_election_tests_pass() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("n"));

    let source = published_source(dir.path());
    let copy = dir.path().join(CRATE);
    copy_dir(&source, &copy);
    let harness = copy.join("tests/testing.rs");
    let text = std::fs::read_to_string(&harness).unwrap();
    assert!(
        text.contains(FIXED_ENDPOINT),
        "the harness names {FIXED_ENDPOINT}"
    );
    std::fs::write(&harness, text.replace(FIXED_ENDPOINT, &node.endpoint())).unwrap();

    let mut test = cargo();
    test.args(["test", "--quiet", "--manifest-path"])
        .arg(copy.join("Cargo.toml"))
        .args(["--test", "client", "--"])
        .args(TESTS)
        .arg("--exact")
        // Built apart from the workspace, kept between runs.
        .env(
            "CARGO_TARGET_DIR",
            workspace_root().join("target/etcd-client-suite"),
        );
    // Its build generates code with protoc (Debian's protobuf-compiler, `make test`).
    if std::env::var_os("PROTOC").is_none() {
        test.env("PROTOC", "protoc");
    }
    let output = test.output().expect("run cargo test");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "etcd-client's tests failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("2 passed"),
        "both tests ran and passed:\n{stdout}"
    );
}
