//! etcd's corruption check: members compare hashes of their history at one revision
//! over the peer port. At start (`--experimental-initial-corrupt-check`) a member that
//! disagrees with a peer refuses to serve; periodically (`--experimental-corrupt-check-time`)
//! the leader compares every member with itself and raises the CORRUPT alarm for one
//! that differs, after which the cluster refuses writes until an operator disarms it.

use std::sync::Arc;
use std::time::Duration;

use ballast_proto::etcdserverpb::alarm_request::AlarmAction;
use ballast_proto::etcdserverpb::{AlarmRequest, AlarmType, HashKvRequest, HashKvResponse};

use crate::error::Error;
use crate::node::Node;

/// How long a peer is given to hash its history.
const PEER_HASH_TIMEOUT: Duration = Duration::from_secs(10);

/// This member's hash: (hash, compacted, revision).
async fn own_hash(node: &Node) -> Result<(u32, i64, i64), Error> {
    let store = node.store.clone();
    tokio::task::spawn_blocking(move || store.hash_kv(0))
        .await
        .map_err(|e| Error::Fatal(e.to_string()))?
        .map_err(Error::Store)
}

/// Every other member's answer for `revision`; members that did not answer are logged
/// and left out (a slow or absent member proves nothing either way).
async fn peer_hashes(node: &Node, revision: i64) -> Vec<(u64, HashKvResponse)> {
    let mut answers = Vec::new();
    for member in node.cluster.members() {
        if member.id == node.cluster.local_id {
            continue;
        }
        let Some(mut client) = node.transport.client(member.id) else {
            continue;
        };
        let asked = client.hash_kv(HashKvRequest { revision });
        match tokio::time::timeout(PEER_HASH_TIMEOUT, asked).await {
            Ok(Ok(answer)) => answers.push((member.id, answer.into_inner())),
            Ok(Err(status)) => tracing::warn!(
                peer = format_args!("{:x}", member.id),
                error = status.message(),
                "cannot fetch hash from remote peer"
            ),
            Err(_) => tracing::warn!(
                peer = format_args!("{:x}", member.id),
                "cannot fetch hash from slow remote peer"
            ),
        }
    }
    answers
}

/// The check at start: an error if a peer with the same compaction point hashes this
/// member's revision differently.
pub(crate) async fn initial_check(node: &Node) -> Result<(), Error> {
    let (hash, compacted, revision) = own_hash(node).await?;
    let mut mismatches = 0;
    for (peer, answer) in peer_hashes(node, revision).await {
        if answer.hash == hash {
            continue;
        }
        if answer.compact_revision == compacted {
            mismatches += 1;
            tracing::error!(
                peer = format_args!("{peer:x}"),
                revision,
                local_hash = hash,
                remote_hash = answer.hash,
                "found different hash values from remote peer"
            );
        } else {
            tracing::warn!(
                peer = format_args!("{peer:x}"),
                local_compacted = compacted,
                remote_compacted = answer.compact_revision,
                "found different compact revision values from remote peer"
            );
        }
    }
    if mismatches > 0 {
        return Err(Error::Fatal(format!(
            "{:x} found data inconsistency with peers",
            node.cluster.local_id
        )));
    }
    tracing::info!(revision, hash, "initial corruption check passed");
    Ok(())
}

/// Runs the leader's check every `every` until shutdown.
pub(crate) async fn run_periodic(node: Arc<Node>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.tick().await;
    loop {
        tokio::select! {
            _ = node.shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        if !node.raft.status().is_leader() {
            continue;
        }
        if let Err(err) = leader_check(&node).await {
            tracing::warn!(%err, "corruption check failed to run");
        }
    }
}

/// One round on the leader, as etcd's: a member ahead of the leader, with a later
/// compaction, or with the leader's compaction point and another hash differs; so does
/// the leader itself if its own hash of an unchanged revision changed meanwhile.
pub(crate) async fn leader_check(node: &Node) -> Result<(), Error> {
    let (hash, compacted, revision) = own_hash(node).await?;
    let peers = peer_hashes(node, revision).await;
    let (hash_after, compacted_after, revision_after) = own_hash(node).await?;
    let mut corrupt = None;
    if hash_after != hash && revision_after == revision && compacted_after == compacted {
        corrupt = Some(node.cluster.local_id);
    }
    for (peer, answer) in &peers {
        let ahead = answer.header.as_ref().map_or(0, |h| h.revision) > revision_after;
        let differs = answer.compact_revision == compacted && answer.hash != hash;
        if ahead || answer.compact_revision > compacted_after || differs {
            tracing::error!(
                peer = format_args!("{peer:x}"),
                revision,
                local_hash = hash,
                remote_hash = answer.hash,
                remote_compacted = answer.compact_revision,
                "found a member whose data differs"
            );
            corrupt.get_or_insert(*peer);
        }
    }
    if let Some(member_id) = corrupt {
        // One alarm per round, as etcd raises.
        node.raft
            .propose(AlarmRequest {
                action: AlarmAction::Activate as i32,
                member_id,
                alarm: AlarmType::Corrupt as i32,
            })
            .await?;
    }
    Ok(())
}
