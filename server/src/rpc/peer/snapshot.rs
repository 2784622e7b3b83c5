//! Receiving a snapshot file from the leader.
//!
//! The chunks are written to a partial file, the CRC checked, the file verified chunk by
//! chunk (`ballast_store::snapshot::verify`) and moved into place; only then is the
//! MsgSnapshot stepped into raft, which hands the snapshot to the driver to install.

use std::path::Path;

use ballast_proto::ballast::transport::SnapshotChunk;
use protobuf::Message as _;
use raft::eraftpb::Message as RaftMessage;
use tokio::io::AsyncWriteExt;
use tonic::{Status, Streaming};

use crate::node::Node;

/// A snapshot file name as the sender wrote it: no path, `.snap` at the end.
fn checked_name(name: &str) -> Result<&str, Status> {
    let plain =
        !name.is_empty() && !name.contains('/') && !name.contains("..") && name.ends_with(".snap");
    if plain {
        Ok(name)
    } else {
        Err(Status::invalid_argument(format!(
            "bad snapshot name {name:?}"
        )))
    }
}

/// Receives a snapshot file, verifies it, and steps its MsgSnapshot into raft.
pub(crate) async fn receive(
    node: &Node,
    mut chunks: Streaming<SnapshotChunk>,
) -> Result<(), Status> {
    let first = chunks
        .message()
        .await?
        .ok_or_else(|| Status::invalid_argument("empty snapshot stream"))?;
    if first.cluster_id != node.cluster.cluster_id {
        return Err(Status::failed_precondition("cluster ID mismatch"));
    }
    let name = checked_name(&first.name)?.to_string();
    let message = RaftMessage::parse_from_bytes(&first.message)
        .map_err(|e| Status::invalid_argument(format!("bad snapshot message: {e}")))?;
    let dir = node.store.snap_dir().to_path_buf();
    tokio::fs::create_dir_all(&dir).await.map_err(io)?;
    let partial = dir.join(format!("{name}.part"));
    let mut file = tokio::fs::File::create(&partial).await.map_err(io)?;
    let mut hasher = crc32fast::Hasher::new();
    let mut chunk = first;
    loop {
        hasher.update(&chunk.data);
        file.write_all(&chunk.data).await.map_err(io)?;
        if chunk.last {
            if chunk.crc32 != hasher.finalize() {
                let _ = tokio::fs::remove_file(&partial).await;
                return Err(Status::data_loss("snapshot checksum mismatch"));
            }
            break;
        }
        chunk = chunks
            .message()
            .await?
            .ok_or_else(|| Status::aborted("snapshot stream ended early"))?;
    }
    file.sync_all().await.map_err(io)?;
    drop(file);
    let verified = partial.clone();
    let meta = tokio::task::spawn_blocking(move || ballast_store::snapshot::verify(&verified))
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(|e| Status::data_loss(e.to_string()))?;
    if meta.index != message.get_snapshot().get_metadata().index {
        return Err(Status::data_loss(
            "snapshot file does not match its message",
        ));
    }
    let path = dir.join(&name);
    tokio::fs::rename(&partial, &path).await.map_err(io)?;
    sync_dir(&dir).await;
    tracing::info!(
        index = meta.index,
        from = chunk_sender(&message),
        "snapshot received"
    );
    node.raft.step(message);
    Ok(())
}

fn chunk_sender(message: &RaftMessage) -> String {
    format!("{:x}", message.from)
}

fn io(err: std::io::Error) -> Status {
    Status::internal(format!("snapshot file: {err}"))
}

async fn sync_dir(dir: &Path) {
    if let Ok(handle) = tokio::fs::File::open(dir).await {
        let _ = handle.sync_all().await;
    }
}
