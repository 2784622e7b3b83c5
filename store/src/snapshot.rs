//! State-machine snapshots: how a member that is too far behind (or new) gets the whole
//! state at once.
//!
//! A snapshot is a file of our own format: a sequence of chunks, each
//! `[payload length: u32][crc32 of payload: u32][payload]`. The first payload is the
//! header (magic, format version, raft index and term, conf state); the others hold
//! records `[column family: u8][key length: u32][key][value length: u32][value]`; a
//! final chunk of length 0 carries the CRC32 of all payloads before it. Every chunk is
//! checked when read, and a file is verified whole before anything is installed from it.
//!
//! Writing takes one RocksDB snapshot, so the data, applied index, term and conf state
//! in the file all belong to the same point. Installing is atomic across crashes: a
//! marker naming the file is written first, and a store that opens with the marker
//! present installs the file again before doing anything else.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use protobuf::Message as _;
use raft::eraftpb::{ConfState, HardState};
use rocksdb::WriteBatch;

use crate::backend::{meta, raft_state, Backend, Cf};
use crate::crash;
use crate::error::{Error, Result};
use crate::record::{decode_u64, encode_u64};

const MAGIC: &[u8; 8] = b"BLSTSNAP";
const FORMAT_VERSION: u32 = 1;
/// Records are grouped into chunks of about this many bytes.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1 << 20;
/// Records written per WriteBatch while installing.
const INSTALL_RECORDS_PER_BATCH: usize = 10_000;
/// The largest chunk a reader accepts: anything bigger is corruption, not data.
const CHUNK_BYTES_MAX: usize = 256 << 20;

/// Column families whose whole content a snapshot carries.
const DATA_CFS: [Cf; 5] = [Cf::Kv, Cf::Rev, Cf::Lease, Cf::LeaseKeys, Cf::Auth];
/// `meta` keys a snapshot carries (the rest is member-local or rewritten on install).
const META_KEYS: [&[u8]; 9] = [
    meta::ALARMS,
    meta::HISTORY_COMPLETE,
    meta::KEYS,
    meta::REVISION,
    meta::COMPACTED,
    meta::COMPACT_FINISHED,
    meta::MEMBERS,
    meta::REMOVED,
    meta::CLUSTER_ID,
];
/// `meta` key of the install marker.
pub(crate) const INSTALLING: &[u8] = b"installing_snapshot";

/// What a snapshot file is a snapshot of.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotMeta {
    /// Raft index and term of the last entry whose effects it holds.
    pub index: u64,
    pub term: u64,
    /// The raft configuration at that index.
    pub conf_state: ConfState,
}

/// The file name of the snapshot at (term, index).
pub fn file_name(term: u64, index: u64) -> String {
    format!("{term:016x}-{index:016x}.snap")
}

fn cf_tag(cf: Cf) -> u8 {
    match cf {
        Cf::Kv => 1,
        Cf::Rev => 2,
        Cf::Lease => 3,
        Cf::LeaseKeys => 4,
        Cf::Auth => 5,
        Cf::Meta => 6,
        Cf::RaftLog | Cf::RaftState => unreachable!("raft state is not snapshotted"),
    }
}

fn cf_of(tag: u8) -> Result<Cf> {
    Ok(match tag {
        1 => Cf::Kv,
        2 => Cf::Rev,
        3 => Cf::Lease,
        4 => Cf::LeaseKeys,
        5 => Cf::Auth,
        6 => Cf::Meta,
        _ => {
            return Err(Error::Corrupt(format!(
                "snapshot record for unknown column family {tag}"
            )))
        }
    })
}

struct ChunkWriter<W: Write> {
    out: W,
    all: crc32fast::Hasher,
}

impl<W: Write> ChunkWriter<W> {
    fn chunk(&mut self, payload: &[u8]) -> Result<()> {
        assert!(!payload.is_empty(), "the empty chunk ends a file");
        self.out.write_all(&(payload.len() as u32).to_be_bytes())?;
        self.out
            .write_all(&crc32fast::hash(payload).to_be_bytes())?;
        self.out.write_all(payload)?;
        self.all.update(payload);
        Ok(())
    }

    fn finish(mut self) -> Result<W> {
        self.out.write_all(&0u32.to_be_bytes())?;
        self.out
            .write_all(&self.all.clone().finalize().to_be_bytes())?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Reads chunks, checking each one; `None` after the verified end chunk.
struct ChunkReader<R: Read> {
    input: R,
    all: crc32fast::Hasher,
    done: bool,
}

impl<R: Read> ChunkReader<R> {
    fn new(input: R) -> Self {
        ChunkReader {
            input,
            all: crc32fast::Hasher::new(),
            done: false,
        }
    }

    fn next(&mut self) -> Result<Option<Vec<u8>>> {
        if self.done {
            return Ok(None);
        }
        let mut head = [0u8; 8];
        self.input.read_exact(&mut head)?;
        let len = u32::from_be_bytes(head[..4].try_into().expect("4")) as usize;
        let crc = u32::from_be_bytes(head[4..].try_into().expect("4"));
        if len == 0 {
            self.done = true;
            if crc != self.all.clone().finalize() {
                return Err(Error::Corrupt("snapshot file checksum mismatch".into()));
            }
            return Ok(None);
        }
        if len > CHUNK_BYTES_MAX {
            return Err(Error::Corrupt(format!("snapshot chunk of {len} bytes")));
        }
        let mut payload = vec![0u8; len];
        self.input.read_exact(&mut payload)?;
        if crc32fast::hash(&payload) != crc {
            return Err(Error::Corrupt("snapshot chunk checksum mismatch".into()));
        }
        self.all.update(&payload);
        Ok(Some(payload))
    }
}

fn encode_header(meta: &SnapshotMeta) -> Result<Vec<u8>> {
    let conf = meta.conf_state.write_to_bytes()?;
    let mut out = Vec::with_capacity(32 + conf.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
    out.extend_from_slice(&meta.index.to_be_bytes());
    out.extend_from_slice(&meta.term.to_be_bytes());
    out.extend_from_slice(&conf);
    Ok(out)
}

fn decode_header(bytes: &[u8]) -> Result<SnapshotMeta> {
    if bytes.len() < 28 || &bytes[..8] != MAGIC {
        return Err(Error::Corrupt("not a Ballast snapshot".into()));
    }
    let version = u32::from_be_bytes(bytes[8..12].try_into().expect("4"));
    if version != FORMAT_VERSION {
        return Err(Error::Corrupt(format!(
            "snapshot format {version} is not {FORMAT_VERSION}"
        )));
    }
    Ok(SnapshotMeta {
        index: decode_u64(&bytes[12..20])?,
        term: decode_u64(&bytes[20..28])?,
        conf_state: ConfState::parse_from_bytes(&bytes[28..])?,
    })
}

fn push_record(out: &mut Vec<u8>, cf: Cf, key: &[u8], value: &[u8]) {
    out.push(cf_tag(cf));
    out.extend_from_slice(&(key.len() as u32).to_be_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(&(value.len() as u32).to_be_bytes());
    out.extend_from_slice(value);
}

/// One record of a snapshot: column family, key, value.
type Record<'a> = (Cf, &'a [u8], &'a [u8]);

/// Splits a chunk payload into its records.
fn records(payload: &[u8]) -> Result<Vec<Record<'_>>> {
    fn take<'a>(rest: &mut &'a [u8], n: usize) -> Result<&'a [u8]> {
        if rest.len() < n {
            return Err(Error::Corrupt("truncated snapshot record".into()));
        }
        let (head, tail) = rest.split_at(n);
        *rest = tail;
        Ok(head)
    }
    let mut out = Vec::new();
    let mut rest = payload;
    while !rest.is_empty() {
        let cf = cf_of(take(&mut rest, 1)?[0])?;
        let key_len = u32::from_be_bytes(take(&mut rest, 4)?.try_into().expect("4")) as usize;
        let key = take(&mut rest, key_len)?;
        let value_len = u32::from_be_bytes(take(&mut rest, 4)?.try_into().expect("4")) as usize;
        let value = take(&mut rest, value_len)?;
        out.push((cf, key, value));
    }
    Ok(out)
}

/// Writes a snapshot of `backend` as of one RocksDB snapshot into `dir`; returns what
/// it holds and where it is.
pub(crate) fn write(backend: &Backend, dir: &Path) -> Result<(SnapshotMeta, PathBuf)> {
    std::fs::create_dir_all(dir)?;
    let db = backend.db();
    let snapshot = db.snapshot();
    let applied = snapshot
        .get_cf(backend.cf(Cf::Meta), meta::APPLIED)?
        .ok_or_else(|| Error::Corrupt("snapshot of a store that applied nothing".into()))?;
    let conf_state = match snapshot.get_cf(backend.cf(Cf::RaftState), raft_state::CONF_STATE)? {
        Some(bytes) => ConfState::parse_from_bytes(&bytes)?,
        None => ConfState::default(),
    };
    let meta = SnapshotMeta {
        index: decode_u64(&applied[..8])?,
        term: decode_u64(&applied[8..])?,
        conf_state,
    };
    let path = dir.join(file_name(meta.term, meta.index));
    let partial = path.with_extension("snap.tmp");
    let file = File::create(&partial)?;
    let mut writer = ChunkWriter {
        out: BufWriter::new(file),
        all: crc32fast::Hasher::new(),
    };
    writer.chunk(&encode_header(&meta)?)?;
    let mut payload = Vec::with_capacity(SNAPSHOT_CHUNK_BYTES + 1024);
    for cf in DATA_CFS {
        let mut iter = snapshot.raw_iterator_cf_opt(backend.cf(cf), backend.read_options());
        iter.seek_to_first();
        while let (Some(key), Some(value)) = (iter.key(), iter.value()) {
            push_record(&mut payload, cf, key, value);
            if payload.len() >= SNAPSHOT_CHUNK_BYTES {
                writer.chunk(&payload)?;
                payload.clear();
            }
            iter.next();
        }
        iter.status()?;
    }
    for key in META_KEYS {
        if let Some(value) = snapshot.get_cf(backend.cf(Cf::Meta), key)? {
            push_record(&mut payload, Cf::Meta, key, &value);
        }
    }
    if !payload.is_empty() {
        writer.chunk(&payload)?;
    }
    let out = writer.finish()?;
    let file = out
        .into_inner()
        .map_err(|e| Error::Corrupt(e.to_string()))?;
    file.sync_all()?;
    std::fs::rename(&partial, &path)?;
    File::open(dir)?.sync_all()?;
    Ok((meta, path))
}

/// Reads a snapshot file through, checking every chunk; returns its header.
pub fn verify(path: &Path) -> Result<SnapshotMeta> {
    let mut reader = ChunkReader::new(BufReader::new(File::open(path)?));
    let header = reader
        .next()?
        .ok_or_else(|| Error::Corrupt("empty snapshot file".into()))?;
    let meta = decode_header(&header)?;
    while let Some(payload) = reader.next()? {
        records(&payload)?;
    }
    Ok(meta)
}

/// Replaces the store's replicated state and the raft log position with the snapshot.
/// The caller holds off readers and reloads in-memory state afterwards.
pub(crate) fn install(backend: &Backend, path: &Path) -> Result<SnapshotMeta> {
    let meta = verify(path)?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::Corrupt(format!("bad snapshot path {path:?}")))?;
    let mut marker = WriteBatch::default();
    marker.put_cf(backend.cf(Cf::Meta), INSTALLING, name.as_bytes());
    backend.write(marker, true)?;
    crash::point("snapshot-install-marked");

    let mut clear = WriteBatch::default();
    for cf in DATA_CFS.into_iter().chain([Cf::RaftLog]) {
        clear_cf(backend, cf, &mut clear)?;
    }
    for key in META_KEYS {
        clear.delete_cf(backend.cf(Cf::Meta), key);
    }
    backend.write(clear, false)?;
    crash::point("snapshot-install-cleared");

    let mut reader = ChunkReader::new(BufReader::new(File::open(path)?));
    reader.next()?; // header, verified above
    let mut batch = WriteBatch::default();
    let mut staged = 0;
    while let Some(payload) = reader.next()? {
        for (cf, key, value) in records(&payload)? {
            batch.put_cf(backend.cf(cf), key, value);
            staged += 1;
            if staged == INSTALL_RECORDS_PER_BATCH {
                backend.write(std::mem::take(&mut batch), false)?;
                staged = 0;
                crash::point("snapshot-install-staged");
            }
        }
    }
    let mut applied = encode_u64(meta.index).to_vec();
    applied.extend_from_slice(&encode_u64(meta.term));
    batch.put_cf(backend.cf(Cf::Meta), meta::APPLIED, applied.clone());
    batch.put_cf(backend.cf(Cf::RaftState), raft_state::TRUNCATED, applied);
    batch.put_cf(
        backend.cf(Cf::RaftState),
        raft_state::CONF_STATE,
        meta.conf_state.write_to_bytes()?,
    );
    // Everything up to the snapshot is committed. Raft persists its own hard state only
    // after the install: a crash in between would leave a commit index behind the log's
    // start, which raft-rs refuses at every start ("commit is out of range").
    let mut hard_state = match backend.get(Cf::RaftState, raft_state::HARD_STATE)? {
        Some(bytes) => HardState::parse_from_bytes(&bytes)?,
        None => HardState::default(),
    };
    if hard_state.commit < meta.index {
        hard_state.commit = meta.index;
        batch.put_cf(
            backend.cf(Cf::RaftState),
            raft_state::HARD_STATE,
            hard_state.write_to_bytes()?,
        );
    }
    batch.delete_cf(backend.cf(Cf::Meta), INSTALLING);
    backend.write(batch, true)?;
    crash::point("snapshot-install-written");
    Ok(meta)
}

/// Stages the deletion of everything in `cf`: one range tombstone up to just past the
/// last key (keys have no upper bound, so the bound is found, not assumed).
fn clear_cf(backend: &Backend, cf: Cf, batch: &mut WriteBatch) -> Result<()> {
    let mut iter = backend
        .db()
        .raw_iterator_cf_opt(backend.cf(cf), backend.read_options());
    iter.seek_to_last();
    if let Some(last) = iter.key() {
        let mut end = last.to_vec();
        end.push(0);
        batch.delete_range_cf(backend.cf(cf), &[][..], &end[..]);
    }
    iter.status()?;
    Ok(())
}

/// What a snapshot file being received is called until it is whole and verified.
pub const PARTIAL_SUFFIX: &str = ".part";

/// Deletes the partial files a receive left behind (a crash mid-transfer).
pub fn remove_partial(dir: &Path) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err.into()),
    };
    for entry in entries {
        let path = entry?.path();
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(PARTIAL_SUFFIX))
        {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// Deletes all but the newest `keep` snapshot files in `dir`.
pub fn prune(dir: &Path, keep: usize) -> Result<()> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "snap"))
            .collect(),
        Err(_) => return Ok(()),
    };
    // Names sort by (term, index), both fixed-width hex.
    files.sort();
    let excess = files.len().saturating_sub(keep);
    for old in &files[..excess] {
        std::fs::remove_file(old)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_round_trip_and_corruption_is_caught() {
        let mut out = Vec::new();
        let mut writer = ChunkWriter {
            out: &mut out,
            all: crc32fast::Hasher::new(),
        };
        writer.chunk(b"first").unwrap();
        writer.chunk(b"second").unwrap();
        writer.finish().unwrap();
        let mut reader = ChunkReader::new(&out[..]);
        assert_eq!(reader.next().unwrap().unwrap(), b"first");
        assert_eq!(reader.next().unwrap().unwrap(), b"second");
        assert!(reader.next().unwrap().is_none());

        for at in [9, 20, out.len() - 1] {
            let mut bad = out.clone();
            bad[at] ^= 0x40;
            let mut reader = ChunkReader::new(&bad[..]);
            let result = (|| {
                while reader.next()?.is_some() {}
                Ok::<_, Error>(())
            })();
            assert!(result.is_err(), "flipping byte {at} must be detected");
        }
    }

    #[test]
    fn records_round_trip() {
        let mut payload = Vec::new();
        push_record(&mut payload, Cf::Kv, b"key", b"value");
        push_record(&mut payload, Cf::Meta, b"", b"");
        let parsed = records(&payload).unwrap();
        assert_eq!(
            parsed,
            vec![
                (Cf::Kv, &b"key"[..], &b"value"[..]),
                (Cf::Meta, &b""[..], &b""[..])
            ]
        );
        assert!(records(&payload[..payload.len() - 1]).is_err());
    }
}
