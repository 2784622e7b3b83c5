//! Snapshot files: written from one store, verified, installed into another, and an
//! install interrupted by a crash finished on the next open.

mod common;

use ballast_store::snapshot::verify;
use ballast_store::Store;
use common::*;

fn filled() -> TestStore {
    let mut t = TestStore::new();
    t.put("a", "1");
    t.put("b", "2");
    t.grant(5, 60).unwrap();
    t.put_lease("c", "3", 5).unwrap();
    t.delete("a", "");
    t.compact(3).unwrap();
    t
}

#[test]
fn a_snapshot_carries_the_whole_state_to_another_store() {
    let source = filled();
    let (meta, path) = source.store().write_snapshot().unwrap();
    assert_eq!(meta.index, source.store().applied_index());
    assert_eq!(verify(&path).unwrap(), meta);

    let target = TestStore::new();
    let installed = target.store().install_snapshot(&path).unwrap();
    assert_eq!(installed, meta);
    let store = target.store();
    assert_eq!(store.revisions(), source.store().revisions());
    assert_eq!(store.applied_index(), meta.index);
    assert!(target.get("a").kvs.is_empty());
    assert_eq!(target.get("c").kvs[0].lease, 5);
    assert_eq!(store.lease_keys(5).unwrap(), vec![b("c")]);
    assert_eq!(
        store.hash_kv(0).unwrap(),
        source.store().hash_kv(0).unwrap()
    );
}

#[test]
fn writes_after_an_install_build_on_the_snapshot_not_on_what_was_replaced() {
    let source = filled();
    let (_, path) = source.store().write_snapshot().unwrap();
    let mut target = TestStore::new();
    // The target's own versions of "b" and "x", which the snapshot replaces.
    for _ in 0..3 {
        target.put("b", "old");
    }
    target.put("x", "old");
    target.store().install_snapshot(&path).unwrap();
    target.index = source.index;
    let put = target.put("b", "new");
    let kv = &target.get("b").kvs[0];
    assert_eq!((kv.version, kv.create_revision), (2, 3), "{put:?}");
    target.put("x", "new");
    assert_eq!(target.get("x").kvs[0].version, 1);
}

#[test]
fn a_corrupt_snapshot_is_refused_and_changes_nothing() {
    let source = filled();
    let (_, path) = source.store().write_snapshot().unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    let bad = path.with_file_name("bad.snap");
    std::fs::write(&bad, bytes).unwrap();
    assert!(verify(&bad).is_err());
    let mut target = TestStore::new();
    target.put("mine", "kept");
    assert!(target.store().install_snapshot(&bad).is_err());
    assert_eq!(target.get("mine").kvs.len(), 1);
}

#[test]
fn an_install_interrupted_by_a_crash_is_finished_at_open() {
    let source = filled();
    let (meta, path) = source.store().write_snapshot().unwrap();
    let mut target = TestStore::new();
    target.put("stale", "x");
    // What a crash mid-install leaves: the marker naming a received file.
    let snap_dir = target.store().snap_dir().to_path_buf();
    std::fs::create_dir_all(&snap_dir).unwrap();
    let name = path.file_name().unwrap();
    std::fs::copy(&path, snap_dir.join(name)).unwrap();
    {
        let backend = target.store().backend();
        let mut batch = rocksdb::WriteBatch::default();
        batch.put_cf(
            backend.cf(ballast_store::backend::Cf::Meta),
            b"installing_snapshot",
            name.to_str().unwrap().as_bytes(),
        );
        backend.write(batch, true).unwrap();
    }
    target.reopen();
    assert_eq!(target.store().applied_index(), meta.index);
    assert!(
        target.get("stale").kvs.is_empty(),
        "the snapshot replaced the old state"
    );
    assert_eq!(target.get("b").kvs[0].value, b("2"));
    let _: &Store = target.store();
}

mod fuzz {
    //! Snapshot files arrive from the network: whatever bytes a file holds, `verify`
    //! answers (never panics), and a file it accepts installs.

    use super::*;
    use proptest::prelude::*;

    /// Files tried per run: mutations of a real snapshot.
    const CASES: u32 = 256;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(CASES))]

        #[test]
        fn verify_answers_whatever_the_bytes(
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
            cut in proptest::option::of(any::<prop::sample::Index>()),
            tail in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let source = filled();
            let (_, path) = source.store().write_snapshot().unwrap();
            let mut bytes = std::fs::read(&path).unwrap();
            for (at, value) in flips {
                let i = at.index(bytes.len());
                bytes[i] ^= value;
            }
            if let Some(at) = cut {
                bytes.truncate(at.index(bytes.len()));
            }
            bytes.extend(tail);
            let mangled = path.with_file_name("mangled.snap");
            std::fs::write(&mangled, &bytes).unwrap();
            if verify(&mangled).is_ok() {
                let target = TestStore::new();
                prop_assert!(target.store().install_snapshot(&mangled).is_ok());
            }
        }
    }
}
