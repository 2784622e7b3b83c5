//! Reading a bbolt file: its meta, its buckets, each bucket's keys in order. Pages are
//! read as they are visited, so memory stays a page per tree level whatever the size.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::*;
use crate::error::{Error, Result};

/// A bbolt file opened for reading.
#[derive(Debug)]
pub struct BoltReader {
    file: File,
    page_size: usize,
    /// The root bucket's root page.
    root: u64,
    /// Pages the meta says the file holds.
    pages: u64,
}

fn corrupt(what: impl Into<String>) -> Error {
    Error::Corrupt(format!("bbolt: {}", what.into()))
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(bytes[at..at + 2].try_into().expect("2 bytes"))
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// What a tree walk calls with each leaf element: key, value, flags.
type Visit<'a> = dyn FnMut(&[u8], &[u8], u32) -> Result<()> + 'a;

/// One element of a page: key, value (a branch's: the child page id), leaf flags.
type Element<'a> = (&'a [u8], &'a [u8], u32);

/// The elements of a page (header included in `page`).
fn elements(page: &[u8]) -> Result<Vec<Element<'_>>> {
    if page.len() < PAGE_HEADER_BYTES {
        return Err(corrupt("short page"));
    }
    let flags = u16_at(page, 8);
    let count = usize::from(u16_at(page, 10));
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let at = PAGE_HEADER_BYTES + i * ELEMENT_BYTES;
        if at + ELEMENT_BYTES > page.len() {
            return Err(corrupt("elements past the page"));
        }
        let slice = |from: usize, len: usize| {
            page.get(from..from + len)
                .ok_or_else(|| corrupt("element data past the page"))
        };
        if flags & LEAF_PAGE != 0 {
            let (element_flags, pos, ksize, vsize) = (
                u32_at(page, at),
                u32_at(page, at + 4) as usize,
                u32_at(page, at + 8) as usize,
                u32_at(page, at + 12) as usize,
            );
            let key = slice(at + pos, ksize)?;
            let value = slice(at + pos + ksize, vsize)?;
            out.push((key, value, element_flags));
        } else if flags & BRANCH_PAGE != 0 {
            let (pos, ksize) = (u32_at(page, at) as usize, u32_at(page, at + 4) as usize);
            out.push((slice(at + pos, ksize)?, &page[at + 8..at + 16], 0));
        } else {
            return Err(corrupt(format!("page of kind {flags:#x} in a tree")));
        }
    }
    Ok(out)
}

impl BoltReader {
    /// Opens `path`, checking its meta pages; the valid one of the later transaction
    /// counts (as bbolt does).
    pub fn open(path: &Path) -> Result<BoltReader> {
        let file = File::open(path)?;
        let length = file.metadata()?.len();
        let mut best: Option<(u64, BoltReader)> = None;
        for page in 0..2u64 {
            // The meta page's size is not known before its meta is read: a meta sits
            // at page 0 and at its page size.
            let at = if page == 0 {
                0
            } else {
                best.as_ref().map_or(PAGE_SIZE, |(_, r)| r.page_size) as u64
            };
            let mut head = [0u8; PAGE_HEADER_BYTES + META_CHECKED_BYTES + 8];
            if file.read_exact_at(&mut head, at).is_err() {
                continue;
            }
            let meta = &head[PAGE_HEADER_BYTES..];
            let valid = u32_at(meta, 0) == MAGIC
                && u32_at(meta, 4) == VERSION
                && u64_at(meta, META_CHECKED_BYTES) == fnv1a64(&meta[..META_CHECKED_BYTES]);
            if !valid {
                continue;
            }
            let txid = u64_at(meta, 48);
            let reader = BoltReader {
                file: file.try_clone()?,
                page_size: u32_at(meta, 8) as usize,
                root: u64_at(meta, 16),
                pages: u64_at(meta, 40),
            };
            if best.as_ref().is_none_or(|(t, _)| txid >= *t) {
                best = Some((txid, reader));
            }
        }
        let (_, reader) = best.ok_or_else(|| corrupt("no valid meta page: not a bbolt file"))?;
        if reader.page_size < 512 || reader.pages * reader.page_size as u64 > length {
            return Err(corrupt(format!(
                "meta says {} pages of {} bytes, the file has {length} bytes",
                reader.pages, reader.page_size
            )));
        }
        Ok(reader)
    }

    /// The database's size: its pages, as the meta counts them (bbolt's `Tx.Size`).
    pub fn size(&self) -> u64 {
        self.pages * self.page_size as u64
    }

    /// A page with its overflow pages.
    fn page(&self, id: u64) -> Result<Vec<u8>> {
        if id < 2 || id >= self.pages {
            return Err(corrupt(format!(
                "page {id} out of the file's {}",
                self.pages
            )));
        }
        let mut page = vec![0u8; self.page_size];
        self.file
            .read_exact_at(&mut page, id * self.page_size as u64)?;
        let overflow = u64::from(u32_at(&page, 12));
        if overflow > 0 {
            if id + overflow >= self.pages {
                return Err(corrupt(format!("page {id} runs past the file")));
            }
            page.resize((1 + overflow as usize) * self.page_size, 0);
            self.file.read_exact_at(
                &mut page[self.page_size..],
                (id + 1) * self.page_size as u64,
            )?;
        }
        Ok(page)
    }

    /// Visits every leaf element of the tree at `page`, in key order.
    fn walk(&self, page: u64, depth: usize, visit: &mut Visit<'_>) -> Result<()> {
        // bbolt trees are a few levels deep; a cycle in a damaged file is not.
        if depth > 64 {
            return Err(corrupt("tree deeper than 64 levels"));
        }
        let bytes = self.page(page)?;
        let branch = u16_at(&bytes, 8) & BRANCH_PAGE != 0;
        for (key, value, flags) in elements(&bytes)? {
            if branch {
                self.walk(u64_at(value, 0), depth + 1, visit)?;
            } else {
                visit(key, value, flags)?;
            }
        }
        Ok(())
    }

    /// The top-level buckets' names, in order.
    pub fn bucket_names(&self) -> Result<Vec<Vec<u8>>> {
        let mut names = Vec::new();
        self.walk(self.root, 0, &mut |key, _, flags| {
            if flags & BUCKET_LEAF != 0 {
                names.push(key.to_vec());
            }
            Ok(())
        })?;
        Ok(names)
    }

    /// The header (and inline page, if any) of bucket `name`.
    fn bucket_value(&self, name: &[u8]) -> Result<Vec<u8>> {
        let mut found = None;
        self.walk(self.root, 0, &mut |key, value, flags| {
            if key == name && flags & BUCKET_LEAF != 0 {
                found = Some(value.to_vec());
            }
            Ok(())
        })?;
        let value = found
            .ok_or_else(|| corrupt(format!("no bucket {:?}", String::from_utf8_lossy(name))))?;
        if value.len() < BUCKET_HEADER_BYTES {
            return Err(corrupt("short bucket header"));
        }
        Ok(value)
    }

    /// True if the file has a top-level bucket `name`.
    pub fn has_bucket(&self, name: &[u8]) -> Result<bool> {
        Ok(self.bucket_names()?.iter().any(|n| n == name))
    }

    /// Calls `visit` with every key and value of bucket `name`, in key order; nested
    /// buckets are skipped (etcd has none).
    pub fn for_each(
        &self,
        name: &[u8],
        mut visit: impl FnMut(&[u8], &[u8]) -> Result<()>,
    ) -> Result<()> {
        let header = self.bucket_value(name)?;
        let root = u64_at(&header, 0);
        let mut plain = |key: &[u8], value: &[u8], flags: u32| {
            if flags & BUCKET_LEAF != 0 {
                return Ok(());
            }
            visit(key, value)
        };
        if root == 0 {
            // An inline bucket: its one leaf page follows the header.
            let page = &header[BUCKET_HEADER_BYTES..];
            for (key, value, flags) in elements(page)? {
                plain(key, value, flags)?;
            }
            return Ok(());
        }
        self.walk(root, 0, &mut plain)
    }
}
