//! The raft log as raft-rs sees it: entries read back (from the in-memory tail or from
//! RocksDB) exactly as written, a conflicting tail replaced, truncation, restarts.

mod common;

use ballast_store::raft_log::LOG_TAIL_BYTES_MAX;
use ballast_store::LogStore;
use common::TestStore;
use protobuf::Message as _;
use raft::eraftpb::Entry;
use raft::{GetEntriesContext, Storage};

fn entry(index: u64, term: u64, size: usize) -> Entry {
    Entry {
        index,
        term,
        data: vec![(index % 251) as u8; size].into(),
        ..Default::default()
    }
}

fn read(log: &LogStore, low: u64, high: u64, max: Option<u64>) -> Vec<(u64, u64, usize)> {
    log.entries(low, high, max, GetEntriesContext::empty(false))
        .unwrap()
        .iter()
        .map(|e| (e.index, e.term, e.data.len()))
        .collect()
}

fn open_log(t: &TestStore) -> LogStore {
    LogStore::open(t.store().clone()).unwrap()
}

#[test]
fn entries_read_back_as_written_and_a_conflicting_tail_is_replaced() {
    let mut t = TestStore::new();
    let log = open_log(&t);
    let first: Vec<_> = (1..=10).map(|i| entry(i, 1, 10)).collect();
    log.persist(&first, None, true).unwrap();
    assert_eq!(
        read(&log, 3, 6, None),
        vec![(3, 1, 10), (4, 1, 10), (5, 1, 10)]
    );
    // A new leader overwrites 6.. with a shorter tail of its own term.
    let replacement: Vec<_> = (6..=7).map(|i| entry(i, 2, 20)).collect();
    log.persist(&replacement, None, true).unwrap();
    assert_eq!(log.last_index(), 7);
    let expected = vec![(5, 1, 10), (6, 2, 20), (7, 2, 20)];
    assert_eq!(read(&log, 5, 8, None), expected);
    assert_eq!(log.term(6).unwrap(), 2);
    // The same after a restart, when everything comes from RocksDB.
    drop(log);
    t.reopen();
    let log = open_log(&t);
    assert_eq!(log.last_index(), 7);
    assert_eq!(read(&log, 5, 8, None), expected);
}

#[test]
fn max_size_returns_at_least_one_entry_and_stops_before_the_limit() {
    let t = TestStore::new();
    let log = open_log(&t);
    let entries: Vec<_> = (1..=5).map(|i| entry(i, 1, 100)).collect();
    log.persist(&entries, None, true).unwrap();
    let one = u64::from(entries[0].compute_size());
    assert_eq!(read(&log, 1, 6, Some(0)).len(), 1);
    assert_eq!(read(&log, 1, 6, Some(2 * one)).len(), 2);
    assert_eq!(read(&log, 1, 6, Some(2 * one + 1)).len(), 2);
}

#[test]
fn entries_older_than_the_tail_come_from_rocksdb_and_truncation_drops_them() {
    let t = TestStore::new();
    let log = open_log(&t);
    // Twice the tail's budget: the first half is only in RocksDB.
    let size = 64 << 10;
    let count = (2 * LOG_TAIL_BYTES_MAX / size) as u64;
    for i in 1..=count {
        log.persist(&[entry(i, 1, size)], None, false).unwrap();
    }
    for (low, high) in [
        (1, 4),
        (count / 2 - 1, count / 2 + 2),
        (count - 2, count + 1),
    ] {
        let got = read(&log, low, high, None);
        let want: Vec<_> = (low..high).map(|i| (i, 1, size)).collect();
        assert_eq!(got, want);
    }
    let mut batch = t.store().apply_batch();
    batch.skip(count, 1);
    batch.write().unwrap();
    log.truncate(count - 3).unwrap();
    assert_eq!(log.first_index(), count - 2);
    assert!(log
        .entries(count - 3, count, None, GetEntriesContext::empty(false))
        .is_err());
    assert_eq!(read(&log, count - 2, count + 1, None).len(), 3);
}

/// Truncation gives the disk back at once: the files holding only truncated entries are
/// dropped, not left for a compaction that sequential log keys may never get (their
/// files move down the levels untouched). Before this, 1,000,000 puts of 10 KB left
/// 19 GB on disk for 10 GB of values.
#[test]
fn truncation_drops_the_files_of_truncated_entries() {
    let t = TestStore::new();
    let log = open_log(&t);
    let backend = t.store().backend();
    let size = 64 << 10;
    let per_file = 64;
    let files = 16;
    for i in 1..=per_file * files {
        // Values RocksDB cannot compress, as real ones mostly are.
        let mut e = entry(i, 1, 0);
        let mut data = vec![0; size as usize];
        fastrand::Rng::with_seed(i).fill(&mut data);
        e.data = data.into();
        log.persist(&[e], None, false).unwrap();
        if i % per_file == 0 {
            backend.flush().unwrap();
        }
    }
    let written = backend.size_bytes();
    let last = per_file * files;
    assert!(written >= last * size, "{written} bytes on disk");
    let mut batch = t.store().apply_batch();
    batch.skip(last, 1);
    batch.write().unwrap();
    log.truncate(last - 3).unwrap();
    backend.flush().unwrap();
    let left = backend.size_bytes();
    // What remains is level 0 (RocksDB drops files this way only from level 1 down, and
    // compacts level 0 once 4 files are there) and the file with the last entries.
    assert!(
        left <= 5 * per_file * size,
        "{left} of {written} bytes left after truncating all but 3 entries"
    );
    assert_eq!(read(&log, last - 2, last + 1, None).len(), 3);
}
