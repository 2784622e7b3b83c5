//! The store in etcd's backend layout (a bbolt database, `crate::bbolt`): what etcd's
//! Snapshot RPC streams and `etcdutl snapshot restore` turns into an etcd data dir.
//!
//! Buckets, as etcd 3.5 lays them out:
//! - `key`: revision key (main, 8 bytes big-endian, `_`, sub, 8 bytes; a tombstone adds
//!   `t`) -> `mvccpb.KeyValue` (a tombstone's holds only the key);
//! - `meta`: `consistent_index` and `term` (the applied raft entry, u64 big-endian),
//!   `finishedCompactRev` and `scheduledCompactRev` (revision keys);
//! - `lease`: id (i64 big-endian) -> `leasepb.Lease`;
//! - `auth`: `enabled` (one byte), `authRevision` (u64 big-endian); `authUsers` and
//!   `authRoles`: name -> `authpb.User` / `authpb.Role`;
//! - `members`: id in hex -> etcd's member JSON; `members_removed`: id in hex -> "removed";
//! - `cluster`: `clusterVersion`; `alarm`: an encoded `AlarmMember` -> nothing.

mod export;
mod import;
mod status;

pub use export::{write_etcd_db, EtcdDbSummary};
pub use import::{import_etcd_db, verify_snapshot_hash, ImportSummary, SNAPSHOT_HASH_BYTES};
pub use status::{snapshot_status, SnapshotStatus};

/// etcd's bucket names.
pub mod buckets {
    pub const KEY: &[u8] = b"key";
    pub const META: &[u8] = b"meta";
    pub const LEASE: &[u8] = b"lease";
    pub const AUTH: &[u8] = b"auth";
    pub const AUTH_USERS: &[u8] = b"authUsers";
    pub const AUTH_ROLES: &[u8] = b"authRoles";
    pub const MEMBERS: &[u8] = b"members";
    pub const MEMBERS_REMOVED: &[u8] = b"members_removed";
    pub const CLUSTER: &[u8] = b"cluster";
    pub const ALARM: &[u8] = b"alarm";
}

/// Keys of etcd's `meta` and `auth` buckets.
pub mod keys {
    pub const CONSISTENT_INDEX: &[u8] = b"consistent_index";
    pub const TERM: &[u8] = b"term";
    pub const FINISHED_COMPACT: &[u8] = b"finishedCompactRev";
    pub const SCHEDULED_COMPACT: &[u8] = b"scheduledCompactRev";
    pub const AUTH_ENABLED: &[u8] = b"enabled";
    pub const AUTH_REVISION: &[u8] = b"authRevision";
    pub const CLUSTER_VERSION: &[u8] = b"clusterVersion";
}

/// Bytes of an etcd revision key (`main_sub`), without the tombstone mark.
pub const REVISION_KEY_BYTES: usize = 17;
/// The mark after a tombstone's revision key.
pub const TOMBSTONE_MARK: u8 = b't';

/// etcd's revision key of (main, sub).
pub fn revision_key(main: i64, sub: i64) -> [u8; REVISION_KEY_BYTES] {
    let mut key = [0u8; REVISION_KEY_BYTES];
    key[..8].copy_from_slice(&(main as u64).to_be_bytes());
    key[8] = b'_';
    key[9..].copy_from_slice(&(sub as u64).to_be_bytes());
    key
}

/// etcd's lease record (`leasepb.Lease`), which no .proto here declares.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LeaseRecord {
    #[prost(int64, tag = "1")]
    pub id: i64,
    #[prost(int64, tag = "2")]
    pub ttl: i64,
    #[prost(int64, tag = "3")]
    pub remaining_ttl: i64,
}
