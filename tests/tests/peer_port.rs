//! The peer port refuses raft messages from outside the cluster: another cluster's id,
//! or a sender that is not a member, and says so in the log.

use ballast_proto::ballast::transport::raft_transport_client::RaftTransportClient;
use ballast_proto::ballast::transport::RaftBatch;
use ballast_proto::etcdserverpb::kv_client::KvClient;
use ballast_proto::etcdserverpb::RangeRequest;
use ballast_tests::Node;

#[tokio::test]
async fn raft_messages_from_strangers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let header = KvClient::connect(node.url())
        .await
        .unwrap()
        .range(RangeRequest {
            key: b"k".to_vec().into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .header
        .unwrap();
    let mut peer = RaftTransportClient::connect(node.peer_url()).await.unwrap();
    let batch = |from, cluster_id| {
        tokio_stream::iter(vec![RaftBatch {
            from,
            cluster_id,
            messages: Vec::new(),
        }])
    };

    let unknown = peer
        .send(batch(header.member_id ^ 1, header.cluster_id))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::PermissionDenied, "{unknown:?}");
    let other_cluster = peer
        .send(batch(header.member_id, header.cluster_id ^ 1))
        .await;
    assert!(other_cluster.is_err());
    // A member of the cluster (here the node itself) gets through the same checks.
    peer.send(batch(header.member_id, header.cluster_id))
        .await
        .unwrap();
    assert!(node
        .log()
        .contains("refused raft messages from an unknown member"));
}
