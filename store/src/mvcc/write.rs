//! A write transaction: the changes of one raft entry, staged for a WriteBatch.
//!
//! Every write of one transaction gets the same main revision (`begin + 1`) and its own
//! sub revision. Reads inside the transaction see its earlier writes through an overlay,
//! and the writes of earlier entries of the same apply batch (not in RocksDB yet)
//! through a second one, [`Unwritten`]. Nothing is visible to others until the batch is
//! written; dropping the transaction discards it, which is how a failed txn leaves no
//! trace.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::{Bound, ControlFlow};
use std::sync::Mutex;

use ballast_proto::etcdserverpb::{
    DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse, ResponseHeader,
};
use ballast_proto::mvccpb::{event::EventType, Event, KeyValue};
use bytes::Bytes;
use rocksdb::WriteBatch;

use crate::backend::{Backend, Cf};
use crate::error::{Error, Result};
use crate::keys::{lease_key, lease_key_entry, rev_key, version_key};
use crate::mvcc::latest::LatestCache;
use crate::mvcc::read::{KvRead, ReadView};
use crate::range::{KeyRange, RangeEnd};
use crate::record::{Change, ChangeKind, Version};

/// Latest state of each key written; None = deleted.
pub(crate) type Overlay = BTreeMap<Bytes, Option<KeyValue>>;

/// One staged RocksDB operation: a put, or a delete when the value is None.
pub(crate) struct Op {
    cf: Cf,
    key: Vec<u8>,
    value: Option<Vec<u8>>,
}

impl Op {
    pub(crate) fn add_to(self, backend: &Backend, batch: &mut WriteBatch) {
        match self.value {
            Some(value) => batch.put_cf(backend.cf(self.cf), self.key, value),
            None => batch.delete_cf(backend.cf(self.cf), self.key),
        }
    }
}

/// The writes of earlier entries of an apply batch, staged but not yet in RocksDB.
#[derive(Debug, Default)]
pub(crate) struct Unwritten {
    /// The revision RocksDB holds; the staged writes are the revisions above it.
    pub(crate) written: i64,
    pub(crate) keys: Overlay,
    /// Leases the staged entries granted (true) or revoked (false).
    pub(crate) leases: BTreeMap<i64, bool>,
    /// Leases the staged entries attached a key to. A lease's keys are listed from
    /// RocksDB, so revoking one of these must write the staged entries first.
    pub(crate) attached: BTreeSet<i64>,
}

/// What a finished transaction hands to its apply batch.
pub(crate) struct Staged {
    pub(crate) ops: Vec<Op>,
    pub(crate) overlay: Overlay,
    pub(crate) events: Vec<Event>,
    /// The store revision after the transaction.
    pub(crate) revision: i64,
    pub(crate) leases: BTreeMap<i64, bool>,
    pub(crate) attached: BTreeSet<i64>,
}

/// The staged changes of one write transaction.
pub struct WriteTxn<'a> {
    view: ReadView<'a>,
    /// Earlier entries' writes that RocksDB (and so `view`) does not hold yet.
    unwritten: Option<&'a Unwritten>,
    /// The apply thread's cache of what RocksDB holds; never for read-only txns, whose
    /// view may be older than the cache.
    cache: Option<&'a Mutex<LatestCache>>,
    /// Store revision before this transaction.
    begin: i64,
    next_sub: i64,
    ops: Vec<Op>,
    /// Latest state of each key this transaction wrote.
    overlay: Overlay,
    /// Events in write order, each with the previous version of its key.
    events: Vec<Event>,
    /// Leases this transaction granted (true) or revoked (false).
    leases: BTreeMap<i64, bool>,
    /// Leases this transaction attached a key to.
    attached: BTreeSet<i64>,
}

impl std::fmt::Debug for WriteTxn<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteTxn")
            .field("begin", &self.begin)
            .field("events", &self.events.len())
            .finish()
    }
}

impl<'a> WriteTxn<'a> {
    /// Starts a transaction on `view`; its revision is the store revision before it.
    pub fn new(view: ReadView<'a>) -> Self {
        let begin = view.revision();
        WriteTxn {
            view,
            unwritten: None,
            cache: None,
            begin,
            next_sub: 0,
            ops: Vec::new(),
            overlay: BTreeMap::new(),
            events: Vec::new(),
            leases: BTreeMap::new(),
            attached: BTreeSet::new(),
        }
    }

    /// Starts a transaction after the staged, unwritten entries of an apply batch: `view`
    /// reads the live DB and its revision is the one the last staged entry left.
    pub(crate) fn after(
        view: ReadView<'a>,
        unwritten: &'a Unwritten,
        cache: &'a Mutex<LatestCache>,
    ) -> Self {
        WriteTxn {
            unwritten: Some(unwritten),
            cache: Some(cache),
            ..WriteTxn::new(view)
        }
    }

    pub(crate) fn view(&self) -> &ReadView<'a> {
        &self.view
    }

    /// The revision every write of this transaction gets.
    pub fn write_revision(&self) -> i64 {
        self.begin + 1
    }

    /// True once the transaction changed a key (and so bumps the store revision).
    pub fn changed(&self) -> bool {
        !self.events.is_empty()
    }

    /// The store revision after this transaction.
    pub fn end_revision(&self) -> i64 {
        if self.changed() {
            self.begin + 1
        } else {
            self.begin
        }
    }

    /// Hands out the staged operations, overlay and events.
    pub(crate) fn into_staged(self) -> Staged {
        Staged {
            revision: self.end_revision(),
            ops: self.ops,
            overlay: self.overlay,
            events: self.events,
            leases: self.leases,
            attached: self.attached,
        }
    }

    /// Stages a put into `cf`.
    pub(crate) fn stage_put(&mut self, cf: Cf, key: Vec<u8>, value: Vec<u8>) {
        self.ops.push(Op {
            cf,
            key,
            value: Some(value),
        });
    }

    /// Stages a delete from `cf`.
    pub(crate) fn stage_delete(&mut self, cf: Cf, key: Vec<u8>) {
        self.ops.push(Op {
            cf,
            key,
            value: None,
        });
    }

    /// The latest visible version of `key`, including this transaction's writes.
    pub fn latest(&self, key: &[u8]) -> Result<Option<KeyValue>> {
        if let Some(staged) = self.overlay.get(key) {
            return Ok(staged.clone());
        }
        if let Some(staged) = self.unwritten.and_then(|u| u.keys.get(key)) {
            return Ok(staged.clone());
        }
        let Some(cache) = self.cache else {
            return self.view.get(key, self.begin);
        };
        let mut cache = cache.lock().expect("latest cache lock poisoned");
        if let Some(cached) = cache.get(key) {
            return Ok(cached);
        }
        let stored = self.view.get(key, self.begin)?;
        cache.insert(Bytes::copy_from_slice(key), stored.clone());
        Ok(stored)
    }

    /// True if the lease exists, after this transaction's and the staged entries'
    /// grants and revokes.
    pub fn lease_exists(&self, id: i64) -> Result<bool> {
        if let Some(&exists) = self.leases.get(&id) {
            return Ok(exists);
        }
        if let Some(&exists) = self.unwritten.and_then(|u| u.leases.get(&id)) {
            return Ok(exists);
        }
        Ok(self.view.get_raw(Cf::Lease, &lease_key(id))?.is_some())
    }

    /// Stages a lease's record (`Some`: granted) or its removal (`None`: revoked).
    pub(crate) fn stage_lease(&mut self, id: i64, record: Option<Vec<u8>>) {
        let key = lease_key(id).to_vec();
        self.leases.insert(id, record.is_some());
        match record {
            Some(record) => self.stage_put(Cf::Lease, key, record),
            None => self.stage_delete(Cf::Lease, key),
        }
    }

    /// True if staged entries attached keys to lease `id`. A lease's keys are listed
    /// from RocksDB, so a revoke of it must write those entries first.
    pub(crate) fn lease_attached_unwritten(&self, id: i64) -> bool {
        self.unwritten.is_some_and(|u| u.attached.contains(&id))
    }

    pub fn put(&mut self, req: &PutRequest) -> Result<PutResponse> {
        let prev = self.latest(&req.key)?;
        if (req.ignore_value || req.ignore_lease) && prev.is_none() {
            return Err(Error::KeyNotFound);
        }
        let value = match (&prev, req.ignore_value) {
            (Some(prev), true) => prev.value.clone(),
            _ => req.value.clone(),
        };
        let lease = match (&prev, req.ignore_lease) {
            (Some(prev), true) => prev.lease,
            _ => req.lease,
        };
        if lease != 0 && !self.lease_exists(lease)? {
            return Err(Error::LeaseNotFound);
        }
        let revision = self.write_revision();
        let (create_revision, version) = match &prev {
            Some(prev) => (prev.create_revision, prev.version + 1),
            None => (revision, 1),
        };
        let kv = KeyValue {
            key: req.key.clone(),
            create_revision,
            mod_revision: revision,
            version,
            value,
            lease,
        };
        let record = Version::Put {
            create_revision,
            version,
            lease,
            value: kv.value.clone(),
        };
        let prev_lease = prev.as_ref().map_or(0, |p| p.lease);
        self.stage(&req.key, record, ChangeKind::Put, prev_lease, lease);
        self.overlay.insert(req.key.clone(), Some(kv.clone()));
        self.events.push(Event {
            r#type: EventType::Put as i32,
            kv: Some(kv),
            prev_kv: prev.clone(),
        });
        Ok(PutResponse {
            header: Some(header(revision)),
            prev_kv: if req.prev_kv { prev } else { None },
        })
    }

    pub fn delete_range(&mut self, req: &DeleteRangeRequest) -> Result<DeleteRangeResponse> {
        let range = KeyRange::new(req.key.clone(), req.range_end.clone());
        let mut victims = Vec::new();
        self.scan(&range, self.end_revision(), true, &mut |kv| {
            victims.push(kv);
            ControlFlow::Continue(())
        })?;
        let deleted = victims.len() as i64;
        for prev in &victims {
            self.delete_key(prev);
        }
        Ok(DeleteRangeResponse {
            header: Some(header(self.end_revision())),
            deleted,
            prev_kvs: if req.prev_kv { victims } else { Vec::new() },
        })
    }

    /// Deletes one live key, given its current version.
    pub(crate) fn delete_key(&mut self, prev: &KeyValue) {
        let revision = self.write_revision();
        self.stage(
            &prev.key,
            Version::Tombstone,
            ChangeKind::Delete,
            prev.lease,
            0,
        );
        self.overlay.insert(prev.key.clone(), None);
        self.events.push(Event {
            r#type: EventType::Delete as i32,
            kv: Some(KeyValue {
                key: prev.key.clone(),
                mod_revision: revision,
                ..Default::default()
            }),
            prev_kv: Some(prev.clone()),
        });
    }

    /// Stages the version record, the history entry and the lease attachment of a write.
    fn stage(
        &mut self,
        key: &Bytes,
        record: Version,
        kind: ChangeKind,
        old_lease: i64,
        new_lease: i64,
    ) {
        let revision = self.write_revision();
        self.stage_put(Cf::Kv, version_key(key, revision), record.encode());
        let change = Change {
            kind,
            key: key.clone(),
        };
        self.stage_put(
            Cf::Rev,
            rev_key(revision, self.next_sub).to_vec(),
            change.encode(),
        );
        self.next_sub += 1;
        if old_lease != new_lease {
            if old_lease != 0 {
                self.stage_delete(Cf::LeaseKeys, lease_key_entry(old_lease, key));
            }
            if new_lease != 0 {
                self.stage_put(Cf::LeaseKeys, lease_key_entry(new_lease, key), Vec::new());
                self.attached.insert(new_lease);
            }
        }
    }
}

fn header(revision: i64) -> ResponseHeader {
    ResponseHeader {
        revision,
        ..Default::default()
    }
}

impl KvRead for WriteTxn<'_> {
    fn revision(&self) -> i64 {
        self.end_revision()
    }

    /// What `put` reads: this transaction's writes, then the batch's unwritten ones,
    /// then the apply thread's cache of newest versions. A compare-and-swap's compare
    /// was a RocksDB iterator and seek on the apply thread; profiled under txn-update it
    /// was two fifths of the apply.
    fn newest(&self, key: &[u8]) -> Result<Option<KeyValue>> {
        self.latest(key)
    }

    fn compacted(&self) -> i64 {
        self.view.compacted()
    }

    /// Scans the store as of `revision`. From the revision the unwritten entries left,
    /// their writes are merged in; at the transaction's own revision, its writes too.
    fn scan(
        &self,
        range: &KeyRange,
        revision: i64,
        with_values: bool,
        visit: &mut dyn FnMut(KeyValue) -> ControlFlow<()>,
    ) -> Result<()> {
        let unwritten = self.unwritten.filter(|u| !u.keys.is_empty());
        if let Some(unwritten) = unwritten {
            if revision > unwritten.written && revision < self.begin {
                // Between written and staged: only writing the batch can answer this.
                return Err(Error::Unwritten);
            }
        }
        let own = if revision > self.begin {
            Some(&self.overlay).filter(|o| !o.is_empty())
        } else {
            None
        };
        let earlier = unwritten
            .filter(|_| revision >= self.begin)
            .map(|u| &u.keys);
        if own.is_none() && earlier.is_none() {
            return self
                .view
                .scan(range, revision.min(self.begin), with_values, visit);
        }
        if range.is_empty() {
            return Ok(());
        }
        let mut staged = merged_range(own, earlier, range).into_iter().peekable();
        let mut stopped = false;
        self.view
            .scan(range, self.begin, with_values, &mut |stored| {
                // Staged keys below the stored one come first.
                while let Some((key, _)) = staged.peek() {
                    if key[..] >= stored.key[..] {
                        break;
                    }
                    let (_, kv) = staged.next().expect("peeked");
                    if let Some(kv) = kv {
                        if visit(kv).is_break() {
                            stopped = true;
                            return ControlFlow::Break(());
                        }
                    }
                }
                let replaced = match staged.peek() {
                    Some((key, _)) if key[..] == stored.key[..] => staged.next().map(|(_, kv)| kv),
                    _ => None,
                };
                let current = match replaced {
                    Some(staged_version) => staged_version,
                    None => Some(stored),
                };
                if let Some(kv) = current {
                    if visit(kv).is_break() {
                        stopped = true;
                        return ControlFlow::Break(());
                    }
                }
                ControlFlow::Continue(())
            })?;
        if !stopped {
            for kv in staged.filter_map(|(_, kv)| kv) {
                if visit(kv).is_break() {
                    break;
                }
            }
        }
        Ok(())
    }
}

/// The staged states of the keys in `range`, in key order: `own` (this transaction's
/// writes) wins over `earlier` (the unwritten entries before it).
fn merged_range(own: Option<&Overlay>, earlier: Option<&Overlay>, range: &KeyRange) -> Overlay {
    let upper = match &range.end {
        RangeEnd::Single => Bound::Included(range.start.clone()),
        RangeEnd::Unbounded => Bound::Unbounded,
        RangeEnd::Before(end) => Bound::Excluded(end.clone()),
    };
    let bounds = (Bound::Included(range.start.clone()), upper);
    let mut merged: Overlay = earlier
        .map(|o| {
            o.range(bounds.clone())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    if let Some(own) = own {
        merged.extend(own.range(bounds).map(|(k, v)| (k.clone(), v.clone())));
    }
    merged
}
