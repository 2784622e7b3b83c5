//! The permission each request needs, as etcd's auth applier requires it: reads need
//! READ on their range, writes WRITE, a `prev_kv` also READ; a txn needs every compare
//! and every op of both branches at any depth, so one forbidden key refuses it whole.

use ballast_proto::etcdserverpb::request_op::Request as Op;
use ballast_proto::etcdserverpb::{DeleteRangeRequest, PutRequest, RangeRequest, TxnRequest};
use ballast_store::auth::Access;
use ballast_store::{Error as StoreError, Store};

use super::Authorized;
use crate::error::Result;

impl Authorized {
    /// With auth on, a caller that named no one may do nothing.
    fn named(&self) -> Result<()> {
        if self.auth.enabled() && !self.named {
            return Err(StoreError::UserEmpty.into());
        }
        Ok(())
    }

    fn check(&self, access: Access, key: &[u8], range_end: &[u8]) -> Result<()> {
        self.named()?;
        Ok(self.auth.check(&self.user, access, key, range_end)?)
    }

    /// Operations etcd reserves for root.
    pub(crate) fn admin(&self) -> Result<()> {
        self.named()?;
        Ok(self.auth.check_admin(&self.user)?)
    }

    /// Any authenticated user (Compact, which etcd does not restrict further).
    pub(crate) fn user(&self) -> Result<()> {
        self.named()
    }

    pub(crate) fn is_root(&self) -> bool {
        !self.auth.enabled() || self.auth.is_root(&self.user)
    }

    pub(crate) fn range(&self, req: &RangeRequest) -> Result<()> {
        self.check(Access::Read, &req.key, &req.range_end)
    }

    /// A watch over `key`/`range_end`.
    pub(crate) fn watch(&self, key: &[u8], range_end: &[u8]) -> Result<()> {
        self.check(Access::Read, key, range_end)
    }

    pub(crate) fn put(&self, req: &PutRequest, store: &Store) -> Result<()> {
        self.check(Access::Write, &req.key, &[])?;
        if req.prev_kv {
            self.check(Access::Read, &req.key, &[])?;
        }
        if req.lease != 0 {
            self.lease_keys(req.lease, store)?;
        }
        Ok(())
    }

    pub(crate) fn delete(&self, req: &DeleteRangeRequest) -> Result<()> {
        self.check(Access::Write, &req.key, &req.range_end)?;
        if req.prev_kv {
            self.check(Access::Read, &req.key, &req.range_end)?;
        }
        Ok(())
    }

    /// Revoking a lease deletes its keys: the caller must be able to write every one
    /// (etcd 3.5). Putting a key under a lease needs the same, or the lease could be
    /// used to delete keys the caller may not.
    pub(crate) fn lease_keys(&self, lease: i64, store: &Store) -> Result<()> {
        self.named()?;
        if self.is_root() {
            return Ok(());
        }
        for key in store.lease_keys(lease)? {
            self.check(Access::Write, &key, &[])?;
        }
        Ok(())
    }

    pub(crate) fn txn(&self, req: &TxnRequest, store: &Store) -> Result<()> {
        self.named()?;
        if self.is_root() {
            return Ok(());
        }
        for compare in &req.compare {
            self.check(Access::Read, &compare.key, &compare.range_end)?;
        }
        for op in req.success.iter().chain(&req.failure) {
            match &op.request {
                Some(Op::RequestRange(r)) => self.range(r)?,
                Some(Op::RequestPut(r)) => self.put(r, store)?,
                Some(Op::RequestDeleteRange(r)) => self.delete(r)?,
                Some(Op::RequestTxn(r)) => self.txn(r, store)?,
                None => {}
            }
        }
        Ok(())
    }
}
