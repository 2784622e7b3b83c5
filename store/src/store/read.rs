//! Reads served from this member's state: Range (with the point-read cache), read-only
//! Txn, the history hash, and lease lookups. Linearizability is the caller's business
//! (a ReadIndex barrier before the call); these read whatever is applied.

use ballast_proto::etcdserverpb::{RangeRequest, RangeResponse, TxnRequest, TxnResponse};

use super::{Revisions, Store};
use crate::error::{Error, Result};
use crate::lease::{self, Lease};
use crate::mvcc::compact::hash_kv;
use crate::mvcc::latest::CachedPoint;
use crate::mvcc::query::execute_range;
use crate::mvcc::read::KvRead;
use crate::mvcc::txn::execute_txn;
use crate::mvcc::write::WriteTxn;

impl Store {
    /// Serves a Range from this member's state.
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse> {
        if let Some(point) = self.cached_point(req) {
            return execute_range(&point, req);
        }
        let view = self.read_view();
        let response = execute_range(&view, req)?;
        let newest_of_one_key = req.range_end.is_empty()
            && req.revision <= 0
            && !req.keys_only
            && !req.count_only
            && req.min_mod_revision == 0
            && req.max_mod_revision == 0
            && req.min_create_revision == 0
            && req.max_create_revision == 0;
        if newest_of_one_key {
            self.lock_latest().fill(
                req.key.clone(),
                response.kvs.first().cloned(),
                view.revision(),
            );
        }
        Ok(response)
    }

    /// A read of one key answered by the key cache, when it holds the key's newest
    /// version and that version is no newer than the revision read at. The cache is
    /// updated before a revision is published, so whatever it holds is at least as new
    /// as the revision read here. A key the cache knows as deleted is not answered: when
    /// it was deleted is not known.
    fn cached_point(&self, req: &RangeRequest) -> Option<CachedPoint> {
        if !req.range_end.is_empty() {
            return None;
        }
        let Revisions {
            current: revision,
            compacted,
        } = self.revisions();
        let at = if req.revision > 0 {
            req.revision
        } else {
            revision
        };
        let kv = self.lock_latest().get(&req.key)??;
        (kv.mod_revision <= at).then_some(CachedPoint {
            revision,
            compacted,
            kv,
        })
    }

    /// Serves a txn that writes nothing, from this member's state.
    pub fn txn_read_only(&self, req: &TxnRequest) -> Result<TxnResponse> {
        let mut txn = WriteTxn::new(self.read_view());
        let response = execute_txn(&mut txn, req)?;
        assert!(!txn.changed(), "a read-only txn wrote");
        Ok(response)
    }

    /// CRC32 of the MVCC history up to `revision` (0 = current), with the compaction
    /// point it was computed at and the revision it covers.
    pub fn hash_kv(&self, revision: i64) -> Result<(u32, i64, i64)> {
        let view = self.read_view();
        let (current, compacted) = (view.revision(), view.compacted());
        let revision = if revision <= 0 { current } else { revision };
        if revision > current {
            return Err(Error::FutureRevision);
        }
        if revision < compacted {
            return Err(Error::Compacted);
        }
        Ok((hash_kv(&view, revision)?, compacted, revision))
    }

    /// A lease, if it exists.
    pub fn lease(&self, id: i64) -> Result<Option<Lease>> {
        lease::get(&self.read_view(), id)
    }

    /// Every lease.
    pub fn leases(&self) -> Result<Vec<Lease>> {
        lease::list(&self.read_view())
    }

    /// The keys attached to a lease.
    pub fn lease_keys(&self, id: i64) -> Result<Vec<bytes::Bytes>> {
        lease::attached_keys(&self.read_view(), id)
    }
}
