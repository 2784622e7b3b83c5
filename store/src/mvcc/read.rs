//! Reading the `kv` column family at a revision.
//!
//! A [`ReadView`] is a consistent view of the store: a RocksDB snapshot plus the store
//! revision and compaction point that were current when it was taken. Versions newer
//! than the view's revision may be in the snapshot; they are skipped by revision.

use std::ops::ControlFlow;

use ballast_proto::mvccpb::KeyValue;
use bytes::Bytes;
use rocksdb::{DBRawIteratorWithThreadMode, ReadOptions, Snapshot, DB};

use crate::backend::{Backend, Cf};
use crate::error::Result;
use crate::keys::{
    after_all_versions, decode_key_prefix, key_prefix, push_revision, split_version_key,
    version_key,
};
use crate::range::{KeyRange, RangeEnd};
use crate::record::Version;

/// How many older versions of a key a scan steps over with `next` before it seeks past
/// them: one version per key is the common case, and `next` is much cheaper than a seek.
const SCAN_NEXT_BEFORE_SEEK: usize = 4;

/// Something the range and txn logic can read keys from.
pub trait KvRead {
    /// The revision reads default to: the store revision (plus this txn's own writes).
    fn revision(&self) -> i64;
    /// Reads below this revision fail with `Compacted`.
    fn compacted(&self) -> i64;
    /// Calls `visit` with the version of each key in `range` visible at `revision`, in
    /// key order, until it breaks. Values are left empty unless `with_values`.
    fn scan(
        &self,
        range: &KeyRange,
        revision: i64,
        with_values: bool,
        visit: &mut dyn FnMut(KeyValue) -> ControlFlow<()>,
    ) -> Result<()>;

    /// The version of one key visible at `revision`.
    fn get(&self, key: &[u8], revision: i64) -> Result<Option<KeyValue>> {
        let mut found = None;
        self.scan(
            &KeyRange::single(Bytes::copy_from_slice(key)),
            revision,
            true,
            &mut |kv| {
                found = Some(kv);
                ControlFlow::Break(())
            },
        )?;
        Ok(found)
    }

    /// The version of one key visible at this view's own revision. A txn's compares of
    /// one key ask this; a view that tracks its keys' newest versions answers from them
    /// instead of opening an iterator.
    fn newest(&self, key: &[u8]) -> Result<Option<KeyValue>> {
        self.get(key, self.revision())
    }
}

/// A consistent read view of the store.
pub struct ReadView<'a> {
    backend: &'a Backend,
    /// None only for the apply thread, the one writer, which reads the live DB.
    snapshot: Option<Snapshot<'a>>,
    revision: i64,
    compacted: i64,
}

impl std::fmt::Debug for ReadView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadView")
            .field("revision", &self.revision)
            .field("compacted", &self.compacted)
            .finish()
    }
}

impl<'a> ReadView<'a> {
    /// A view over a snapshot. The caller must hold the store's revision lock while it
    /// takes the snapshot, so that no compaction removes what `revision` promises.
    pub(crate) fn snapshot(backend: &'a Backend, revision: i64, compacted: i64) -> Self {
        ReadView {
            backend,
            snapshot: Some(backend.db().snapshot()),
            revision,
            compacted,
        }
    }

    /// A view over the live DB, for the single writer.
    pub(crate) fn live(backend: &'a Backend, revision: i64, compacted: i64) -> Self {
        ReadView {
            backend,
            snapshot: None,
            revision,
            compacted,
        }
    }

    pub(crate) fn backend(&self) -> &'a Backend {
        self.backend
    }

    fn read_options(&self) -> ReadOptions {
        let mut opts = ReadOptions::default();
        if let Some(snapshot) = &self.snapshot {
            opts.set_snapshot(snapshot);
        }
        opts
    }

    /// An iterator over `cf` between the bounds, in total key order.
    pub(crate) fn iterator(
        &self,
        cf: Cf,
        lower: Option<Vec<u8>>,
        upper: Option<Vec<u8>>,
    ) -> DBRawIteratorWithThreadMode<'_, DB> {
        let mut opts = self.read_options();
        opts.set_total_order_seek(true);
        self.iterator_with(cf, opts, lower, upper)
    }

    /// An iterator over the versions of one `kv` key (`prefix` is its key prefix): the
    /// prefix bloom filters skip every file that holds no version of it.
    fn versions_iterator(&self, prefix: &[u8]) -> DBRawIteratorWithThreadMode<'_, DB> {
        let mut opts = self.read_options();
        opts.set_prefix_same_as_start(true);
        self.iterator_with(Cf::Kv, opts, None, Some(after_all_versions(prefix)))
    }

    fn iterator_with(
        &self,
        cf: Cf,
        mut opts: ReadOptions,
        lower: Option<Vec<u8>>,
        upper: Option<Vec<u8>>,
    ) -> DBRawIteratorWithThreadMode<'_, DB> {
        if let Some(lower) = lower {
            opts.set_iterate_lower_bound(lower);
        }
        if let Some(upper) = upper {
            opts.set_iterate_upper_bound(upper);
        }
        self.backend
            .db()
            .raw_iterator_cf_opt(self.backend.cf(cf), opts)
    }

    /// Reads one value from any column family through the view.
    pub(crate) fn get_raw(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let opts = self.read_options();
        Ok(self
            .backend
            .db()
            .get_cf_opt(self.backend.cf(cf), key, &opts)?)
    }

    /// The version written at exactly `revision`, if any.
    pub(crate) fn version_at(&self, key: &[u8], revision: i64) -> Result<Option<Version>> {
        self.get_raw(Cf::Kv, &version_key(key, revision))?
            .map(|bytes| Version::decode(&bytes, true))
            .transpose()
    }
}

/// Builds the KeyValue of a stored version.
fn key_value(user_key: Vec<u8>, mod_revision: i64, version: Version) -> Option<KeyValue> {
    match version {
        Version::Put {
            create_revision,
            version,
            lease,
            value,
        } => Some(KeyValue {
            key: Bytes::from(user_key),
            create_revision,
            mod_revision,
            version,
            value,
            lease,
        }),
        Version::Tombstone => None,
    }
}

impl KvRead for ReadView<'_> {
    fn revision(&self) -> i64 {
        self.revision
    }

    fn compacted(&self) -> i64 {
        self.compacted
    }

    fn scan(
        &self,
        range: &KeyRange,
        revision: i64,
        with_values: bool,
        visit: &mut dyn FnMut(KeyValue) -> ControlFlow<()>,
    ) -> Result<()> {
        if range.is_empty() {
            return Ok(());
        }
        let lower = key_prefix(&range.start);
        let mut iter = match &range.end {
            RangeEnd::Single => self.versions_iterator(&lower),
            RangeEnd::Unbounded => self.iterator(Cf::Kv, None, None),
            RangeEnd::Before(end) => self.iterator(Cf::Kv, None, Some(key_prefix(end))),
        };
        let mut target = lower;
        push_revision(&mut target, revision);
        iter.seek(&target);
        while let Some(key) = iter.key() {
            let (prefix, version_revision) = split_version_key(key);
            if version_revision > revision {
                // Too new for this read: jump to the newest version at or below it.
                let mut target = prefix.to_vec();
                push_revision(&mut target, revision);
                iter.seek(&target);
                continue;
            }
            let prefix = prefix.to_vec();
            let value = iter.value().expect("valid iterator has a value");
            let version = Version::decode(value, with_values)?;
            if let Some(kv) = key_value(decode_key_prefix(&prefix), version_revision, version) {
                if visit(kv).is_break() {
                    return Ok(());
                }
            }
            if range.end == RangeEnd::Single {
                // The one key is found; stepping on would only meet its older versions.
                break;
            }
            skip_older_versions(&mut iter, &prefix);
        }
        iter.status()?;
        Ok(())
    }
}

/// Moves the iterator from a version of the key with `prefix` to the next key.
fn skip_older_versions(iter: &mut DBRawIteratorWithThreadMode<'_, DB>, prefix: &[u8]) {
    for _ in 0..SCAN_NEXT_BEFORE_SEEK {
        iter.next();
        match iter.key() {
            Some(key) if split_version_key(key).0 == prefix => continue,
            _ => return,
        }
    }
    iter.seek(after_all_versions(prefix));
}
