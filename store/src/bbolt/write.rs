//! Writing a bbolt file front to back: each bucket's tree as its keys arrive in order
//! (one page in memory per tree level), then the root bucket, then the meta pages.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

use super::*;

/// A bbolt file being written.
#[derive(Debug)]
pub struct BoltWriter {
    out: BufWriter<File>,
    /// The id of the next page written.
    next_page: u64,
}

/// One node being filled: its elements' keys, values (for a branch, the child page id
/// in 8 bytes) and flags.
#[derive(Debug, Default)]
struct Node {
    elements: Vec<(Vec<u8>, Vec<u8>, u32)>,
    bytes: usize,
    /// True once this level wrote a page: a level that did is not the root.
    wrote: bool,
}

/// The tree of one bucket, written bottom-up as its keys arrive in ascending order.
#[derive(Debug)]
pub struct TreeWriter {
    /// `levels[0]` is the leaf being filled, `levels[i]` the branch above it.
    levels: Vec<Node>,
}

impl BoltWriter {
    /// Creates `path`, reserving the meta and freelist pages.
    pub fn create(path: &Path) -> std::io::Result<BoltWriter> {
        let mut out = BufWriter::new(File::create(path)?);
        out.write_all(&[0; 3 * PAGE_SIZE])?;
        Ok(BoltWriter { out, next_page: 3 })
    }

    /// Starts a bucket's tree.
    pub fn tree(&self) -> TreeWriter {
        TreeWriter {
            levels: vec![Node::default()],
        }
    }

    /// Writes one node as a page (and its overflow pages); returns its page id.
    fn write_node(&mut self, node: &Node, flags: u16) -> std::io::Result<u64> {
        let count = node.elements.len();
        let size = PAGE_HEADER_BYTES + node.bytes;
        let pages = size.div_ceil(PAGE_SIZE).max(1);
        let id = self.next_page;
        let mut page = Vec::with_capacity(pages * PAGE_SIZE);
        page.extend_from_slice(&id.to_le_bytes());
        page.extend_from_slice(&flags.to_le_bytes());
        page.extend_from_slice(
            &u16::try_from(count)
                .expect("elements fit a page")
                .to_le_bytes(),
        );
        page.extend_from_slice(
            &u32::try_from(pages - 1)
                .expect("overflow fits")
                .to_le_bytes(),
        );
        let mut data = PAGE_HEADER_BYTES + count * ELEMENT_BYTES;
        for (i, (key, value, element_flags)) in node.elements.iter().enumerate() {
            let pos = (data - (PAGE_HEADER_BYTES + i * ELEMENT_BYTES)) as u32;
            if flags == LEAF_PAGE {
                page.extend_from_slice(&element_flags.to_le_bytes());
                page.extend_from_slice(&pos.to_le_bytes());
                page.extend_from_slice(&(key.len() as u32).to_le_bytes());
                page.extend_from_slice(&(value.len() as u32).to_le_bytes());
                data += key.len() + value.len();
            } else {
                page.extend_from_slice(&pos.to_le_bytes());
                page.extend_from_slice(&(key.len() as u32).to_le_bytes());
                page.extend_from_slice(value);
                data += key.len();
            }
        }
        for (key, value, _) in &node.elements {
            page.extend_from_slice(key);
            if flags == LEAF_PAGE {
                page.extend_from_slice(value);
            }
        }
        page.resize(pages * PAGE_SIZE, 0);
        self.out.write_all(&page)?;
        self.next_page += pages as u64;
        Ok(id)
    }

    /// Writes the root bucket naming `buckets` (sorted by name, each with the root page
    /// its tree returned), the freelist and the meta pages; returns the file's size.
    pub fn finish(mut self, buckets: &[(&[u8], u64)]) -> std::io::Result<u64> {
        let mut root = self.tree();
        for (name, page) in buckets {
            let mut header = page.to_le_bytes().to_vec();
            header.extend_from_slice(&0u64.to_le_bytes());
            root.push(&mut self, name, &header, true)?;
        }
        let root = root.finish(&mut self)?;
        let high_water = self.next_page;
        let mut out = self.out.into_inner().map_err(|e| e.into_error())?;
        for (id, txid) in [(0u64, 0u64), (1, 1)] {
            let mut page = vec![0; PAGE_SIZE];
            page[..8].copy_from_slice(&id.to_le_bytes());
            page[8..10].copy_from_slice(&META_PAGE.to_le_bytes());
            let mut meta = Vec::with_capacity(64);
            meta.extend_from_slice(&MAGIC.to_le_bytes());
            meta.extend_from_slice(&VERSION.to_le_bytes());
            meta.extend_from_slice(&(PAGE_SIZE as u32).to_le_bytes());
            meta.extend_from_slice(&0u32.to_le_bytes());
            meta.extend_from_slice(&root.to_le_bytes());
            meta.extend_from_slice(&0u64.to_le_bytes());
            meta.extend_from_slice(&2u64.to_le_bytes());
            meta.extend_from_slice(&high_water.to_le_bytes());
            meta.extend_from_slice(&txid.to_le_bytes());
            debug_assert_eq!(meta.len(), META_CHECKED_BYTES);
            meta.extend_from_slice(&fnv1a64(&meta).to_le_bytes());
            page[PAGE_HEADER_BYTES..PAGE_HEADER_BYTES + meta.len()].copy_from_slice(&meta);
            out.seek(SeekFrom::Start(id * PAGE_SIZE as u64))?;
            out.write_all(&page)?;
        }
        let mut freelist = vec![0; PAGE_SIZE];
        freelist[..8].copy_from_slice(&2u64.to_le_bytes());
        freelist[8..10].copy_from_slice(&FREELIST_PAGE.to_le_bytes());
        out.seek(SeekFrom::Start(2 * PAGE_SIZE as u64))?;
        out.write_all(&freelist)?;
        out.sync_all()?;
        Ok(high_water * PAGE_SIZE as u64)
    }
}

impl TreeWriter {
    /// Adds the next key (greater than every key before it); `bucket` marks a value
    /// that is a bucket header.
    pub fn push(
        &mut self,
        writer: &mut BoltWriter,
        key: &[u8],
        value: &[u8],
        bucket: bool,
    ) -> std::io::Result<()> {
        let flags = if bucket { BUCKET_LEAF } else { 0 };
        self.add(writer, 0, key.to_vec(), value.to_vec(), flags)
    }

    fn add(
        &mut self,
        writer: &mut BoltWriter,
        level: usize,
        key: Vec<u8>,
        value: Vec<u8>,
        flags: u32,
    ) -> std::io::Result<()> {
        if self.levels.len() == level {
            self.levels.push(Node::default());
        }
        let bytes = ELEMENT_BYTES + key.len() + if level == 0 { value.len() } else { 0 };
        let node = &self.levels[level];
        if !node.elements.is_empty() && PAGE_HEADER_BYTES + node.bytes + bytes > PAGE_SIZE {
            self.flush(writer, level)?;
        }
        let node = &mut self.levels[level];
        node.bytes += bytes;
        node.elements.push((key, value, flags));
        Ok(())
    }

    /// Writes the node being filled at `level` and names it in the level above.
    fn flush(&mut self, writer: &mut BoltWriter, level: usize) -> std::io::Result<()> {
        let node = std::mem::take(&mut self.levels[level]);
        let flags = if level == 0 { LEAF_PAGE } else { BRANCH_PAGE };
        let page = writer.write_node(&node, flags)?;
        self.levels[level].wrote = true;
        let first = node
            .elements
            .into_iter()
            .next()
            .expect("a flushed node has elements")
            .0;
        self.add(writer, level + 1, first, page.to_le_bytes().to_vec(), 0)
    }

    /// Writes what is left; returns the tree's root page.
    pub fn finish(mut self, writer: &mut BoltWriter) -> std::io::Result<u64> {
        let mut level = 0;
        loop {
            let top = level == self.levels.len() - 1;
            if top && !self.levels[level].wrote {
                let flags = if level == 0 { LEAF_PAGE } else { BRANCH_PAGE };
                return writer.write_node(&self.levels[level], flags);
            }
            if !self.levels[level].elements.is_empty() {
                self.flush(writer, level)?;
            }
            level += 1;
        }
    }
}
