//! The client port under hostile input: what one connection can make a member hold is
//! bounded, and the member goes on serving everyone else.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use ballast_client::{GetOptions, PutOptions, WatchOptions};
use ballast_proto::etcdserverpb::kv_client::KvClient;
use ballast_proto::etcdserverpb::request_op::Request as TxnOp;
use ballast_proto::etcdserverpb::watch_client::WatchClient;
use ballast_proto::etcdserverpb::watch_request::RequestUnion;
use ballast_proto::etcdserverpb::{
    PutRequest, RequestOp, TxnRequest, WatchCreateRequest, WatchRequest,
};
use ballast_tests::Node;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_HEADERS: u8 = 0x4;
/// Growth of the member's RSS the attacks may cause at most.
const RSS_GROWTH_MAX: u64 = 64 << 20;
/// Growth allowed with ten watch streams that never read: each may hold the stream's
/// byte budget (2 MiB), one message past it, its connection's buffers and what the
/// allocator keeps of its catch-up reads (about 7 MiB in all, measured); unbounded, each
/// would hold the 40 MB it is owed.
const WATCH_RSS_GROWTH_MAX: u64 = 160 << 20;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// An HPACK bomb: one 4000-byte literal added to the dynamic table, then `references`
/// one-byte references to it, each decoding to the whole literal.
fn bomb(references: usize) -> Vec<u8> {
    let mut block = vec![0x83, 0x86]; // :method POST, :scheme http
    block.extend_from_slice(&[0x40, 6]);
    block.extend_from_slice(b"x-bomb");
    block.extend_from_slice(&[0x7f, 0xa1, 0x1e]); // a 4000-byte value
    block.extend(std::iter::repeat_n(b'v', 4000));
    block.extend(std::iter::repeat_n(0xbe, references));
    block
}

/// Sends `block` as the first request of a new connection, in frames of 16 KiB.
fn send_block(port: u16, block: &[u8]) {
    let mut socket = TcpStream::connect(("127.0.0.1", port)).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let mut out = PREFACE.to_vec();
    out.extend(frame(0x4, 0, 0, &[])); // SETTINGS
    let chunks: Vec<&[u8]> = block.chunks(16_384).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let kind = if i == 0 { HEADERS } else { CONTINUATION };
        let flags = if i + 1 == chunks.len() {
            END_HEADERS
        } else {
            0
        };
        out.extend(frame(kind, flags, 1, chunk));
    }
    // The member may close the connection before it has read everything.
    let _ = socket.write_all(&out);
    let mut sink = [0u8; 4096];
    while matches!(socket.read(&mut sink), Ok(n) if n > 0) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hpack_bomb_is_refused_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let client = node.client().await;
    client.put("k", "v", PutOptions::new()).await.unwrap();
    let before = node.rss_bytes();
    let port = node.port;
    // 68 KB and 1 MiB blocks; the larger would decode to about 4 TB.
    for references in [64_000, 1 << 20] {
        let block = bomb(references);
        tokio::task::spawn_blocking(move || send_block(port, &block))
            .await
            .unwrap();
    }
    let grown = node.rss_bytes().saturating_sub(before);
    assert!(grown < RSS_GROWTH_MAX, "RSS grew by {} MiB", grown >> 20);
    let kv = client.get("k", GetOptions::new()).await.unwrap();
    assert_eq!(kv.kvs[0].value, "v".as_bytes());
}

/// A txn of txns of txns, `width` ops at each level, each leaf a put of its own key:
/// within `--max-txn-ops` at every level, `width`^3 puts in all.
fn nested_txn(width: usize) -> TxnRequest {
    let op = |request| RequestOp {
        request: Some(request),
    };
    let level = |ops: Vec<RequestOp>| TxnRequest {
        success: ops,
        ..Default::default()
    };
    let mut key = 0u32;
    let mut outer = Vec::new();
    for _ in 0..width {
        let mut middle = Vec::new();
        for _ in 0..width {
            let leaves = (0..width)
                .map(|_| {
                    key += 1;
                    op(TxnOp::RequestPut(PutRequest {
                        key: format!("n/{key}").into_bytes().into(),
                        ..Default::default()
                    }))
                })
                .collect();
            middle.push(op(TxnOp::RequestTxn(level(leaves))));
        }
        outer.push(op(TxnOp::RequestTxn(level(middle))));
    }
    level(outer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_nested_txn_is_refused_and_others_are_served_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let client = node.client().await;
    client.put("k", "v", PutOptions::new()).await.unwrap();
    // 74,088 puts in 1.1 MB: under the request size limit and --max-txn-ops per level.
    let txn = nested_txn(42);
    let kv = KvClient::connect(node.url()).await.unwrap();
    let attempts: Vec<_> = (0..2)
        .map(|_| {
            let (mut kv, txn) = (kv.clone(), txn.clone());
            tokio::spawn(async move { kv.txn(txn).await })
        })
        .collect();
    for _ in 0..20 {
        let got = client.get("k", GetOptions::new()).await.unwrap();
        assert_eq!(got.kvs[0].value, "v".as_bytes());
    }
    for attempt in attempts {
        let refused = attempt.await.unwrap().unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument);
        assert_eq!(
            refused.message(),
            "etcdserver: too many operations in txn request"
        );
    }
    // Nothing of it was written.
    let written = client
        .get("n/", GetOptions::new().with_prefix().with_count_only())
        .await
        .unwrap();
    assert_eq!(written.count, 0);
}

/// Puts that make a history of `puts` events, each (with prev_kv) about twice `value`.
async fn history(client: &ballast_client::Client, puts: usize, value: usize) {
    let value = vec![b'v'; value];
    for i in 0..puts {
        client
            .put(format!("h/{}", i % 400), &value, PutOptions::new())
            .await
            .unwrap();
    }
}

/// Reads every event of the history from revision 1 with prev_kv; how many.
async fn read_history(client: &ballast_client::Client, events: usize) -> usize {
    let (_watcher, mut stream) = client
        .watch(
            "h/",
            WatchOptions::new()
                .with_prefix()
                .with_start_revision(1)
                .with_prev_kv(),
        )
        .await
        .unwrap();
    let mut seen = 0;
    while seen < events {
        let response = stream.message().await.unwrap().expect("stream open");
        seen += response.events.len();
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_streams_that_never_read_hold_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let client = node.client().await;
    // 4,000 events of ~10 KB with prev_kv: 40 MB a watcher from revision 1 is owed.
    history(&client, 4_000, 5_000).await;
    // Read once first, so the block cache holds the history before the baseline.
    assert_eq!(read_history(&client, 4_000).await, 4_000);
    let before = node.rss_bytes();
    let mut idle = Vec::new();
    for _ in 0..10 {
        let mut watch = WatchClient::connect(node.url()).await.unwrap();
        let create = WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                key: b"h/".to_vec().into(),
                range_end: b"h0".to_vec().into(),
                start_revision: 1,
                prev_kv: true,
                ..Default::default()
            })),
        };
        // The response stream is kept and never read.
        let (keep_open, requests) = tokio::sync::mpsc::channel(1);
        keep_open.send(create).await.unwrap();
        let responses = watch
            .watch(tokio_stream::wrappers::ReceiverStream::new(requests))
            .await
            .unwrap();
        idle.push((keep_open, responses, watch));
    }
    // Let the member push what it can towards them.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let grown = node.rss_bytes().saturating_sub(before);
    assert!(
        grown < WATCH_RSS_GROWTH_MAX,
        "RSS grew by {} MiB",
        grown >> 20
    );
    // Beside them, a watcher that reads still gets every event.
    assert_eq!(read_history(&client, 4_000).await, 4_000);
    drop(idle);
}

/// A gRPC message: the 5-byte prefix, then the encoded request.
fn grpc_message(request: &WatchRequest) -> bytes::Bytes {
    let body = prost::Message::encode_to_vec(request);
    let mut framed = vec![0];
    framed.extend_from_slice(&(body.len() as u32).to_be_bytes());
    framed.extend_from_slice(&body);
    framed.into()
}

fn create(key: &str, watch_id: i64) -> WatchRequest {
    WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: key.as_bytes().to_vec().into(),
            watch_id,
            ..Default::default()
        })),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_creates_back_to_back_each_in_its_own_frame_are_all_answered() {
    use ballast_proto::etcdserverpb::WatchResponse;

    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let tcp = tokio::net::TcpStream::connect(node.address())
        .await
        .unwrap();
    let (mut h2, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let request = http::Request::post(format!(
        "http://{}/etcdserverpb.Watch/Watch",
        node.endpoint()
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .body(())
    .unwrap();
    let (response, mut send) = h2.send_request(request, false).unwrap();
    // 5,000 creates, one small DATA frame each, as fast as flow control lets them go;
    // then one with the "every watcher" id -1.
    const CREATES: usize = 5_000;
    let mut requests: Vec<WatchRequest> =
        (0..CREATES).map(|i| create(&format!("w/{i}"), 0)).collect();
    requests.push(create("w/x", -1));
    let writer = tokio::spawn(async move {
        for request in requests {
            let message = grpc_message(&request);
            send.reserve_capacity(message.len());
            while send.capacity() < message.len() {
                std::future::poll_fn(|cx| send.poll_capacity(cx))
                    .await
                    .unwrap()
                    .unwrap();
            }
            send.send_data(message, false).unwrap();
        }
        send // kept open
    });
    let mut body = response.await.unwrap().into_body();
    let mut buffer = bytes::BytesMut::new();
    let mut created = std::collections::HashSet::new();
    let mut refused = None;
    while refused.is_none() {
        let chunk = body
            .data()
            .await
            .expect("the connection stayed open")
            .unwrap_or_else(|e| panic!("the stream broke after {} creates: {e:?}", created.len()));
        let _ = body.flow_control().release_capacity(chunk.len());
        buffer.extend_from_slice(&chunk);
        while buffer.len() >= 5 {
            let length = u32::from_be_bytes(buffer[1..5].try_into().unwrap()) as usize;
            if buffer.len() < 5 + length {
                break;
            }
            let message = buffer.split_to(5 + length);
            let response: WatchResponse = prost::Message::decode(&message[5..]).unwrap();
            if response.canceled {
                refused = Some(response);
            } else if response.created {
                created.insert(response.watch_id);
            }
        }
    }
    assert_eq!(created.len(), CREATES, "every create was answered");
    let refused = refused.unwrap();
    assert_eq!(
        refused.cancel_reason,
        "etcdserver: watch id must not be negative"
    );
    drop(writer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_per_connection_follow_the_flag_and_silent_connections_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_with(dir.path(), &["--max-concurrent-streams", "3"]);
    let tcp = tokio::net::TcpStream::connect(node.address())
        .await
        .unwrap();
    let (h2, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let mut h2 = h2.ready().await.unwrap();
    // The server's SETTINGS carry the limit; the client learns it with the first exchange.
    let request = http::Request::get(format!("http://{}/health", node.endpoint()))
        .body(())
        .unwrap();
    let (response, _) = h2.send_request(request, true).unwrap();
    response.await.unwrap();
    assert_eq!(h2.current_max_send_streams(), 3);

    // A connection that sends nothing is closed once the handshake time is up.
    let mut silent = tokio::net::TcpStream::connect(node.address())
        .await
        .unwrap();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::io::AsyncReadExt::read(&mut silent, &mut byte),
    )
    .await
    .expect("the member closed the silent connection");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
}
