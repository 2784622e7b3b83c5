//! Byte layouts of the values in the `kv`, `rev` and `lease` column families.
//!
//! Hand-written fixed layouts rather than protobuf: they are read on every range and
//! written on every put, and a fixed header lets a range skip a value it does not need.
//! RocksDB checksums its blocks, so the records carry no checksum of their own.

use bytes::Bytes;

use crate::error::{Error, Result};

const KIND_PUT: u8 = 1;
const KIND_TOMBSTONE: u8 = 2;
/// kind + create revision + version + lease.
const PUT_HEADER_BYTES: usize = 1 + 8 + 8 + 8;

/// One version of a key, as stored under `keys::version_key(key, mod_revision)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Version {
    /// The key was written at this revision.
    Put {
        create_revision: i64,
        version: i64,
        lease: i64,
        value: Bytes,
    },
    /// The key was deleted at this revision.
    Tombstone,
}

impl Version {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Version::Put {
                create_revision,
                version,
                lease,
                value,
            } => {
                let mut out = Vec::with_capacity(PUT_HEADER_BYTES + value.len());
                out.push(KIND_PUT);
                out.extend_from_slice(&create_revision.to_be_bytes());
                out.extend_from_slice(&version.to_be_bytes());
                out.extend_from_slice(&lease.to_be_bytes());
                out.extend_from_slice(value);
                out
            }
            Version::Tombstone => vec![KIND_TOMBSTONE],
        }
    }

    /// Decodes a stored version; `with_value` false skips copying the value.
    pub fn decode(bytes: &[u8], with_value: bool) -> Result<Version> {
        match bytes.first() {
            Some(&KIND_TOMBSTONE) if bytes.len() == 1 => Ok(Version::Tombstone),
            Some(&KIND_PUT) if bytes.len() >= PUT_HEADER_BYTES => {
                let field =
                    |at: usize| i64::from_be_bytes(bytes[at..at + 8].try_into().expect("8"));
                let value = if with_value {
                    Bytes::copy_from_slice(&bytes[PUT_HEADER_BYTES..])
                } else {
                    Bytes::new()
                };
                Ok(Version::Put {
                    create_revision: field(1),
                    version: field(9),
                    lease: field(17),
                    value,
                })
            }
            _ => Err(Error::Corrupt(format!(
                "bad kv record of {} bytes",
                bytes.len()
            ))),
        }
    }
}

/// What a `rev` entry records: which key changed and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub kind: ChangeKind,
    pub key: Bytes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Put,
    Delete,
}

impl Change {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + self.key.len());
        out.push(match self.kind {
            ChangeKind::Put => KIND_PUT,
            ChangeKind::Delete => KIND_TOMBSTONE,
        });
        out.extend_from_slice(&self.key);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Change> {
        let kind = match bytes.first() {
            Some(&KIND_PUT) => ChangeKind::Put,
            Some(&KIND_TOMBSTONE) => ChangeKind::Delete,
            _ => return Err(Error::Corrupt(format!("bad rev record {bytes:?}"))),
        };
        Ok(Change {
            kind,
            key: Bytes::copy_from_slice(&bytes[1..]),
        })
    }
}

/// A lease as stored in the `lease` column family, keyed by its id (i64 big-endian).
/// Only the granted TTL is replicated state; expiry deadlines live on the leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseRecord {
    pub ttl: i64,
}

impl LeaseRecord {
    pub fn encode(&self) -> [u8; 8] {
        self.ttl.to_be_bytes()
    }

    pub fn decode(bytes: &[u8]) -> Result<LeaseRecord> {
        let ttl = bytes
            .try_into()
            .map(i64::from_be_bytes)
            .map_err(|_| Error::Corrupt(format!("bad lease record {bytes:?}")))?;
        Ok(LeaseRecord { ttl })
    }
}

/// Encodes a u64 or i64 stored in `meta` or `raft_state`.
pub fn encode_u64(value: u64) -> [u8; 8] {
    value.to_be_bytes()
}

pub fn decode_u64(bytes: &[u8]) -> Result<u64> {
    bytes
        .try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| Error::Corrupt(format!("bad u64 {bytes:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_round_trips() {
        let put = Version::Put {
            create_revision: 2,
            version: 3,
            lease: 77,
            value: Bytes::from_static(b"value"),
        };
        assert_eq!(Version::decode(&put.encode(), true).unwrap(), put);
        assert_eq!(
            Version::decode(&Version::Tombstone.encode(), true).unwrap(),
            Version::Tombstone
        );
        match Version::decode(&put.encode(), false).unwrap() {
            Version::Put { value, version, .. } => {
                assert!(value.is_empty());
                assert_eq!(version, 3);
            }
            Version::Tombstone => panic!("decoded a put as a tombstone"),
        }
    }

    #[test]
    fn truncated_records_are_corrupt() {
        assert!(Version::decode(&[KIND_PUT, 0, 0], true).is_err());
        assert!(Version::decode(&[], true).is_err());
        assert!(Change::decode(&[9]).is_err());
        assert!(LeaseRecord::decode(&[1, 2]).is_err());
    }
}
