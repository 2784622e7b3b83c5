//! bbolt's file format (the database file of etcd's backend, and so of etcd's
//! snapshots), written and read without bbolt: enough to hand etcd a snapshot it can
//! restore and to take in one of its snapshots.
//!
//! A file is pages of `page_size` bytes. Pages 0 and 1 hold the meta (the one with the
//! higher transaction id wins), page 2 here the freelist. A bucket is a B+tree: leaf
//! pages hold sorted (key, value) elements, branch pages (first key of a child, child
//! page id) elements; an element too large for a page makes its page run on into
//! "overflow" pages. The root bucket's leaves name the top-level buckets, each value a
//! 16-byte bucket header (root page id, sequence); a root of 0 means the bucket's one
//! page is inline, right after the header. Every integer is little-endian (bbolt writes
//! its structs in the machine's order; etcd's files come from amd64 and arm64).
//!
//! The `bbolt-rs` crate ports all of bbolt (transactions, mmap, freelists, rebalancing);
//! writing a fresh file front to back and reading one is a small part of that, so this
//! module does only that, streaming, in memory bounded by a page per tree level.

mod read;
mod write;

pub use read::BoltReader;
pub use write::{BoltWriter, TreeWriter};

/// The page size this module writes (bbolt's default on Linux).
pub const PAGE_SIZE: usize = 4096;
const PAGE_HEADER_BYTES: usize = 16;
/// A leaf or branch element's fixed part.
const ELEMENT_BYTES: usize = 16;
const BRANCH_PAGE: u16 = 0x01;
const LEAF_PAGE: u16 = 0x02;
const META_PAGE: u16 = 0x04;
const FREELIST_PAGE: u16 = 0x10;
/// Leaf element flag: the value is a bucket header.
const BUCKET_LEAF: u32 = 0x01;
const MAGIC: u32 = 0xED0C_DAED;
const VERSION: u32 = 2;
/// Bytes of the meta before its checksum: what the checksum covers.
const META_CHECKED_BYTES: usize = 56;
/// Bytes of a bucket header.
const BUCKET_HEADER_BYTES: usize = 16;

/// FNV-1a, 64 bits: bbolt's meta checksum.
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_matches_the_reference_values() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn written_trees_read_back_in_order_whatever_their_shape() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let mut writer = BoltWriter::create(&path).unwrap();
        // A bucket of many small keys (branch levels), one of large values (overflow
        // pages), an empty one.
        let mut many = writer.tree();
        for i in 0..20_000u32 {
            many.push(
                &mut writer,
                &i.to_be_bytes(),
                format!("v{i}").as_bytes(),
                false,
            )
            .unwrap();
        }
        let many = many.finish(&mut writer).unwrap();
        let mut large = writer.tree();
        for i in 0..5u8 {
            large
                .push(&mut writer, &[i], &vec![i; 3 * PAGE_SIZE + 7], false)
                .unwrap();
        }
        let large = large.finish(&mut writer).unwrap();
        let empty = writer.tree().finish(&mut writer).unwrap();
        writer
            .finish(&[
                (b"empty".as_slice(), empty),
                (b"large".as_slice(), large),
                (b"many".as_slice(), many),
            ])
            .unwrap();

        let reader = BoltReader::open(&path).unwrap();
        assert_eq!(
            reader.bucket_names().unwrap(),
            [b"empty".to_vec(), b"large".to_vec(), b"many".to_vec()]
        );
        let mut seen = 0u32;
        reader
            .for_each(b"many", |key, value| {
                assert_eq!(key, seen.to_be_bytes());
                assert_eq!(value, format!("v{seen}").as_bytes());
                seen += 1;
                Ok(())
            })
            .unwrap();
        assert_eq!(seen, 20_000);
        let mut large_seen = 0u8;
        reader
            .for_each(b"large", |key, value| {
                assert_eq!(key, [large_seen]);
                assert_eq!(value.len(), 3 * PAGE_SIZE + 7);
                assert!(value.iter().all(|b| *b == large_seen));
                large_seen += 1;
                Ok(())
            })
            .unwrap();
        assert_eq!(large_seen, 5);
        reader.for_each(b"empty", |_, _| panic!("empty")).unwrap();
        assert!(reader.for_each(b"missing", |_, _| Ok(())).is_err());
    }
}
