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
