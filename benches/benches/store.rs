//! Criterion benchmarks of the hot paths: key encoding, applying puts, ranges over a
//! populated store, txn compares, watch fan-out to many watchers, and raft log appends.
//!
//! `cargo bench -p ballast-benches`

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ballast_proto::ballast::internal::{raft_request::Request, RaftRequest};
use ballast_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use ballast_proto::etcdserverpb::request_op::Request as Op;
use ballast_proto::etcdserverpb::{Compare, PutRequest, RangeRequest, RequestOp, TxnRequest};
use ballast_store::keys::{split_version_key, version_key};
use ballast_store::watch::{Filter, SinkError, WatchMessage, WatchSink};
use ballast_store::{KeyRange, LogStore, Store};
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use raft::eraftpb::{Entry, HardState};

fn key_encoding(c: &mut Criterion) {
    let key = b"/registry/pods/default/nginx-7c5ddbdf54-abcde";
    c.bench_function("encode version key", |b| {
        b.iter(|| version_key(black_box(key), black_box(123_456)))
    });
    let encoded = version_key(key, 123_456);
    c.bench_function("split version key", |b| {
        b.iter(|| split_version_key(black_box(&encoded)))
    });
}

fn put(i: u64, keys: u64) -> RaftRequest {
    RaftRequest {
        id: i,
        request: Some(Request::Put(PutRequest {
            key: Bytes::from(format!("/registry/bench/{:08}", i % keys)),
            value: Bytes::from(vec![b'v'; 256]),
            ..Default::default()
        })),
        auth_revision: 0,
    }
}

fn open() -> (tempfile::TempDir, Arc<Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    (dir, store)
}

fn apply_and_range(c: &mut Criterion) {
    let (_dir, store) = open();
    let mut index = 0u64;
    c.bench_function("apply put (256 B value)", |b| {
        b.iter(|| {
            index += 1;
            store.apply(index, 1, &put(index, 10_000)).unwrap()
        })
    });
    while index < 20_000 {
        index += 1;
        store.apply(index, 1, &put(index, 10_000)).unwrap();
    }
    let single = RangeRequest {
        key: Bytes::from("/registry/bench/00004242"),
        ..Default::default()
    };
    c.bench_function("range one key", |b| {
        b.iter(|| store.range(black_box(&single)).unwrap())
    });
    let page = RangeRequest {
        key: Bytes::from("/registry/bench/"),
        range_end: Bytes::from("/registry/bench0"),
        limit: 500,
        ..Default::default()
    };
    c.bench_function("range 500 of 10k keys (with count)", |b| {
        b.iter(|| store.range(black_box(&page)).unwrap())
    });

    // kube-apiserver's update: compare the mod revision, then put.
    let update = |i: u64| {
        let key = Bytes::from(format!("/registry/bench/{:08}", i % 10_000));
        let current = store
            .range(&RangeRequest {
                key: key.clone(),
                ..Default::default()
            })
            .unwrap()
            .kvs[0]
            .mod_revision;
        RaftRequest {
            id: i,
            request: Some(Request::Txn(TxnRequest {
                compare: vec![Compare {
                    result: CompareResult::Equal as i32,
                    target: CompareTarget::Mod as i32,
                    key: key.clone(),
                    target_union: Some(TargetUnion::ModRevision(current)),
                    range_end: Bytes::new(),
                }],
                success: vec![RequestOp {
                    request: Some(Op::RequestPut(PutRequest {
                        key,
                        value: Bytes::from(vec![b'u'; 256]),
                        ..Default::default()
                    })),
                }],
                failure: vec![],
            })),
            auth_revision: 0,
        }
    };
    c.bench_function("apply txn compare-and-swap", |b| {
        b.iter_batched(
            || {
                index += 1;
                (index, update(index))
            },
            |(i, request)| store.apply(i, 1, &request).unwrap(),
            BatchSize::SmallInput,
        )
    });
    store.close();
}

/// Puts and reads when the keys' versions sit in several SST files, as on a node that
/// has run for a while: the cost is in finding the newest version among the files.
fn on_disk(c: &mut Criterion) {
    const KEYS: u64 = 100_000;
    // Below RocksDB's L0 compaction trigger (4), so the shape holds while measuring.
    const FILES: u64 = 3;
    let (_dir, store) = open();
    let mut index = 0u64;
    for _ in 0..FILES {
        for _ in 0..KEYS / 2 {
            index += 1;
            store.apply(index, 1, &put(index * 7919, KEYS)).unwrap();
        }
        store.backend().flush().unwrap();
    }
    c.bench_function("apply put, 100k keys in 3 files", |b| {
        b.iter(|| {
            index += 1;
            store.apply(index, 1, &put(index * 7919, KEYS)).unwrap()
        })
    });
    let mut n = 0u64;
    c.bench_function("range one key, 100k keys in 3 files", |b| {
        b.iter(|| {
            n += 1;
            let key = Bytes::from(format!("/registry/bench/{:08}", n * 7919 % KEYS));
            store.range(&RangeRequest {
                key,
                ..Default::default()
            })
        })
    });
    store.close();
}

/// The raft thread's apply: a batch of puts to random existing keys staged one by one,
/// then written in one WriteBatch. Every key is in the key cache, as in a steady state.
fn apply_batch(c: &mut Criterion) {
    const KEYS: u64 = 100_000;
    const BATCH: u64 = 32;
    let (_dir, store) = open();
    let mut index = 0u64;
    let mut apply_batch = |store: &Store| {
        let mut batch = store.apply_batch();
        for _ in 0..BATCH {
            index += 1;
            batch.apply(index, 1, &put(index * 7919, KEYS)).unwrap();
        }
        batch.write().unwrap();
    };
    for _ in 0..KEYS / BATCH {
        apply_batch(&store);
    }
    let mut group = c.benchmark_group("apply batch");
    group.throughput(Throughput::Elements(BATCH));
    group.bench_function("32 puts, 100k keys", |b| b.iter(|| apply_batch(&store)));
    group.finish();
    store.close();
}

struct Counting(AtomicU64);

impl WatchSink for Counting {
    fn try_send(&self, _message: WatchMessage) -> Result<(), SinkError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

fn watch_fan_out(c: &mut Criterion) {
    let (_dir, store) = open();
    let hub = store.watch_hub();
    let sink = Arc::new(Counting(AtomicU64::new(0)));
    let stream = hub.open_stream(sink.clone());
    for w in 0..1000 {
        let filter = Filter {
            range: KeyRange::new(
                Bytes::from("/registry/bench/"),
                Bytes::from("/registry/bench0"),
            ),
            no_put: false,
            no_delete: false,
            prev_kv: w % 2 == 0,
        };
        let (id, _) = hub.watch(stream, w, filter, 0);
        store.watch_activate(id);
    }
    let mut index = 0u64;
    c.bench_function("apply put with 1000 watchers", |b| {
        b.iter(|| {
            index += 1;
            store.apply(index, 1, &put(index, 1000)).unwrap()
        })
    });
    assert!(
        index == 0 || sink.0.load(Ordering::Relaxed) > 0,
        "the watchers received events"
    );
    store.close();
}

/// 100,000 watchers, each on its own key, as controllers watching single objects: each
/// put concerns one of them, and publishing must not visit the others.
fn watch_many_one_key_watchers(c: &mut Criterion) {
    const WATCHERS: u64 = 100_000;
    let (_dir, store) = open();
    let hub = store.watch_hub();
    let sink = Arc::new(Counting(AtomicU64::new(0)));
    let stream = hub.open_stream(sink.clone());
    for w in 0..WATCHERS {
        let key = format!("/registry/bench/{w:08}");
        let filter = Filter {
            range: KeyRange::new(Bytes::from(key), Bytes::new()),
            no_put: false,
            no_delete: false,
            prev_kv: false,
        };
        let (id, _) = hub.watch(stream, w as i64, filter, 0);
        store.watch_activate(id);
    }
    let mut index = 0u64;
    c.bench_function("apply put with 100k one-key watchers", |b| {
        b.iter(|| {
            index += 1;
            store.apply(index, 1, &put(index, WATCHERS)).unwrap()
        })
    });
    assert!(
        index == 0 || sink.0.load(Ordering::Relaxed) > 0,
        "the watchers received events"
    );
    store.close();
}

fn raft_log_append(c: &mut Criterion) {
    let (_dir, store) = open();
    let log = LogStore::open(store.clone()).unwrap();
    log.bootstrap(vec![1]).unwrap();
    let mut index = 0u64;
    let data = put(1, 1).request.map(|_| vec![0u8; 300]).unwrap();
    let mut append = |sync: bool, batch: u64| {
        let entries: Vec<Entry> = (0..batch)
            .map(|_| {
                index += 1;
                Entry {
                    index,
                    term: 1,
                    data: data.clone().into(),
                    ..Default::default()
                }
            })
            .collect();
        let hs = HardState {
            term: 1,
            commit: index,
            ..Default::default()
        };
        log.persist(&entries, Some(&hs), sync).unwrap();
    };
    c.bench_function("raft log append, 1 entry, no sync", |b| {
        b.iter(|| append(false, 1))
    });
    c.bench_function("raft log append, 64 entries, synced (one fsync)", |b| {
        b.iter(|| append(true, 64))
    });
    store.close();
}

criterion_group!(
    benches,
    key_encoding,
    apply_and_range,
    on_disk,
    apply_batch,
    watch_fan_out,
    watch_many_one_key_watchers,
    raft_log_append
);
criterion_main!(benches);
