//! `snapshot status`: what etcdutl reports of a snapshot file, computed the same way so
//! the two can be compared: a CRC-32C over every bucket's name, keys and values in
//! order, the revision of the last `key` entry, the number of entries, the size.

use std::path::Path;

use super::{buckets, REVISION_KEY_BYTES};
use crate::bbolt::BoltReader;
use crate::error::Result;

/// etcdutl's `snapshot status` fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotStatus {
    pub hash: u32,
    pub revision: i64,
    pub total_key: u64,
    pub total_size: u64,
}

/// CRC-32C (Castagnoli), reflected, as Go's `crc32.MakeTable(crc32.Castagnoli)`.
struct Crc32c {
    table: [u32; 256],
    crc: u32,
}

impl Crc32c {
    fn new() -> Crc32c {
        let mut table = [0u32; 256];
        for (i, entry) in table.iter_mut().enumerate() {
            let mut crc = i as u32;
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0x82F6_3B78
                } else {
                    crc >> 1
                };
            }
            *entry = crc;
        }
        Crc32c { table, crc: !0 }
    }

    fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.crc = self.table[((self.crc ^ u32::from(b)) & 0xFF) as usize] ^ (self.crc >> 8);
        }
    }

    fn finish(&self) -> u32 {
        !self.crc
    }
}

/// The status of the snapshot at `path` (with or without its trailing hash).
pub fn snapshot_status(path: &Path) -> Result<SnapshotStatus> {
    let reader = BoltReader::open(path)?;
    let mut crc = Crc32c::new();
    let mut status = SnapshotStatus {
        hash: 0,
        revision: 0,
        total_key: 0,
        total_size: reader.size(),
    };
    for name in reader.bucket_names()? {
        crc.update(&name);
        let is_key = name == buckets::KEY;
        reader.for_each(&name, |key, value| {
            crc.update(key);
            crc.update(value);
            if is_key && key.len() >= REVISION_KEY_BYTES {
                status.revision = u64::from_be_bytes(key[..8].try_into().expect("8")) as i64;
            }
            status.total_key += 1;
            Ok(())
        })?;
    }
    status.hash = crc.finish();
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_check_value() {
        let mut crc = Crc32c::new();
        crc.update(b"123456789");
        assert_eq!(crc.finish(), 0xE306_9283);
    }
}
