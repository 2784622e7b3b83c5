//! Receiving a snapshot file from the leader.
//!
//! The chunks are written to a partial file, the CRC checked, the file verified chunk by
//! chunk (`ballast_store::snapshot::verify`) and moved into place; only then is the
//! MsgSnapshot stepped into raft, which hands the snapshot to the driver to install. The
//! message must come from a member and name the very file received; one receive runs at
//! a time, its size is capped, and its partial file is removed on every failure (and at
//! start-up, by the store).

use std::path::{Path, PathBuf};

use ballast_proto::ballast::transport::SnapshotChunk;
use ballast_store::snapshot::PARTIAL_SUFFIX;
use protobuf::Message as _;
use raft::eraftpb::{Message as RaftMessage, MessageType};
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;
use tonic::{Status, Streaming};

use crate::node::Node;

/// Largest snapshot file a member receives (the whole state: keys, history, leases).
pub const SNAPSHOT_RECEIVE_BYTES_MAX: u64 = 1 << 40;
/// Snapshots received at once: a second sender waits, so one partial file exists at most.
static RECEIVING: Semaphore = Semaphore::const_new(1);

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
    check_message(node, &message, first.from, &name)?;
    let _receiving = RECEIVING
        .acquire()
        .await
        .map_err(|_| Status::unavailable("shutting down"))?;
    let dir = node.store.snap_dir().to_path_buf();
    tokio::fs::create_dir_all(&dir).await.map_err(io)?;
    let partial = dir.join(format!("{name}{PARTIAL_SUFFIX}"));
    let received = receive_file(&partial, first, &mut chunks).await;
    if received.is_err() {
        let _ = tokio::fs::remove_file(&partial).await;
    }
    received?;
    let verified = partial.clone();
    let verified = tokio::task::spawn_blocking(move || ballast_store::snapshot::verify(&verified))
        .await
        .map_err(|e| Status::internal(e.to_string()))?;
    let expected = message.get_snapshot().get_metadata().index;
    let meta = match verified {
        Ok(meta) if meta.index == expected => meta,
        Ok(_) => {
            remove_now(&partial);
            return Err(Status::data_loss(
                "snapshot file does not match its message",
            ));
        }
        Err(err) => {
            remove_now(&partial);
            return Err(Status::data_loss(err.to_string()));
        }
    };
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

/// The message must be a snapshot from the member that sent the stream, to this member,
/// naming the file the stream carries: the driver installs the file the message names.
fn check_message(node: &Node, message: &RaftMessage, from: u64, name: &str) -> Result<(), Status> {
    if message.get_msg_type() != MessageType::MsgSnapshot
        || message.from != from
        || node.cluster.member(from).is_none()
        || message.to != node.cluster.local_id
    {
        return Err(Status::permission_denied(
            "snapshot message from an unknown member or to another",
        ));
    }
    if message.get_snapshot().data != name.as_bytes() {
        return Err(Status::invalid_argument(
            "snapshot message names another file than the stream's",
        ));
    }
    Ok(())
}

/// Writes the chunks to `partial` and checks their CRC and total size.
async fn receive_file(
    partial: &PathBuf,
    first: SnapshotChunk,
    chunks: &mut Streaming<SnapshotChunk>,
) -> Result<(), Status> {
    let mut file = tokio::fs::File::create(partial).await.map_err(io)?;
    let mut hasher = crc32fast::Hasher::new();
    let mut bytes = 0u64;
    let mut chunk = first;
    loop {
        bytes += chunk.data.len() as u64;
        if bytes > SNAPSHOT_RECEIVE_BYTES_MAX {
            return Err(Status::resource_exhausted("snapshot larger than allowed"));
        }
        hasher.update(&chunk.data);
        file.write_all(&chunk.data).await.map_err(io)?;
        if chunk.last {
            if chunk.crc32 != hasher.finalize() {
                return Err(Status::data_loss("snapshot checksum mismatch"));
            }
            break;
        }
        chunk = chunks
            .message()
            .await?
            .ok_or_else(|| Status::aborted("snapshot stream ended early"))?;
    }
    file.sync_all().await.map_err(io)
}

fn remove_now(path: &Path) {
    let _ = std::fs::remove_file(path);
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
