//! Writing the store as etcd's backend database, from one RocksDB snapshot: a
//! consistent point in time that writes going on meanwhile do not disturb.

use std::collections::BTreeMap;
use std::path::Path;

use ballast_proto::etcdserverpb::{AlarmResponse, MemberListResponse};
use ballast_proto::mvccpb::KeyValue;
use prost::Message;

use super::{buckets, keys, revision_key, LeaseRecord, TOMBSTONE_MARK};
use crate::auth::layout;
use crate::backend::{meta, Backend, Cf};
use crate::bbolt::{BoltWriter, TreeWriter};
use crate::error::{Error, Result};
use crate::keys::{split_rev_key, version_key};
use crate::record::{decode_u64, Change, ChangeKind, LeaseRecord as StoredLease, Version};

/// What a written database holds, for the caller's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdDbSummary {
    /// Its size in bytes (a multiple of the page size).
    pub bytes: u64,
    pub revision: i64,
    /// Entries of the `key` bucket: every version kept, tombstones included.
    pub versions: u64,
    pub applied_index: u64,
}

/// The cluster version etcd reads from the `cluster` bucket.
const CLUSTER_VERSION: &[u8] = b"3.5.0";

/// Writes the state of `backend` at this instant to `path` in etcd's layout.
pub fn write_etcd_db(backend: &Backend, path: &Path) -> Result<EtcdDbSummary> {
    let db = backend.db();
    let snapshot = db.snapshot();
    let get = |cf: Cf, key: &[u8]| snapshot.get_cf(backend.cf(cf), key);
    let meta_u64 = |key: &[u8]| -> Result<Option<u64>> {
        get(Cf::Meta, key)?.map(|v| decode_u64(&v)).transpose()
    };
    let (applied_index, applied_term) = match get(Cf::Meta, meta::APPLIED)? {
        Some(bytes) if bytes.len() == 16 => (decode_u64(&bytes[..8])?, decode_u64(&bytes[8..])?),
        _ => (0, 0),
    };
    let revision = meta_u64(meta::REVISION)?.unwrap_or(1) as i64;
    let compacted = meta_u64(meta::COMPACTED)?.unwrap_or(0) as i64;

    let mut writer = BoltWriter::create(path)?;
    let mut roots: Vec<(&[u8], u64)> = Vec::new();

    // key: every version in revision order, from the history.
    let mut tree = writer.tree();
    let mut versions = 0u64;
    let mut history = snapshot.raw_iterator_cf_opt(backend.cf(Cf::Rev), backend.read_options());
    history.seek_to_first();
    while let (Some(rev), Some(change)) = (history.key(), history.value()) {
        let (main, sub) = split_rev_key(rev);
        let change = Change::decode(change)?;
        let mut key = revision_key(main, sub).to_vec();
        let kv = match change.kind {
            ChangeKind::Delete => {
                key.push(TOMBSTONE_MARK);
                KeyValue {
                    key: change.key.clone(),
                    ..Default::default()
                }
            }
            ChangeKind::Put => {
                let stored = get(Cf::Kv, &version_key(&change.key, main))?.ok_or_else(|| {
                    Error::Corrupt(format!("revision {main} names a version that is missing"))
                })?;
                match Version::decode(&stored, true)? {
                    Version::Put {
                        create_revision,
                        version,
                        lease,
                        value,
                    } => KeyValue {
                        key: change.key.clone(),
                        create_revision,
                        mod_revision: main,
                        version,
                        value,
                        lease,
                    },
                    Version::Tombstone => {
                        return Err(Error::Corrupt(format!(
                            "revision {main}: a put is a tombstone"
                        )))
                    }
                }
            }
        };
        tree.push(&mut writer, &key, &kv.encode_to_vec(), false)?;
        versions += 1;
        history.next();
    }
    history.status()?;
    roots.push((buckets::KEY, tree.finish(&mut writer)?));

    // lease: ids are big-endian in both layouts, so the order carries over.
    let mut tree = writer.tree();
    let mut leases = snapshot.raw_iterator_cf_opt(backend.cf(Cf::Lease), backend.read_options());
    leases.seek_to_first();
    while let (Some(id), Some(record)) = (leases.key(), leases.value()) {
        let lease = LeaseRecord {
            id: i64::from_be_bytes(
                id.try_into()
                    .map_err(|_| Error::Corrupt("lease id".into()))?,
            ),
            ttl: StoredLease::decode(record)?.ttl,
            remaining_ttl: 0,
        };
        tree.push(&mut writer, id, &lease.encode_to_vec(), false)?;
        leases.next();
    }
    leases.status()?;
    roots.push((buckets::LEASE, tree.finish(&mut writer)?));

    // The small buckets, gathered sorted.
    let mut small: BTreeMap<&[u8], BTreeMap<Vec<u8>, Vec<u8>>> = BTreeMap::new();
    let meta_bucket = small.entry(buckets::META).or_default();
    meta_bucket.insert(
        keys::CONSISTENT_INDEX.to_vec(),
        applied_index.to_be_bytes().to_vec(),
    );
    meta_bucket.insert(keys::TERM.to_vec(), applied_term.to_be_bytes().to_vec());
    if compacted > 0 {
        let at = revision_key(compacted, 0).to_vec();
        meta_bucket.insert(keys::FINISHED_COMPACT.to_vec(), at.clone());
        meta_bucket.insert(keys::SCHEDULED_COMPACT.to_vec(), at);
    }
    let auth_bucket = small.entry(buckets::AUTH).or_default();
    let enabled = get(Cf::Auth, layout::ENABLED)?.is_some_and(|v| v == [1]);
    auth_bucket.insert(keys::AUTH_ENABLED.to_vec(), vec![u8::from(enabled)]);
    let auth_revision = match get(Cf::Auth, layout::REVISION)? {
        Some(bytes) => decode_u64(&bytes)?,
        None => crate::auth::INITIAL_AUTH_REVISION,
    };
    auth_bucket.insert(
        keys::AUTH_REVISION.to_vec(),
        auth_revision.to_be_bytes().to_vec(),
    );
    let mut users = BTreeMap::new();
    let mut roles = BTreeMap::new();
    let mut auth = snapshot.raw_iterator_cf_opt(backend.cf(Cf::Auth), backend.read_options());
    auth.seek_to_first();
    while let (Some(key), Some(value)) = (auth.key(), auth.value()) {
        if let Some(name) = key.strip_prefix(layout::USER_PREFIX) {
            users.insert(name.to_vec(), value.to_vec());
        } else if let Some(name) = key.strip_prefix(layout::ROLE_PREFIX) {
            roles.insert(name.to_vec(), value.to_vec());
        }
        auth.next();
    }
    auth.status()?;
    small.insert(buckets::AUTH_USERS, users);
    small.insert(buckets::AUTH_ROLES, roles);
    let members = match get(Cf::Meta, meta::MEMBERS)? {
        Some(bytes) => MemberListResponse::decode(&bytes[..])?.members,
        None => Vec::new(),
    };
    small.insert(
        buckets::MEMBERS,
        members
            .iter()
            .map(|m| {
                (
                    format!("{:x}", m.id).into_bytes(),
                    member_json(m).into_bytes(),
                )
            })
            .collect(),
    );
    let removed = get(Cf::Meta, meta::REMOVED)?.unwrap_or_default();
    small.insert(
        buckets::MEMBERS_REMOVED,
        removed
            .chunks(8)
            .map(|id| {
                Ok((
                    format!("{:x}", decode_u64(id)?).into_bytes(),
                    b"removed".to_vec(),
                ))
            })
            .collect::<Result<_>>()?,
    );
    small
        .entry(buckets::CLUSTER)
        .or_default()
        .insert(keys::CLUSTER_VERSION.to_vec(), CLUSTER_VERSION.to_vec());
    let alarms = match get(Cf::Meta, meta::ALARMS)? {
        Some(bytes) => AlarmResponse::decode(&bytes[..])?.alarms,
        None => Vec::new(),
    };
    small.insert(
        buckets::ALARM,
        alarms
            .iter()
            .map(|a| (a.encode_to_vec(), Vec::new()))
            .collect(),
    );
    for (name, entries) in small {
        let mut tree: TreeWriter = writer.tree();
        for (key, value) in entries {
            tree.push(&mut writer, &key, &value, false)?;
        }
        roots.push((name, tree.finish(&mut writer)?));
    }

    roots.sort();
    let bytes = writer.finish(&roots)?;
    Ok(EtcdDbSummary {
        bytes,
        revision,
        versions,
        applied_index,
    })
}

/// `text` as a JSON string.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A member as etcd stores it in the `members` bucket.
fn member_json(member: &ballast_proto::etcdserverpb::Member) -> String {
    let list = |urls: &[String]| {
        let quoted: Vec<String> = urls.iter().map(|u| json_string(u)).collect();
        format!("[{}]", quoted.join(","))
    };
    let learner = if member.is_learner {
        r#","isLearner":true"#
    } else {
        ""
    };
    format!(
        r#"{{"id":{},"peerURLs":{}{learner},"name":{},"clientURLs":{}}}"#,
        member.id,
        list(&member.peer_urls),
        json_string(&member.name),
        list(&member.client_urls),
    )
}
