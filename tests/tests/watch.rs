//! Watch over gRPC against a real node, with ballast-client.

use std::time::Duration;

use ballast_client::{
    DeleteOptions, Error, EventKind, PutOptions, WatchOptions, WatchResponse, WatchStream,
};
use ballast_tests::{Node, WAIT};
use tokio_stream::StreamExt as _;

async fn next(stream: &mut WatchStream) -> WatchResponse {
    tokio::time::timeout(WAIT, stream.message())
        .await
        .expect("a watch response in time")
        .expect("no watch error")
        .expect("the watch is open")
}

/// Reads responses until `count` events arrived; progress responses are skipped.
async fn events(stream: &mut WatchStream, count: usize) -> Vec<ballast_client::Event> {
    let mut out = Vec::new();
    while out.len() < count {
        out.extend(next(stream).await.events);
    }
    assert_eq!(out.len(), count, "no more events than expected");
    out
}

#[tokio::test]
async fn live_events_with_prev_kv_and_filters() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("n"));
    let c = node.client().await;
    let (_w1, mut all) = c
        .watch("p/", WatchOptions::new().with_prefix().with_prev_kv())
        .await
        .unwrap();
    let (_w2, mut no_put) = c
        .watch("p/", WatchOptions::new().with_prefix().with_no_put())
        .await
        .unwrap();
    let (_w3, mut one) = c
        .watch("p/b", WatchOptions::new().with_no_delete())
        .await
        .unwrap();

    c.put("p/a", "1", PutOptions::new()).await.unwrap();
    c.put("p/b", "1", PutOptions::new()).await.unwrap();
    c.put("p/a", "2", PutOptions::new()).await.unwrap();
    c.put("q", "outside", PutOptions::new()).await.unwrap();
    c.delete("p/", DeleteOptions::new().with_prefix())
        .await
        .unwrap();

    let got = events(&mut all, 5).await;
    let kinds: Vec<_> = got.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            EventKind::Put,
            EventKind::Put,
            EventKind::Put,
            EventKind::Delete,
            EventKind::Delete
        ]
    );
    assert_eq!(got[2].prev_kv.as_ref().unwrap().value_str().unwrap(), "1");
    assert!(got[0].prev_kv.is_none());
    // Both deletes happened in one revision and carry it.
    assert_eq!(got[3].kv.mod_revision, got[4].kv.mod_revision);
    assert!(got[3].kv.value.is_empty());

    let deletes = events(&mut no_put, 2).await;
    assert!(deletes.iter().all(|e| e.kind == EventKind::Delete));
    assert!(
        deletes.iter().all(|e| e.prev_kv.is_none()),
        "prev_kv only when asked"
    );

    let only_b = events(&mut one, 1).await;
    assert_eq!(only_b[0].kv.key_str().unwrap(), "p/b");
}

#[tokio::test]
async fn start_revision_in_the_past_replays_history_then_follows() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("n"));
    let c = node.client().await;
    for i in 0..10 {
        c.put("k", i.to_string(), PutOptions::new()).await.unwrap();
    }
    let (watcher, mut stream) = c
        .watch("k", WatchOptions::new().with_start_revision(5))
        .await
        .unwrap();
    assert_eq!(watcher.header().revision, 11);
    c.put("k", "live", PutOptions::new()).await.unwrap();
    let got = events(&mut stream, 8).await;
    let revisions: Vec<i64> = got.iter().map(|e| e.kv.mod_revision).collect();
    assert_eq!(
        revisions,
        (5..=12).collect::<Vec<_>>(),
        "no gap, no duplicate"
    );
    assert_eq!(got[7].kv.value_str().unwrap(), "live");
}

#[tokio::test]
async fn compacted_start_is_canceled_with_the_compact_revision() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("n"));
    let c = node.client().await;
    for i in 0..6 {
        c.put("k", i.to_string(), PutOptions::new()).await.unwrap();
    }
    c.compact(5, false).await.unwrap();
    let (_w, mut stream) = c
        .watch("k", WatchOptions::new().with_start_revision(2))
        .await
        .unwrap();
    match tokio::time::timeout(WAIT, stream.message()).await.unwrap() {
        Err(Error::Compacted { compact_revision }) => assert_eq!(compact_revision, 5),
        other => panic!("expected a compaction cancel, got {other:?}"),
    }
    // At the compaction point itself the watch works.
    let (_w, mut stream) = c
        .watch("k", WatchOptions::new().with_start_revision(5))
        .await
        .unwrap();
    assert_eq!(events(&mut stream, 3).await[0].kv.mod_revision, 5);
}

#[tokio::test]
async fn cancel_and_progress() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_with(
        &dir.path().join("n"),
        &["--experimental-watch-progress-notify-interval", "200ms"],
    );
    let c = node.client().await;
    let (watcher, mut stream) = c.watch("x", WatchOptions::new()).await.unwrap();
    let (_other, mut notified) = c
        .watch("y", WatchOptions::new().with_progress_notify())
        .await
        .unwrap();
    c.put("z", "1", PutOptions::new()).await.unwrap();

    watcher.request_progress().await.unwrap();
    let progress = next(&mut stream).await;
    assert!(progress.is_progress_notify());
    assert_eq!(
        progress.header.revision, 2,
        "progress reports the revision delivered up to"
    );

    let periodic = next(&mut notified).await;
    assert!(periodic.is_progress_notify());
    assert!(periodic.header.revision >= 2);

    watcher.cancel().await.unwrap();
    let end = tokio::time::timeout(WAIT, async {
        loop {
            match stream.message().await {
                Ok(Some(r)) if r.is_progress_notify() => continue,
                other => return other,
            }
        }
    })
    .await
    .unwrap();
    assert!(matches!(end, Ok(None)), "a canceled watch ends: {end:?}");
}

#[tokio::test]
async fn a_slow_watcher_loses_nothing_and_does_not_block_others() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("n"));
    let writer = node.client().await;
    // A separate connection whose watcher is not read while the writes happen.
    let slow_client = node.client().await;
    let (_slow, mut slow) = slow_client
        .watch("s/", WatchOptions::new().with_prefix().with_prev_kv())
        .await
        .unwrap();
    let (_fast, mut fast) = writer
        .watch("s/", WatchOptions::new().with_prefix())
        .await
        .unwrap();

    const WRITES: usize = 2000;
    let value = "v".repeat(512);
    let mut fast_seen = 0;
    for i in 0..WRITES {
        writer
            .put(format!("s/{}", i % 50), &value, PutOptions::new())
            .await
            .unwrap();
        // The fast watcher keeps up as we go.
        while let Ok(Ok(Some(r))) =
            tokio::time::timeout(Duration::from_millis(0), fast.message()).await
        {
            fast_seen += r.events.len();
        }
    }
    while fast_seen < WRITES {
        fast_seen += next(&mut fast).await.events.len();
    }
    assert_eq!(fast_seen, WRITES);

    let got = events(&mut slow, WRITES).await;
    let revisions: Vec<i64> = got.iter().map(|e| e.kv.mod_revision).collect();
    let expected: Vec<i64> = (2..2 + WRITES as i64).collect();
    assert_eq!(revisions, expected, "every event, in order, once");
}

#[tokio::test]
async fn large_revisions_are_fragmented_for_watchers_that_ask() {
    use ballast_proto::etcdserverpb::watch_client::WatchClient;
    use ballast_proto::etcdserverpb::watch_request::RequestUnion;
    use ballast_proto::etcdserverpb::{WatchCreateRequest, WatchRequest};

    let dir = tempfile::tempdir().unwrap();
    // Fragments are cut at max-request-bytes + 512 KiB; keep the limit small.
    let node = Node::start_with(&dir.path().join("n"), &["--max-request-bytes", "65536"]);
    let c = node.client().await;
    let value = vec![b'x'; 60_000];
    for i in 0..12 {
        c.put(format!("f/{i:02}"), &value, PutOptions::new())
            .await
            .unwrap();
    }
    // One revision deletes 12 keys of 60 KB; with prev_kv that is ~720 KB > 576 KiB.
    let deleted = c
        .delete("f/", DeleteOptions::new().with_prefix())
        .await
        .unwrap();
    let revision = deleted.header.revision;

    // On the wire: a watcher that asked gets fragments, all but the last flagged.
    let raw_watch = |fragment: bool| {
        let url = node.url();
        async move {
            let mut client = WatchClient::connect(url)
                .await
                .unwrap()
                .max_decoding_message_size(16 << 20);
            let create = WatchRequest {
                request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                    key: "f/".into(),
                    range_end: "f0".into(),
                    start_revision: revision,
                    prev_kv: true,
                    fragment,
                    ..Default::default()
                })),
            };
            let mut stream = client
                .watch(tokio_stream::iter([create]).chain(tokio_stream::pending()))
                .await
                .unwrap()
                .into_inner();
            let mut flags = Vec::new();
            let mut events = 0;
            while events < 12 {
                let response = tokio::time::timeout(WAIT, stream.message())
                    .await
                    .unwrap()
                    .unwrap()
                    .unwrap();
                if response.created {
                    continue;
                }
                events += response.events.len();
                flags.push(response.fragment);
            }
            flags
        }
    };
    let flags = raw_watch(true).await;
    assert!(flags.len() > 1, "split into several messages: {flags:?}");
    assert!(flags[..flags.len() - 1].iter().all(|f| *f) && !flags[flags.len() - 1]);
    assert_eq!(
        raw_watch(false).await,
        [false],
        "one message without fragment"
    );

    // The client reassembles the fragments into the whole revision.
    let (_w, mut stream) = c
        .watch(
            "f/",
            WatchOptions::new()
                .with_prefix()
                .with_prev_kv()
                .with_fragment()
                .with_start_revision(revision),
        )
        .await
        .unwrap();
    let response = next(&mut stream).await;
    assert_eq!(response.events.len(), 12);
    assert!(response
        .events
        .iter()
        .all(|e| e.prev_kv.as_ref().is_some_and(|p| p.value.len() == 60_000)));
}

async fn recv(
    stream: &mut tonic::Streaming<ballast_proto::etcdserverpb::WatchResponse>,
) -> ballast_proto::etcdserverpb::WatchResponse {
    tokio::time::timeout(WAIT, stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn watch_ids_auto_from_zero_explicit_and_duplicate() {
    use ballast_proto::etcdserverpb::watch_client::WatchClient;
    use ballast_proto::etcdserverpb::watch_request::RequestUnion;
    use ballast_proto::etcdserverpb::{WatchCancelRequest, WatchCreateRequest, WatchRequest};

    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("n"));
    let create = |watch_id: i64| WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: "k".into(),
            watch_id,
            ..Default::default()
        })),
    };
    let cancel = |watch_id: i64| WatchRequest {
        request_union: Some(RequestUnion::CancelRequest(WatchCancelRequest { watch_id })),
    };
    let (requests, outbound) = tokio::sync::mpsc::channel(8);
    let mut client = WatchClient::connect(node.url()).await.unwrap();
    let mut stream = client
        .watch(tokio_stream::wrappers::ReceiverStream::new(outbound))
        .await
        .unwrap()
        .into_inner();
    requests.send(create(0)).await.unwrap();
    let first = recv(&mut stream).await;
    assert!(first.created);
    assert_eq!(first.watch_id, 0, "automatic ids start at 0 on each stream");
    requests.send(create(7)).await.unwrap();
    assert_eq!(recv(&mut stream).await.watch_id, 7);
    requests.send(create(7)).await.unwrap();
    let refused = recv(&mut stream).await;
    assert!(refused.created && refused.canceled);
    assert_eq!(refused.watch_id, -1);
    assert_eq!(
        refused.cancel_reason,
        "mvcc: duplicate watch ID provided on the WatchStream"
    );
    requests.send(create(0)).await.unwrap();
    assert_eq!(recv(&mut stream).await.watch_id, 1);
    // Cancelling an unknown id gets no answer; a known one is confirmed.
    requests.send(cancel(99)).await.unwrap();
    requests.send(cancel(7)).await.unwrap();
    let canceled = recv(&mut stream).await;
    assert!(canceled.canceled);
    assert_eq!(canceled.watch_id, 7);
}

/// etcd keeps a watch stream after the client half-closes its side (its recvLoop ends
/// on EOF, the stream does not): events keep coming. The JSON gateway relies on it.
#[tokio::test]
async fn a_half_closed_stream_keeps_its_watches() {
    use ballast_proto::etcdserverpb::watch_client::WatchClient;
    use ballast_proto::etcdserverpb::watch_request::RequestUnion;
    use ballast_proto::etcdserverpb::{WatchCreateRequest, WatchRequest};

    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("n"));
    let create = WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: b"half".to_vec().into(),
            ..Default::default()
        })),
    };
    // The request stream ends after the create: a half-close.
    let mut responses = WatchClient::connect(node.url())
        .await
        .unwrap()
        .watch(tokio_stream::iter([create]))
        .await
        .unwrap()
        .into_inner();
    let created = tokio::time::timeout(WAIT, responses.next()).await.unwrap();
    assert!(created.unwrap().unwrap().created);
    let client = node.client().await;
    client.put("half", "v", PutOptions::new()).await.unwrap();
    let event = tokio::time::timeout(WAIT, responses.next())
        .await
        .expect("an event after the half-close")
        .expect("the stream is still open")
        .unwrap();
    assert_eq!(event.events.len(), 1);
    assert_eq!(&event.events[0].kv.as_ref().unwrap().value[..], b"v");
}
