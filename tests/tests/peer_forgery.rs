//! Forged and malformed peer input, sent as a member that can reach the peer port but
//! holds no certificate would send it: each is refused before raft sees it, the member
//! keeps serving, and no key changes. Each of these stopped a member before the checks.

use std::path::Path;

use ballast_client::{Client, GetOptions, PutOptions};
use ballast_proto::ballast::internal::RaftRequest;
use ballast_proto::ballast::transport::raft_transport_client::RaftTransportClient;
use ballast_proto::ballast::transport::{RaftBatch, SnapshotChunk};
use ballast_tests::{eventually, TestCluster, WAIT};
use prost::Message as _;
use protobuf::Message as _;
use raft::eraftpb::{Entry, Message as RaftMessage, MessageType};
use tonic::transport::Channel;

/// Who the forger claims to be.
#[derive(Clone, Copy)]
struct Forger {
    member: u64,
    cluster: u64,
}

fn message(kind: MessageType, from: u64, to: u64, term: u64) -> RaftMessage {
    let mut m = RaftMessage::default();
    m.set_msg_type(kind);
    m.from = from;
    m.to = to;
    m.term = term;
    m
}

fn entry(index: u64, term: u64, data: &[u8]) -> Entry {
    Entry {
        index,
        term,
        data: data.to_vec().into(),
        ..Default::default()
    }
}

/// Sends one batch holding `message`; the peer port's answer.
async fn send(
    peer: &mut RaftTransportClient<Channel>,
    forger: Forger,
    message: RaftMessage,
) -> Result<(), tonic::Status> {
    let batch = RaftBatch {
        from: forger.member,
        cluster_id: forger.cluster,
        messages: vec![message.write_to_bytes().unwrap().into()],
    };
    peer.send(tokio_stream::iter(vec![batch])).await.map(drop)
}

async fn keys(client: &Client) -> Vec<(Vec<u8>, Vec<u8>)> {
    client
        .get("", GetOptions::new().with_from_key())
        .await
        .unwrap()
        .kvs
        .into_iter()
        .map(|kv| (kv.key.to_vec(), kv.value.to_vec()))
        .collect()
}

fn partial_files(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(partial_files(&path));
        } else if path.to_string_lossy().ends_with(".part") {
            found.push(path.display().to_string());
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_peer_messages_are_refused_and_the_member_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = TestCluster::start(dir.path(), 3, &[]);
    let leader = cluster.leader().await;
    // The target is a follower; the forger names the leader, a member it can name.
    let node = &cluster.nodes[(leader + 1) % 3];
    let client = node.client().await;
    client.put("kept", "1", PutOptions::new()).await.unwrap();
    let status = client.status().await.unwrap();
    let me = status.header.member_id;
    let forger = Forger {
        member: status.leader,
        cluster: status.header.cluster_id,
    };
    let them = forger.member;
    let before = keys(&client).await;
    let mut peer = RaftTransportClient::connect(node.peer_url()).await.unwrap();
    let term = status.raft_term;

    let empty_proposal = message(MessageType::MsgPropose, them, me, 0);
    let mut garbage_proposal = message(MessageType::MsgPropose, them, me, 0);
    garbage_proposal.entries = vec![entry(0, 0, &[0xde, 0xad, 0xbe, 0xef])].into();
    let mut no_request = message(MessageType::MsgPropose, them, me, 0);
    no_request.entries = vec![entry(0, 0, &RaftRequest::default().encode_to_vec())].into();
    let mut far_commit = message(MessageType::MsgHeartbeat, them, me, term);
    far_commit.commit = status.raft_index + 1_000_000;
    // Entries that would rewrite committed index 1 in a later term.
    let mut rewrite = message(MessageType::MsgAppend, them, me, term + 1);
    rewrite.index = status.raft_index;
    rewrite.log_term = term;
    rewrite.entries = vec![entry(1, term + 1, b"x")].into();
    rewrite.commit = status.raft_index;
    let read_index = message(MessageType::MsgReadIndex, them, me, 0);
    let mut wrong_to = message(MessageType::MsgHeartbeat, them, me ^ 1, term);
    wrong_to.commit = 1;
    let local_only = [
        MessageType::MsgHup,
        MessageType::MsgBeat,
        MessageType::MsgCheckQuorum,
        MessageType::MsgUnreachable,
        MessageType::MsgSnapStatus,
        MessageType::MsgSnapshot,
    ]
    .map(|kind| message(kind, them, me, term));
    // Checked against the log by the raft driver, after the port took it: the first
    // refusal, so the rate-limited log shows it.
    send(&mut peer, forger, far_commit).await.unwrap();
    let logged = eventually(WAIT, || async {
        node.log()
            .contains("heartbeat commit past the end of the log")
    })
    .await;
    assert!(logged, "{}", node.log());
    let forged = [
        empty_proposal,
        garbage_proposal,
        no_request,
        rewrite,
        read_index,
        wrong_to,
    ]
    .into_iter()
    .chain(local_only);
    for m in forged {
        let kind = m.get_msg_type();
        let refused = send(&mut peer, forger, m).await.unwrap_err();
        assert_eq!(
            refused.code(),
            tonic::Code::InvalidArgument,
            "{kind:?}: {refused:?}"
        );
    }

    // A snapshot stream whose message names another file than the one it carries (once
    // it opened /etc/passwd), a name with a path, and a file that is no snapshot.
    let snapshot = |name: &str, names: &str, data: &[u8]| {
        let mut m = message(MessageType::MsgSnapshot, them, me, term);
        m.mut_snapshot().data = names.as_bytes().to_vec().into();
        m.mut_snapshot().mut_metadata().index = status.raft_index + 10;
        m.mut_snapshot().mut_metadata().term = term;
        SnapshotChunk {
            from: them,
            cluster_id: forger.cluster,
            name: name.into(),
            data: data.to_vec().into(),
            last: true,
            crc32: crc32(data),
            message: m.write_to_bytes().unwrap().into(),
        }
    };
    for (chunk, code) in [
        (
            snapshot("1-1.snap", "/etc/passwd", b"x"),
            tonic::Code::InvalidArgument,
        ),
        (
            snapshot("../../x.snap", "../../x.snap", b"x"),
            tonic::Code::InvalidArgument,
        ),
        (
            snapshot("2-2.snap", "2-2.snap", b"not a snapshot"),
            tonic::Code::DataLoss,
        ),
    ] {
        let refused = peer
            .snapshot(tokio_stream::iter(vec![chunk]))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), code, "{refused:?}");
    }
    assert_eq!(partial_files(&node.dir), Vec::<String>::new());

    // Still serving, nothing changed, and one refusal in the log.
    assert_eq!(keys(&client).await, before);
    client.put("after", "2", PutOptions::new()).await.unwrap();
    assert!(
        node.log().contains("refused a raft message"),
        "{}",
        node.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committed_entry_that_does_not_decode_is_applied_as_a_no_op() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = TestCluster::start(dir.path(), 3, &[]);
    let client = cluster.client().await;
    client.put("kept", "1", PutOptions::new()).await.unwrap();
    let leader = cluster.leader().await;
    let follower = (leader + 1) % 3;
    let follower_client = cluster.nodes[follower].client().await;
    // Quiet, the follower has everything committed and applied.
    let caught_up = eventually(WAIT, || {
        let c = follower_client.clone();
        async move {
            c.status()
                .await
                .is_ok_and(|s| s.raft_applied_index == s.raft_index)
        }
    })
    .await;
    assert!(caught_up);
    let status = follower_client.status().await.unwrap();
    let leader_id = status.leader;
    let forger = Forger {
        member: leader_id,
        cluster: status.header.cluster_id,
    };

    // An append of the leader's, in its term, that commits a garbage entry at once.
    let next = status.raft_index + 1;
    let mut append = message(
        MessageType::MsgAppend,
        leader_id,
        status.header.member_id,
        status.raft_term,
    );
    append.index = status.raft_index;
    append.log_term = status.raft_term;
    append.entries = vec![entry(next, status.raft_term, &[0xde, 0xad, 0xbe, 0xef])].into();
    append.commit = next;
    let mut peer = RaftTransportClient::connect(cluster.nodes[follower].peer_url())
        .await
        .unwrap();
    send(&mut peer, forger, append).await.unwrap();

    let node = &cluster.nodes[follower];
    let refused = eventually(WAIT, || async {
        node.log().contains("committed entry refused")
    })
    .await;
    assert!(refused, "{}", node.log());
    let applied = follower_client.status().await.unwrap().raft_applied_index;
    assert!(applied >= next, "applied {applied}, garbage at {next}");
    let read = |c: Client| async move {
        c.get("kept", GetOptions::new().with_serializable())
            .await
            .unwrap()
            .kvs[0]
            .value
            .to_vec()
    };
    assert_eq!(read(follower_client.clone()).await, b"1");

    // It restarts over the same log.
    cluster.nodes[follower].kill9();
    cluster.nodes[follower].restart();
    let restarted = cluster.nodes[follower].client().await;
    assert_eq!(read(restarted).await, b"1");
}

fn crc32(data: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(data);
    hasher.finalize()
}
