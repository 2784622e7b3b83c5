//! Reading an etcd backend database (a snapshot from etcd 3.4 or 3.5, or Ballast's own)
//! into a new store's column families: the way in for a cluster moving from etcd.

use std::path::Path;

use ballast_proto::etcdserverpb::{AlarmMember, AlarmResponse};
use ballast_proto::mvccpb::KeyValue;
use prost::Message;
use rocksdb::WriteBatch;
use sha2::{Digest, Sha256};

use super::{buckets, keys, LeaseRecord, REVISION_KEY_BYTES, TOMBSTONE_MARK};
use crate::auth::layout;
use crate::backend::{meta, Backend, Cf};
use crate::bbolt::BoltReader;
use crate::error::{Error, Result};
use crate::keys::{decode_key_prefix, lease_key_entry, rev_key, split_version_key, version_key};
use crate::record::{encode_u64, Change, ChangeKind, LeaseRecord as StoredLease, Version};

/// Bytes staged before a write, so an import of any size stays in bounded memory.
const IMPORT_BATCH_BYTES: usize = 8 << 20;
/// Bytes of the SHA-256 `etcdctl snapshot save` appends.
pub const SNAPSHOT_HASH_BYTES: usize = 32;
/// etcd's rule for telling a file with the hash from a bare database: a database is
/// pages (a multiple of 512 bytes), the hash adds 32.
const SNAPSHOT_ALIGNMENT: u64 = 512;

/// What an import brought in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    pub revision: i64,
    pub compacted: i64,
    /// Versions (tombstones included) and live keys.
    pub versions: u64,
    pub keys: u64,
    pub leases: u64,
}

fn corrupt(what: impl Into<String>) -> Error {
    Error::Corrupt(what.into())
}

/// Checks the SHA-256 a snapshot file ends with (etcd's `snapshot restore` check).
/// Without `skip_hash_check`, a file with no hash is refused, as etcd refuses it.
pub fn verify_snapshot_hash(path: &Path, skip_hash_check: bool) -> Result<()> {
    let length = std::fs::metadata(path)?.len();
    let has_hash = length % SNAPSHOT_ALIGNMENT == SNAPSHOT_HASH_BYTES as u64;
    if !has_hash {
        if skip_hash_check {
            return Ok(());
        }
        return Err(corrupt("snapshot missing hash but --skip-hash-check=false"));
    }
    if skip_hash_check {
        return Ok(());
    }
    let mut file = std::fs::File::open(path)?;
    let mut hash = Sha256::new();
    let db_bytes = length - SNAPSHOT_HASH_BYTES as u64;
    std::io::copy(&mut std::io::Read::take(&mut file, db_bytes), &mut hash)?;
    let mut expected = [0u8; SNAPSHOT_HASH_BYTES];
    std::io::Read::read_exact(&mut file, &mut expected)?;
    let got = hash.finalize();
    if got[..] != expected[..] {
        return Err(corrupt(format!(
            "expected sha256 {}, got {}",
            go_bytes(&expected),
            go_bytes(&got)
        )));
    }
    Ok(())
}

/// Bytes as Go prints a byte slice (etcd's message shows the hashes so).
fn go_bytes(bytes: &[u8]) -> String {
    let list: Vec<String> = bytes.iter().map(u8::to_string).collect();
    format!("[{}]", list.join(" "))
}

/// etcd's revision key: (main, sub, tombstone).
fn parse_revision_key(key: &[u8]) -> Result<(i64, i64, bool)> {
    let tombstone = match key.len() {
        REVISION_KEY_BYTES => false,
        n if n == REVISION_KEY_BYTES + 1 && key[REVISION_KEY_BYTES] == TOMBSTONE_MARK => true,
        _ => return Err(corrupt(format!("bad revision key {key:?} in bucket key"))),
    };
    if key[8] != b'_' {
        return Err(corrupt(format!("bad revision key {key:?} in bucket key")));
    }
    let main = u64::from_be_bytes(key[..8].try_into().expect("8")) as i64;
    let sub = u64::from_be_bytes(key[9..17].try_into().expect("8")) as i64;
    if main < 0 || sub < 0 {
        return Err(corrupt(format!("negative revision in key {key:?}")));
    }
    Ok((main, sub, tombstone))
}

/// Writes batches of at most [`IMPORT_BATCH_BYTES`].
struct Batches<'a> {
    backend: &'a Backend,
    batch: WriteBatch,
}

impl Batches<'_> {
    fn put(&mut self, cf: Cf, key: &[u8], value: &[u8]) -> Result<()> {
        self.batch.put_cf(self.backend.cf(cf), key, value);
        if self.batch.size_in_bytes() >= IMPORT_BATCH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let batch = std::mem::take(&mut self.batch);
        self.backend.write(batch, false)
    }
}

/// Imports the database `reader` reads into `backend` (a new, empty store).
pub fn import_etcd_db(reader: &BoltReader, backend: &Backend) -> Result<ImportSummary> {
    let mut out = Batches {
        backend,
        batch: WriteBatch::default(),
    };
    let mut summary = ImportSummary {
        revision: 1,
        compacted: 0,
        versions: 0,
        keys: 0,
        leases: 0,
    };

    // Every version, from the history in revision order.
    reader.for_each(buckets::KEY, |key, value| {
        let (main, sub, tombstone) = parse_revision_key(key)?;
        let kv = KeyValue::decode(value)?;
        let (record, kind) = if tombstone {
            (Version::Tombstone, ChangeKind::Delete)
        } else {
            let record = Version::Put {
                create_revision: kv.create_revision,
                version: kv.version,
                lease: kv.lease,
                value: kv.value,
            };
            (record, ChangeKind::Put)
        };
        out.put(Cf::Kv, &version_key(&kv.key, main), &record.encode())?;
        let change = Change { kind, key: kv.key };
        out.put(Cf::Rev, &rev_key(main, sub), &change.encode())?;
        summary.revision = summary.revision.max(main);
        summary.versions += 1;
        Ok(())
    })?;

    reader.for_each(buckets::LEASE, |id, value| {
        let lease = LeaseRecord::decode(value)?;
        if id.len() != 8 || lease.id <= 0 {
            return Err(corrupt(format!("bad lease {id:?} in bucket lease")));
        }
        out.put(
            Cf::Lease,
            &lease.id.to_be_bytes(),
            &StoredLease { ttl: lease.ttl }.encode(),
        )?;
        summary.leases += 1;
        Ok(())
    })?;

    // Compaction point: what etcd scheduled is what reads refuse below; what it
    // finished is what the compactor resumes from.
    let mut scheduled = 0;
    let mut finished = 0;
    reader.for_each(buckets::META, |key, value| {
        let revision = || parse_revision_key(value).map(|(main, _, _)| main);
        match key {
            keys::SCHEDULED_COMPACT => scheduled = revision()?,
            keys::FINISHED_COMPACT => finished = revision()?,
            _ => {}
        }
        Ok(())
    })?;
    summary.compacted = scheduled.max(finished);
    summary.revision = summary.revision.max(summary.compacted);

    if reader.has_bucket(buckets::AUTH)? {
        reader.for_each(buckets::AUTH, |key, value| {
            match key {
                keys::AUTH_ENABLED => {
                    out.put(Cf::Auth, layout::ENABLED, &[u8::from(value == [1])])?
                }
                keys::AUTH_REVISION if value.len() == 8 => {
                    out.put(Cf::Auth, layout::REVISION, value)?
                }
                _ => {}
            }
            Ok(())
        })?;
    }
    for (bucket, prefix) in [
        (buckets::AUTH_USERS, layout::USER_PREFIX),
        (buckets::AUTH_ROLES, layout::ROLE_PREFIX),
    ] {
        if reader.has_bucket(bucket)? {
            reader.for_each(bucket, |name, value| {
                out.put(Cf::Auth, &[prefix, name].concat(), value)
            })?;
        }
    }
    let mut alarms: Vec<AlarmMember> = Vec::new();
    if reader.has_bucket(buckets::ALARM)? {
        reader.for_each(buckets::ALARM, |key, _| {
            alarms.push(AlarmMember::decode(key)?);
            Ok(())
        })?;
    }
    out.flush()?;

    // The live keys and the leases they hold: the newest version of each key, which
    // the `kv` order puts first.
    let mut previous: Option<Vec<u8>> = None;
    let db = backend.db();
    let mut versions = db.raw_iterator_cf_opt(backend.cf(Cf::Kv), backend.read_options());
    versions.seek_to_first();
    while let (Some(key), Some(value)) = (versions.key(), versions.value()) {
        let (prefix, _) = split_version_key(key);
        if previous.as_deref() != Some(prefix) {
            previous = Some(prefix.to_vec());
            if let Version::Put { lease, .. } = Version::decode(value, false)? {
                summary.keys += 1;
                if lease != 0 {
                    let user_key = decode_key_prefix(prefix);
                    out.put(Cf::LeaseKeys, &lease_key_entry(lease, &user_key), &[])?;
                }
            }
        }
        versions.next();
    }
    versions.status()?;

    let meta_put =
        |out: &mut Batches<'_>, key: &[u8], value: u64| out.put(Cf::Meta, key, &encode_u64(value));
    meta_put(&mut out, meta::REVISION, summary.revision as u64)?;
    meta_put(&mut out, meta::KEYS, summary.keys)?;
    if summary.compacted > 0 {
        meta_put(&mut out, meta::COMPACTED, summary.compacted as u64)?;
        meta_put(&mut out, meta::COMPACT_FINISHED, finished as u64)?;
    }
    if !alarms.is_empty() {
        alarms.sort_by_key(|a| (a.alarm, a.member_id));
        let encoded = AlarmResponse {
            header: None,
            alarms,
        }
        .encode_to_vec();
        out.put(Cf::Meta, meta::ALARMS, &encoded)?;
    }
    out.flush()?;
    backend.flush()?;
    Ok(summary)
}
