//! Criterion benchmarks of the store's hot paths: key encoding, applying puts, and
//! ranges over a populated store.

use std::hint::black_box;

use ballast_proto::ballast::internal::{raft_request::Request, RaftRequest};
use ballast_proto::etcdserverpb::{PutRequest, RangeRequest};
use ballast_store::keys::{split_version_key, version_key};
use ballast_store::Store;
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};

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

fn put(i: u64) -> RaftRequest {
    RaftRequest {
        id: i,
        request: Some(Request::Put(PutRequest {
            key: Bytes::from(format!("/registry/bench/{:08}", i % 10_000)),
            value: Bytes::from(vec![b'v'; 256]),
            ..Default::default()
        })),
    }
}

fn apply_and_range(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    let mut index = 0u64;
    c.bench_function("apply put (256 B value)", |b| {
        b.iter(|| {
            index += 1;
            store.apply(index, 1, &put(index)).unwrap()
        })
    });
    while index < 20_000 {
        index += 1;
        store.apply(index, 1, &put(index)).unwrap();
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
    store.close();
}

criterion_group!(benches, key_encoding, apply_and_range);
criterion_main!(benches);
