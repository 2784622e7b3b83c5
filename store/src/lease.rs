//! The replicated lease table: which leases exist, their granted TTL, and which keys each
//! holds. Expiry deadlines are not replicated: they live in the leader's lessor.

use ballast_proto::etcdserverpb::{LeaseGrantRequest, LeaseRevokeRequest};
use bytes::Bytes;

use crate::backend::Cf;
use crate::error::{Error, Result};
use crate::keys::lease_key;
use crate::mvcc::read::ReadView;
use crate::mvcc::write::WriteTxn;
use crate::record::LeaseRecord;

/// A lease and its granted TTL in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub id: i64,
    pub ttl: i64,
}

/// Creates a lease; its TTL was already clamped by the server.
pub(crate) fn grant(txn: &mut WriteTxn<'_>, req: &LeaseGrantRequest) -> Result<Lease> {
    if txn.lease_exists(req.id)? {
        return Err(Error::LeaseExists);
    }
    let record = LeaseRecord { ttl: req.ttl };
    txn.stage_lease(req.id, Some(record.encode().to_vec()));
    Ok(Lease {
        id: req.id,
        ttl: req.ttl,
    })
}

/// Deletes a lease and every key attached to it, all in this transaction's revision.
pub(crate) fn revoke(txn: &mut WriteTxn<'_>, req: &LeaseRevokeRequest) -> Result<()> {
    if !txn.lease_exists(req.id)? {
        return Err(Error::LeaseNotFound);
    }
    if txn.lease_attached_unwritten(req.id) {
        return Err(Error::Unwritten);
    }
    for key in attached_keys(txn.view(), req.id)? {
        if let Some(kv) = txn.latest(&key)? {
            if kv.lease == req.id {
                txn.delete_key(&kv);
            }
        }
    }
    txn.stage_lease(req.id, None);
    Ok(())
}

/// The keys attached to lease `id`, in key order.
pub fn attached_keys(view: &ReadView<'_>, id: i64) -> Result<Vec<Bytes>> {
    let prefix = lease_key(id);
    let upper = (id as u64)
        .checked_add(1)
        .map(|next| next.to_be_bytes().to_vec());
    let mut iter = view.iterator(Cf::LeaseKeys, Some(prefix.to_vec()), upper);
    iter.seek(prefix);
    let mut keys = Vec::new();
    while let Some(entry) = iter.key() {
        keys.push(Bytes::copy_from_slice(&entry[8..]));
        iter.next();
    }
    iter.status()?;
    Ok(keys)
}

/// One lease, if it exists.
pub fn get(view: &ReadView<'_>, id: i64) -> Result<Option<Lease>> {
    view.get_raw(Cf::Lease, &lease_key(id))?
        .map(|bytes| LeaseRecord::decode(&bytes).map(|r| Lease { id, ttl: r.ttl }))
        .transpose()
}

/// Every lease, in id byte order.
pub fn list(view: &ReadView<'_>) -> Result<Vec<Lease>> {
    let mut iter = view.iterator(Cf::Lease, None, None);
    iter.seek_to_first();
    let mut leases = Vec::new();
    while let (Some(key), Some(value)) = (iter.key(), iter.value()) {
        let id = i64::from_be_bytes(
            key.try_into()
                .map_err(|_| Error::Corrupt(format!("bad lease key {key:?}")))?,
        );
        leases.push(Lease {
            id,
            ttl: LeaseRecord::decode(value)?.ttl,
        });
        iter.next();
    }
    iter.status()?;
    Ok(leases)
}
