//! A store on a temp dir, driven the way the raft driver drives it: one request per
//! entry, indexes increasing; written one by one, or staged into batches when `staging`.

#![allow(dead_code)]

use std::sync::Arc;

use ballast_proto::ballast::internal::{raft_request::Request, RaftRequest};
use ballast_proto::etcdserverpb::*;
use ballast_store::{Response, Store};
use bytes::Bytes;

pub struct TestStore {
    pub dir: tempfile::TempDir,
    /// None only while reopening: RocksDB allows one open per directory.
    inner: Option<Arc<Store>>,
    pub index: u64,
    /// Stage entries and write them only on `commit` (as the driver does per Ready).
    pub staging: bool,
}

impl TestStore {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        TestStore {
            dir,
            inner: Some(store),
            index: 0,
            staging: false,
        }
    }

    pub fn store(&self) -> &Arc<Store> {
        self.inner.as_ref().expect("store is open")
    }

    /// Closes the store and leaves its directory, for another process to open.
    pub fn close(&mut self) {
        self.commit();
        if let Some(store) = self.inner.take() {
            store.close();
        }
    }

    /// Closes and reopens the store on the same directory, as after a restart.
    pub fn reopen(&mut self) {
        self.commit();
        let old = self.inner.take().expect("store is open");
        old.close();
        drop(old);
        self.inner = Some(Store::open(&self.dir.path().join("db")).unwrap());
    }

    pub fn apply(&mut self, request: Request) -> ballast_store::Result<Response> {
        self.apply_checked(request, 0)
    }

    /// Applies a request whose permissions were checked at `auth_revision`.
    pub fn apply_checked(
        &mut self,
        request: Request,
        auth_revision: u64,
    ) -> ballast_store::Result<Response> {
        self.index += 1;
        let request = RaftRequest {
            id: self.index,
            request: Some(request),
            auth_revision,
        };
        let applied = if self.staging {
            // Left staged: the next batch's write (`commit`) writes it.
            self.store().apply_batch().apply(self.index, 1, &request)
        } else {
            self.store().apply(self.index, 1, &request)
        };
        applied.unwrap().response
    }

    /// Writes what was staged.
    pub fn commit(&mut self) {
        self.store().apply_batch().write().unwrap();
    }

    pub fn put(&mut self, key: &str, value: &str) -> PutResponse {
        match self.apply(Request::Put(put_req(key, value))).unwrap() {
            Response::Put(r) => r,
            other => panic!("unexpected {other:?}"),
        }
    }

    pub fn put_lease(
        &mut self,
        key: &str,
        value: &str,
        lease: i64,
    ) -> ballast_store::Result<Response> {
        let mut req = put_req(key, value);
        req.lease = lease;
        self.apply(Request::Put(req))
    }

    pub fn delete(&mut self, key: &str, end: &str) -> DeleteRangeResponse {
        let req = DeleteRangeRequest {
            key: b(key),
            range_end: b(end),
            prev_kv: true,
        };
        match self.apply(Request::DeleteRange(req)).unwrap() {
            Response::DeleteRange(r) => r,
            other => panic!("unexpected {other:?}"),
        }
    }

    pub fn txn(&mut self, req: TxnRequest) -> ballast_store::Result<TxnResponse> {
        self.apply(Request::Txn(req)).map(|r| match r {
            Response::Txn(r) => r,
            other => panic!("unexpected {other:?}"),
        })
    }

    pub fn compact(&mut self, revision: i64) -> ballast_store::Result<Response> {
        self.apply(Request::Compaction(CompactionRequest {
            revision,
            physical: false,
        }))
    }

    pub fn grant(&mut self, id: i64, ttl: i64) -> ballast_store::Result<Response> {
        self.apply(Request::LeaseGrant(LeaseGrantRequest { ttl, id }))
    }

    pub fn revoke(&mut self, id: i64) -> ballast_store::Result<Response> {
        self.apply(Request::LeaseRevoke(LeaseRevokeRequest { id }))
    }

    pub fn get(&self, key: &str) -> RangeResponse {
        self.store().range(&range_req(key, "")).unwrap()
    }

    pub fn revision(&self) -> i64 {
        self.store().revisions().current
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        if let Some(store) = &self.inner {
            store.close();
        }
    }
}

pub fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

pub fn put_req(key: &str, value: &str) -> PutRequest {
    PutRequest {
        key: b(key),
        value: b(value),
        ..Default::default()
    }
}

pub fn range_req(key: &str, end: &str) -> RangeRequest {
    RangeRequest {
        key: b(key),
        range_end: b(end),
        ..Default::default()
    }
}

pub fn keys(resp: &RangeResponse) -> Vec<String> {
    resp.kvs
        .iter()
        .map(|kv| String::from_utf8(kv.key.to_vec()).unwrap())
        .collect()
}

/// A watch filter for every key and event.
pub fn every_key(prev_kv: bool) -> ballast_store::watch::Filter {
    ballast_store::watch::Filter {
        range: ballast_store::KeyRange::new(Bytes::from_static(b"\0"), Bytes::from_static(b"\0")),
        no_put: false,
        no_delete: false,
        prev_kv,
    }
}
