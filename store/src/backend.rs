//! The one RocksDB instance of a node and its column families.
//!
//! One DB (not one per concern) so that a WriteBatch is atomic across column families:
//! the applied index commits with the state it describes, and raft entries with the hard
//! state. It also means one WAL: a synced write makes every earlier unsynced write durable.

use std::path::Path;

use rocksdb::{
    BlockBasedIndexType, BlockBasedOptions, BottommostLevelCompaction, Cache, ColumnFamily,
    ColumnFamilyDescriptor, CompactOptions, Options, ReadOptions, SliceTransform, WriteBatch,
    WriteOptions, DB,
};

use crate::error::{Error, Result};
use crate::keys;
use crate::record::{decode_u64, encode_u64};

/// RocksDB block cache shared by all column families. Reads of hot keys hit it; memory
/// stays bounded by it instead of growing with the number of keys.
pub const BLOCK_CACHE_BYTES: usize = 128 << 20;
/// Total memtable memory across column families before RocksDB flushes.
pub const WRITE_BUFFER_TOTAL_BYTES: usize = 256 << 20;
/// WAL bytes before RocksDB flushes the column families the oldest WAL file holds. The
/// WAL is replayed on every open, so this bounds restart time after a crash, whatever
/// the number of keys.
pub const WAL_TOTAL_BYTES_MAX: u64 = 64 << 20;
/// Bloom filter bits per key prefix in `kv` files: about 1% false positives, so a
/// lookup of one key reads almost only the files that hold it.
const KV_BLOOM_BITS_PER_KEY: f64 = 10.0;
/// Share of the `kv` memtable given to its prefix bloom filter.
const KV_MEMTABLE_BLOOM_RATIO: f64 = 0.1;
/// Size of one partition of a file's index or filter: the unit read into the block cache.
const METADATA_BLOCK_BYTES: usize = 4096;
/// Info LOG files RocksDB keeps in the data directory.
const LOG_FILES_KEPT: usize = 4;

/// The on-disk format version, stored in `meta`; a store written by another version
/// is refused rather than misread.
pub const SCHEMA_VERSION: u64 = 1;

/// Column families; see design §4 for what each holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cf {
    /// Raft entries by index.
    RaftLog,
    /// Raft hard state, conf state, truncation point.
    RaftState,
    /// Every version of every key (see `keys`).
    Kv,
    /// The history: (main, sub) revision -> changed key.
    Rev,
    /// Leases by id.
    Lease,
    /// lease id ++ key -> (): which keys a lease holds.
    LeaseKeys,
    /// Users and roles (later).
    Auth,
    /// Applied index, revisions, membership, schema version.
    Meta,
}

impl Cf {
    pub const ALL: [Cf; 8] = [
        Cf::RaftLog,
        Cf::RaftState,
        Cf::Kv,
        Cf::Rev,
        Cf::Lease,
        Cf::LeaseKeys,
        Cf::Auth,
        Cf::Meta,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Cf::RaftLog => "raft_log",
            Cf::RaftState => "raft_state",
            Cf::Kv => "kv",
            Cf::Rev => "rev",
            Cf::Lease => "lease",
            Cf::LeaseKeys => "lease_keys",
            Cf::Auth => "auth",
            Cf::Meta => "meta",
        }
    }
}

/// Keys of the `meta` column family.
pub mod meta {
    pub const SCHEMA_VERSION: &[u8] = b"schema_version";
    /// Index and term (u64 big-endian each) of the last raft entry whose effects are in
    /// this DB.
    pub const APPLIED: &[u8] = b"applied";
    /// The cluster id, fixed when the cluster was founded.
    pub const CLUSTER_ID: &[u8] = b"cluster_id";
    /// The members (an encoded etcd MemberListResponse), changed only by applied entries.
    pub const MEMBERS: &[u8] = b"members";
    /// Ids (u64 big-endian, concatenated) of members removed from the cluster: their
    /// messages are refused so they learn they are out.
    pub const REMOVED: &[u8] = b"removed_members";
    /// The store revision: the revision of the last write.
    pub const REVISION: &[u8] = b"revision";
    /// Reads below this revision fail; set when a compaction is applied.
    pub const COMPACTED: &[u8] = b"compacted";
    /// History below this revision has been physically removed.
    pub const COMPACT_FINISHED: &[u8] = b"compact_finished";
    /// Present once the history (`rev`) indexes every stored version, the survivors of
    /// a physical compaction included (stores written before that was so lack it).
    pub const HISTORY_COMPLETE: &[u8] = b"history_complete";
    /// How many keys exist (u64 big-endian), kept with every write that creates or
    /// deletes one, so counting them never scans.
    pub const KEYS: &[u8] = b"keys";
    /// The active alarms (an encoded etcd AlarmResponse), changed only by applied entries.
    pub const ALARMS: &[u8] = b"alarms";
}

/// Keys of the `raft_state` column family.
pub mod raft_state {
    /// raft-rs HardState (term, vote, commit).
    pub const HARD_STATE: &[u8] = b"hard_state";
    /// raft-rs ConfState, written with the applied index it belongs to.
    pub const CONF_STATE: &[u8] = b"conf_state";
    /// Index and term of the last entry removed by log truncation.
    pub const TRUNCATED: &[u8] = b"truncated";
}

/// The RocksDB instance with its column families.
pub struct Backend {
    db: DB,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("path", &self.db.path())
            .finish()
    }
}

/// File format options every column family shares: one block cache, which also holds
/// index and filter blocks, so memory stays bounded by it.
///
/// Index and filter blocks are partitioned (`METADATA_BLOCK_BYTES` each, under a small
/// top-level index pinned in the cache). Whole, a file's index grows with the file: a
/// 17 MiB `kv` file after compaction had a 2.4 MB index, more than one shard of the
/// block cache holds (128 MiB in 64 shards), so it was never kept, and every iterator
/// on that file read and decompressed all of it again: txn-update on 3 members fell from
/// 7,000 to under 500 txns a second once such a file existed.
fn table_options(cache: &Cache) -> BlockBasedOptions {
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(cache);
    table.set_cache_index_and_filter_blocks(true);
    table.set_index_type(BlockBasedIndexType::TwoLevelIndexSearch);
    table.set_partition_filters(true);
    table.set_metadata_block_size(METADATA_BLOCK_BYTES);
    table.set_pin_top_level_index_and_filter(true);
    table
}

impl Backend {
    /// Opens (or creates) the DB under `path` and checks its schema version.
    pub fn open(path: &Path) -> Result<Backend> {
        let cache = Cache::new_lru_cache(BLOCK_CACHE_BYTES)?;
        let table = table_options(&cache);

        let mut cf_opts = Options::default();
        cf_opts.set_block_based_table_factory(&table);

        let mut db_opts = cf_opts.clone();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.set_db_write_buffer_size(WRITE_BUFFER_TOTAL_BYTES);
        db_opts.set_keep_log_file_num(LOG_FILES_KEPT);
        db_opts.set_max_total_wal_size(WAL_TOTAL_BYTES_MAX);
        db_opts.increase_parallelism(2);
        // One writer (the raft driver) does nearly all writes, so concurrent memtable
        // inserts buy nothing, and they cost: each insert searches the skip list from the
        // top, where a serial insert starts from the previous one's position (raft log
        // indexes and revisions are sequential). `cargo bench --bench store`: raft log
        // append 8.9 to 6.0 us, apply put 20.8 to 15.0 us.
        db_opts.set_allow_concurrent_memtable_write(false);

        // `kv` lookups of one key (every put reads the key's latest version) use prefix
        // bloom filters; scans must then ask for total order (see `read_options`).
        let mut kv_table = table_options(&cache);
        kv_table.set_bloom_filter(KV_BLOOM_BITS_PER_KEY, false);
        kv_table.set_whole_key_filtering(false);
        let mut kv_opts = cf_opts.clone();
        kv_opts.set_block_based_table_factory(&kv_table);
        kv_opts.set_prefix_extractor(SliceTransform::create(
            "ballast.version_key_prefix",
            keys::version_key_prefix,
            Some(keys::is_version_key),
        ));
        kv_opts.set_memtable_prefix_bloom_ratio(KV_MEMTABLE_BLOOM_RATIO);

        let cfs = Cf::ALL.iter().map(|&cf| {
            let opts = if cf == Cf::Kv { &kv_opts } else { &cf_opts };
            ColumnFamilyDescriptor::new(cf.name(), opts.clone())
        });
        let db = DB::open_cf_descriptors(&db_opts, path, cfs)?;
        let backend = Backend { db };
        backend.check_schema()?;
        Ok(backend)
    }

    fn check_schema(&self) -> Result<()> {
        match self.get_u64(Cf::Meta, meta::SCHEMA_VERSION)? {
            Some(SCHEMA_VERSION) => Ok(()),
            Some(other) => Err(Error::Corrupt(format!(
                "data written by schema version {other}, this build reads {SCHEMA_VERSION}"
            ))),
            None => {
                let mut batch = WriteBatch::default();
                batch.put_cf(
                    self.cf(Cf::Meta),
                    meta::SCHEMA_VERSION,
                    encode_u64(SCHEMA_VERSION),
                );
                self.write(batch, true)
            }
        }
    }

    pub fn db(&self) -> &DB {
        &self.db
    }

    /// Options for reads that may cross key prefixes: total order, so the `kv` prefix
    /// extractor never narrows them. Only single-key lookups may skip this.
    pub fn read_options(&self) -> ReadOptions {
        let mut opts = ReadOptions::default();
        opts.set_total_order_seek(true);
        opts
    }

    pub fn cf(&self, cf: Cf) -> &ColumnFamily {
        self.db
            .cf_handle(cf.name())
            .expect("every column family is created at open")
    }

    /// Writes a batch; `sync` makes it (and every earlier write) durable before returning.
    pub fn write(&self, batch: WriteBatch, sync: bool) -> Result<()> {
        let mut opts = WriteOptions::default();
        opts.set_sync(sync);
        self.db.write_opt(batch, &opts)?;
        Ok(())
    }

    pub fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get_cf(self.cf(cf), key)?)
    }

    pub fn get_u64(&self, cf: Cf, key: &[u8]) -> Result<Option<u64>> {
        self.get(cf, key)?.map(|v| decode_u64(&v)).transpose()
    }

    /// An integer property of one column family (0 if RocksDB does not report it).
    fn cf_property(&self, cf: Cf, name: &str) -> u64 {
        self.db
            .property_int_value_cf(self.cf(cf), name)
            .ok()
            .flatten()
            .unwrap_or(0)
    }

    /// A property RocksDB reports for the whole DB (0 if it reports none).
    pub fn db_property(&self, name: &str) -> u64 {
        self.db.property_int_value(name).ok().flatten().unwrap_or(0)
    }

    /// A per-column-family property, summed over the column families.
    pub fn cf_property_total(&self, name: &str) -> u64 {
        Cf::ALL.iter().map(|&cf| self.cf_property(cf, name)).sum()
    }

    /// Bytes of SST files plus memtables: what the DB occupies.
    pub fn size_bytes(&self) -> u64 {
        Cf::ALL
            .iter()
            .map(|&cf| {
                self.cf_property(cf, "rocksdb.total-sst-files-size")
                    + self.cf_property(cf, "rocksdb.cur-size-all-mem-tables")
            })
            .sum()
    }

    /// The replicated state's bytes in use (what etcd's space quota measures): RocksDB's
    /// estimate of live data in files plus the memtables, of every column family but
    /// the raft log's (etcd's WAL is outside its quota too). Memtables count at their
    /// allocated size (whole arena blocks and the prefix bloom), so this runs a few MB
    /// ahead of the data in them until they are flushed.
    pub fn live_bytes(&self) -> u64 {
        Cf::ALL
            .iter()
            .filter(|&&cf| !matches!(cf, Cf::RaftLog | Cf::RaftState))
            .map(|&cf| {
                self.cf_property(cf, "rocksdb.estimate-live-data-size")
                    + self.cf_property(cf, "rocksdb.cur-size-all-mem-tables")
            })
            .sum()
    }

    /// Deletes the files of `cf` whose keys all lie in `first..=last`, at once and
    /// without compaction. Only for ranges already deleted: it bypasses snapshots.
    pub fn drop_files(&self, cf: Cf, first: &[u8], last: &[u8]) -> Result<()> {
        Ok(self.db.delete_file_in_range_cf(self.cf(cf), first, last)?)
    }

    /// Flushes every memtable to disk, so the next open has no WAL to replay.
    pub fn flush(&self) -> Result<()> {
        for cf in Cf::ALL {
            self.db.flush_cf(self.cf(cf))?;
        }
        Ok(())
    }

    /// Compacts every column family fully: drops deleted data and rewrites the files.
    /// etcd's Defragment, without etcd's pause: reads and writes go on (RocksDB writes
    /// new files beside the old ones), and the background compactions keep running
    /// beside it (not exclusive), so the files new writes flush meanwhile never pile up
    /// into a write stall.
    pub fn compact_all(&self) {
        let mut opts = CompactOptions::default();
        opts.set_exclusive_manual_compaction(false);
        opts.set_bottommost_level_compaction(BottommostLevelCompaction::Force);
        for cf in Cf::ALL {
            self.db
                .compact_range_cf_opt(self.cf(cf), None::<&[u8]>, None::<&[u8]>, &opts);
        }
    }
}

/// Turns RocksDB's perf counters off for the calling thread; every thread that reads or
/// writes the DB calls it first. RocksDB counts into a thread-local context at every key
/// comparison by default, which nothing here reads, and in a shared librocksdb each
/// count is a call to reach the thread-local (2.5% of the apply benchmark's samples).
pub fn perf_counters_off() {
    rocksdb::perf::set_perf_stats(rocksdb::perf::PerfStatsLevel::Disable);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Index partitions of the `kv` files, from RocksDB's table properties.
    fn kv_index_partitions(backend: &Backend) -> u64 {
        let properties = backend
            .db()
            .property_value_cf(backend.cf(Cf::Kv), "rocksdb.aggregated-table-properties")
            .unwrap()
            .unwrap();
        properties
            .split(';')
            .find_map(|field| field.trim().strip_prefix("# index partitions="))
            .unwrap_or_else(|| panic!("no index partitions in {properties}"))
            .trim()
            .parse()
            .unwrap()
    }

    /// A file's index is cached in small partitions, never whole: a whole index outgrows
    /// a block cache shard as files grow and is then read again for every iterator.
    #[test]
    fn kv_files_have_partitioned_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let backend = Backend::open(dir.path()).unwrap();
        let mut batch = WriteBatch::default();
        for i in 0..20_000u32 {
            let key = keys::version_key(format!("/registry/pods/{i:08}").as_bytes(), 1);
            batch.put_cf(backend.cf(Cf::Kv), key, [0x5a; 256]);
        }
        backend.write(batch, false).unwrap();
        backend.flush().unwrap();
        // ~1,300 data blocks: one index partition of METADATA_BLOCK_BYTES holds far fewer.
        assert!(kv_index_partitions(&backend) > 1);
    }
}
