//! KV over gRPC against a real node, with ballast-client.

use ballast_client::{
    Code, Compare, CompareOp, DeleteOptions, Error, GetOptions, PutOptions, SortOrder, SortTarget,
    Txn, TxnOp, TxnOpResponse,
};
use ballast_tests::Node;

fn expect_status<T: std::fmt::Debug>(result: Result<T, Error>, code: Code, message: &str) {
    match result {
        Err(err) => {
            assert_eq!(err.code(), Some(code), "{err}");
            assert_eq!(err.message(), Some(message), "{err}");
        }
        Ok(value) => panic!("expected {code:?} {message:?}, got {value:?}"),
    }
}

#[tokio::test]
async fn put_get_delete_with_options() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("n"));
    let c = node.client().await;

    let put = c.put("a", "1", PutOptions::new()).await.unwrap();
    assert_eq!(
        put.header.revision, 2,
        "first write of an empty store gets revision 2"
    );
    assert_ne!(put.header.cluster_id, 0);
    assert_ne!(put.header.member_id, 0);
    let put = c
        .put("a", "2", PutOptions::new().with_prev_kv())
        .await
        .unwrap();
    assert_eq!(put.prev_kv.unwrap().value_str().unwrap(), "1");
    for k in ["b", "c", "d"] {
        c.put(k, k, PutOptions::new()).await.unwrap();
    }

    let got = c.get("a", GetOptions::new()).await.unwrap();
    let kv = &got.kvs[0];
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (2, 3, 2));
    assert_eq!(got.header.revision, 6);

    let page = c
        .get("", GetOptions::new().with_all_keys().with_limit(2))
        .await
        .unwrap();
    assert_eq!(page.kvs.len(), 2);
    assert!(page.more);
    assert_eq!(page.count, 4);

    let desc = c
        .get(
            "",
            GetOptions::new()
                .with_all_keys()
                .with_sort(SortTarget::Key, SortOrder::Descend),
        )
        .await
        .unwrap();
    assert_eq!(desc.kvs[0].key_str().unwrap(), "d");

    let old = c
        .get("a", GetOptions::new().with_revision(2))
        .await
        .unwrap();
    assert_eq!(old.kvs[0].value_str().unwrap(), "1");

    let count = c
        .get("b", GetOptions::new().with_from_key().with_count_only())
        .await
        .unwrap();
    assert_eq!((count.count, count.kvs.len()), (3, 0));
    let keys = c
        .get("b", GetOptions::new().with_range("d").with_keys_only())
        .await
        .unwrap();
    assert_eq!(keys.kvs.len(), 2);
    assert!(keys.kvs[0].value.is_empty());
    let serial = c
        .get("a", GetOptions::new().with_serializable())
        .await
        .unwrap();
    assert_eq!(serial.kvs.len(), 1);
    let filtered = c
        .get(
            "",
            GetOptions::new().with_all_keys().with_min_mod_revision(5),
        )
        .await
        .unwrap();
    assert_eq!(filtered.kvs.len(), 2);
    assert_eq!(filtered.count, 4);

    let del = c
        .delete("b", DeleteOptions::new().with_range("d").with_prev_kv())
        .await
        .unwrap();
    assert_eq!(del.deleted, 2);
    assert_eq!(del.prev_kvs.len(), 2);
    let nothing = c.delete("zz", DeleteOptions::new()).await.unwrap();
    assert_eq!(nothing.deleted, 0);
    assert_eq!(
        nothing.header.revision, del.header.revision,
        "deleting nothing keeps the revision"
    );
}

#[tokio::test]
async fn txn_compare_and_swap_and_nested() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("n"));
    let c = node.client().await;
    let created = c
        .txn(
            Txn::new()
                .when([Compare::mod_revision("obj", CompareOp::Equal, 0)])
                .and_then([TxnOp::put("obj", "v1", PutOptions::new())]),
        )
        .await
        .unwrap();
    assert!(created.succeeded);
    let rev = created.header.revision;

    // A stale update fails and reads the current value, as kube-apiserver does.
    let stale = c
        .txn(
            Txn::new()
                .when([Compare::mod_revision("obj", CompareOp::Equal, rev - 1)])
                .and_then([TxnOp::put("obj", "v2", PutOptions::new())])
                .or_else([TxnOp::get("obj", GetOptions::new())]),
        )
        .await
        .unwrap();
    assert!(!stale.succeeded);
    assert_eq!(
        stale.header.revision, rev,
        "a failed compare writes nothing"
    );
    let TxnOpResponse::Get(current) = &stale.responses[0] else {
        panic!("{stale:?}")
    };
    assert_eq!(current.kvs[0].value_str().unwrap(), "v1");

    let nested = c
        .txn(
            Txn::new()
                .when([Compare::value("obj", CompareOp::Equal, "v1")])
                .and_then([
                    TxnOp::put("x", "1", PutOptions::new()),
                    TxnOp::put("y", "1", PutOptions::new()),
                    TxnOp::txn(
                        Txn::new()
                            .when([Compare::version("obj", CompareOp::Greater, 0)])
                            .and_then([TxnOp::delete("obj", DeleteOptions::new())]),
                    ),
                    TxnOp::get("x", GetOptions::new().with_range("z")),
                ]),
        )
        .await
        .unwrap();
    assert!(nested.succeeded);
    assert_eq!(
        nested.header.revision,
        rev + 1,
        "one revision for the whole txn"
    );
    let TxnOpResponse::Get(seen) = &nested.responses[3] else {
        panic!()
    };
    assert_eq!(seen.kvs.len(), 2, "reads in a txn see its earlier writes");
    assert!(c
        .get("obj", GetOptions::new())
        .await
        .unwrap()
        .kvs
        .is_empty());
    for kv in &seen.kvs {
        assert_eq!(kv.mod_revision, rev + 1);
    }
}

#[tokio::test]
async fn compaction() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("n"));
    let c = node.client().await;
    for i in 0..5 {
        c.put("k", i.to_string(), PutOptions::new()).await.unwrap();
    }
    c.compact(4, true).await.unwrap();
    expect_status(
        c.get("k", GetOptions::new().with_revision(3)).await,
        Code::OutOfRange,
        "etcdserver: mvcc: required revision has been compacted",
    );
    assert_eq!(
        c.get("k", GetOptions::new().with_revision(4))
            .await
            .unwrap()
            .kvs[0]
            .value_str()
            .unwrap(),
        "2"
    );
    expect_status(
        c.get("k", GetOptions::new().with_revision(100)).await,
        Code::OutOfRange,
        "etcdserver: mvcc: required revision is a future revision",
    );
    expect_status(
        c.compact(4, false).await,
        Code::OutOfRange,
        "etcdserver: mvcc: required revision has been compacted",
    );
    expect_status(
        c.compact(100, false).await,
        Code::OutOfRange,
        "etcdserver: mvcc: required revision is a future revision",
    );
}

#[tokio::test]
async fn bad_input_gets_etcds_errors_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_with(
        &dir.path().join("n"),
        &["--max-request-bytes", "4096", "--max-txn-ops", "8"],
    );
    let c = node.client().await;
    c.put("k", "v", PutOptions::new()).await.unwrap();
    let before = c.get("k", GetOptions::new()).await.unwrap().header.revision;

    expect_status(
        c.put("", "v", PutOptions::new()).await,
        Code::InvalidArgument,
        "etcdserver: key is not provided",
    );
    expect_status(
        c.get("", GetOptions::new()).await,
        Code::InvalidArgument,
        "etcdserver: key is not provided",
    );
    expect_status(
        c.delete("", DeleteOptions::new()).await,
        Code::InvalidArgument,
        "etcdserver: key is not provided",
    );
    expect_status(
        c.put("big", vec![b'x'; 5000], PutOptions::new()).await,
        Code::InvalidArgument,
        "etcdserver: request is too large",
    );
    expect_status(
        c.put("k", "v", PutOptions::new().with_lease(12345)).await,
        Code::NotFound,
        "etcdserver: requested lease not found",
    );
    expect_status(
        c.put("missing", "", PutOptions::new().with_ignore_value())
            .await,
        Code::InvalidArgument,
        "etcdserver: key not found",
    );
    expect_status(
        c.put("k", "v", PutOptions::new().with_ignore_value()).await,
        Code::InvalidArgument,
        "etcdserver: value is provided",
    );
    expect_status(
        c.put("k", "", PutOptions::new().with_ignore_lease().with_lease(1))
            .await,
        Code::InvalidArgument,
        "etcdserver: lease is provided",
    );
    let many =
        Txn::new().and_then((0..9).map(|i| TxnOp::put(format!("t{i}"), "v", PutOptions::new())));
    expect_status(
        c.txn(many).await,
        Code::InvalidArgument,
        "etcdserver: too many operations in txn request",
    );
    let dup = Txn::new().and_then([
        TxnOp::put("d", "1", PutOptions::new()),
        TxnOp::put("d", "2", PutOptions::new()),
    ]);
    expect_status(
        c.txn(dup).await,
        Code::InvalidArgument,
        "etcdserver: duplicate key given in txn request",
    );
    // A txn whose second op fails leaves no trace of the first.
    let half = Txn::new().and_then([
        TxnOp::put("h1", "1", PutOptions::new()),
        TxnOp::put("h2", "2", PutOptions::new().with_lease(999)),
    ]);
    expect_status(
        c.txn(half).await,
        Code::NotFound,
        "etcdserver: requested lease not found",
    );
    assert!(c.get("h1", GetOptions::new()).await.unwrap().kvs.is_empty());

    let after = c.get("k", GetOptions::new()).await.unwrap().header.revision;
    assert_eq!(before, after, "no refused request changed the store");
}

#[tokio::test]
async fn garbage_on_the_wire_is_refused_and_the_node_keeps_serving() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("n"));

    // Raw bytes that are neither HTTP/1 nor HTTP/2.
    let mut socket = tokio::net::TcpStream::connect(node.address())
        .await
        .unwrap();
    socket
        .write_all(b"\x00\x01\x02 this is not a protocol \xff\xfe\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        socket.read_to_end(&mut buf),
    )
    .await
    .expect("the server closes a garbage connection")
    .unwrap();
    assert!(
        buf.starts_with(b"HTTP/1.1 400"),
        "{}",
        String::from_utf8_lossy(&buf)
    );

    // A well-formed gRPC frame whose payload is not a RangeRequest.
    let status = raw_grpc_call(&node.url(), "/etcdserverpb.KV/Range", vec![0xff; 64]).await;
    assert_eq!(status.code(), tonic::Code::Internal, "{status:?}");
    // A method nobody serves is Unimplemented, as gRPC clients expect.
    let status = raw_grpc_call(&node.url(), "/etcdserverpb.KV/NoSuchMethod", Vec::new()).await;
    assert_eq!(status.code(), tonic::Code::Unimplemented, "{status:?}");

    let c = node.client().await;
    c.put("still", "alive", PutOptions::new()).await.unwrap();
    assert_eq!(
        c.get("still", GetOptions::new()).await.unwrap().kvs.len(),
        1
    );
}

/// Sends `payload` as the message of a unary gRPC call, bypassing protobuf encoding.
async fn raw_grpc_call(url: &str, path: &'static str, payload: Vec<u8>) -> tonic::Status {
    use bytes::{Buf, BufMut};
    use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

    #[derive(Default)]
    struct Raw;
    struct RawEncoder;
    struct RawDecoder;
    impl Encoder for RawEncoder {
        type Item = Vec<u8>;
        type Error = tonic::Status;
        fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
            dst.put_slice(&item);
            Ok(())
        }
    }
    impl Decoder for RawDecoder {
        type Item = Vec<u8>;
        type Error = tonic::Status;
        fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
            let bytes = src.copy_to_bytes(src.remaining());
            Ok(Some(bytes.to_vec()))
        }
    }
    impl Codec for Raw {
        type Encode = Vec<u8>;
        type Decode = Vec<u8>;
        type Encoder = RawEncoder;
        type Decoder = RawDecoder;
        fn encoder(&mut self) -> RawEncoder {
            RawEncoder
        }
        fn decoder(&mut self) -> RawDecoder {
            RawDecoder
        }
    }

    let channel = tonic::transport::Endpoint::from_shared(url.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let result = grpc
        .unary(
            tonic::Request::new(payload),
            http::uri::PathAndQuery::from_static(path),
            Raw,
        )
        .await;
    result.expect_err("garbage must be refused")
}
