//! A snapshot install killed at each of its steps: a child process aborts at a crash
//! point (`ballast_store::crash`), as kill -9 would stop a member catching up by
//! snapshot. Every time, the store opens with the snapshot's state and a raft log that
//! raft-rs accepts: its commit index is never behind the installed snapshot.

mod common;

use std::path::Path;
use std::process::Command;

use ballast_store::crash::CRASH_AT;
use ballast_store::{LogStore, Store};
use common::*;
use raft::eraftpb::{Entry, HardState};

/// Where the install stops, in the order it reaches them.
const CRASH_POINTS: [&str; 4] = [
    "snapshot-install-marked",
    "snapshot-install-cleared",
    "snapshot-install-staged",
    "snapshot-install-written",
];
/// Keys in the snapshot: more than one install batch, so "staged" is reached.
const KEYS: usize = 12_000;
/// The child's store directory and the snapshot it installs.
const CHILD_DB: &str = "BALLAST_TEST_CHILD_DB";
const CHILD_SNAPSHOT: &str = "BALLAST_TEST_CHILD_SNAPSHOT";
const CHILD_TEST: &str = "child_installs_a_snapshot";

#[test]
#[ignore = "the child of a_crash_at_each_install_step_leaves_a_store_raft_can_start"]
fn child_installs_a_snapshot() {
    let (Ok(db), Ok(snapshot)) = (std::env::var(CHILD_DB), std::env::var(CHILD_SNAPSHOT)) else {
        return;
    };
    let store = Store::open(Path::new(&db)).unwrap();
    store.install_snapshot(Path::new(&snapshot)).unwrap();
    store.close();
}

#[test]
fn a_crash_at_each_install_step_leaves_a_store_raft_can_start() {
    let mut source = TestStore::new();
    for i in 0..KEYS {
        source.put(&format!("key/{i:05}"), "value");
    }
    source.delete("key/00000", "");
    source.commit();
    let (meta, snapshot) = source.store().write_snapshot().unwrap();
    let source_hash = source.store().hash_kv(0).unwrap();

    for point in CRASH_POINTS {
        // A member behind the snapshot: its own keys, and a raft log committed to 3.
        let mut target = TestStore::new();
        target.put("stale", "x");
        target.close();
        let db = target.dir.path().join("db");
        {
            let store = Store::open(&db).unwrap();
            let log = LogStore::open(store.clone()).unwrap();
            let entries: Vec<Entry> = (1..=3)
                .map(|index| Entry {
                    index,
                    term: 1,
                    ..Default::default()
                })
                .collect();
            let hard_state = HardState {
                term: 1,
                vote: 1,
                commit: 3,
                ..Default::default()
            };
            log.persist(&entries, Some(&hard_state), true).unwrap();
            // As the receiver leaves it: the verified file in the member's snap dir.
            std::fs::create_dir_all(store.snap_dir()).unwrap();
            let received = store.snap_dir().join(snapshot.file_name().unwrap());
            std::fs::copy(&snapshot, &received).unwrap();
            store.close();
        }
        let received = target
            .dir
            .path()
            .join("snap")
            .join(snapshot.file_name().unwrap());
        assert!(received.exists(), "the snap dir is beside the db");

        let status = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", CHILD_TEST, "--ignored", "--nocapture"])
            .env(CHILD_DB, &db)
            .env(CHILD_SNAPSHOT, &received)
            .env(CRASH_AT, point)
            .output()
            .unwrap();
        assert!(
            !status.status.success(),
            "the child never reached {point}: {}",
            String::from_utf8_lossy(&status.stdout)
        );

        let store = Store::open(&db).unwrap();
        assert_eq!(
            store.applied_index(),
            meta.index,
            "after a crash at {point}"
        );
        assert_eq!(store.hash_kv(0).unwrap(), source_hash, "after {point}");
        let log = LogStore::open(store.clone()).unwrap();
        assert!(
            log.hard_state().commit >= meta.index,
            "commit {} behind the snapshot at {} after {point}",
            log.hard_state().commit,
            meta.index
        );
        // raft-rs checks the commit against the log when it starts; it panics if out of range.
        let config = raft::Config {
            id: 1,
            ..Default::default()
        };
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let node = raft::RawNode::new(&config, log, &logger).unwrap();
        assert!(node.raft.raft_log.committed >= meta.index, "after {point}");
        drop(node);
        store.close();
    }
}
