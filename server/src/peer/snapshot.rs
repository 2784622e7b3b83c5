//! Moving snapshot files between members.
//!
//! The sender streams the file named by a raft MsgSnapshot in chunks, with the message
//! itself in the first chunk and the CRC32 of the whole file in the last. The receiver
//! writes the chunks to a partial file, checks the CRC, verifies the file chunk by
//! chunk (`ballast_store::snapshot::verify`), moves it into place, and only then steps
//! the MsgSnapshot into its raft, which hands the snapshot to the driver to install.
//! Whatever happens, raft on the sender learns whether the snapshot was delivered.

use std::path::{Path, PathBuf};

use ballast_proto::ballast::transport::raft_transport_client::RaftTransportClient;
use ballast_proto::ballast::transport::SnapshotChunk;
use protobuf::Message as _;
use raft::eraftpb::Message as RaftMessage;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Status, Streaming};

use crate::rpc::Shared;

/// Bytes of snapshot file per chunk.
pub const SNAPSHOT_TRANSFER_CHUNK_BYTES: usize = 1 << 20;
/// Chunks read ahead of the network.
const SNAPSHOT_TRANSFER_QUEUE: usize = 4;

/// Streams the snapshot of `message` to its peer; Ok once the peer has it whole.
pub(crate) async fn send(
    mut client: RaftTransportClient<Channel>,
    from: u64,
    cluster_id: u64,
    message: RaftMessage,
    snap_dir: PathBuf,
) -> Result<(), String> {
    let name =
        String::from_utf8(message.get_snapshot().data.to_vec()).map_err(|e| e.to_string())?;
    let encoded = message.write_to_bytes().map_err(|e| e.to_string())?;
    let mut file = tokio::fs::File::open(snap_dir.join(&name))
        .await
        .map_err(|e| format!("open snapshot {name}: {e}"))?;
    let (chunks, outbound) = mpsc::channel(SNAPSHOT_TRANSFER_QUEUE);
    let reader = tokio::spawn(async move {
        let mut hasher = crc32fast::Hasher::new();
        let mut first = Some(encoded);
        loop {
            let mut data = vec![0u8; SNAPSHOT_TRANSFER_CHUNK_BYTES];
            let mut filled = 0;
            while filled < data.len() {
                let n = file
                    .read(&mut data[filled..])
                    .await
                    .map_err(|e| e.to_string())?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            data.truncate(filled);
            hasher.update(&data);
            let last = filled < SNAPSHOT_TRANSFER_CHUNK_BYTES;
            let chunk = SnapshotChunk {
                from,
                cluster_id,
                name: name.clone(),
                data: data.into(),
                last,
                crc32: if last { hasher.clone().finalize() } else { 0 },
                message: first.take().unwrap_or_default().into(),
            };
            if chunks.send(chunk).await.is_err() {
                return Err("snapshot stream closed".to_string());
            }
            if last {
                return Ok(());
            }
        }
    });
    let sent = client.snapshot(ReceiverStream::new(outbound)).await;
    let read = reader.await.map_err(|e| e.to_string())?;
    sent.map_err(|status| status.message().to_string())?;
    read
}

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
    shared: &Shared,
    mut chunks: Streaming<SnapshotChunk>,
) -> Result<(), Status> {
    let first = chunks
        .message()
        .await?
        .ok_or_else(|| Status::invalid_argument("empty snapshot stream"))?;
    if first.cluster_id != shared.cluster.cluster_id {
        return Err(Status::failed_precondition("cluster ID mismatch"));
    }
    let name = checked_name(&first.name)?.to_string();
    let message = RaftMessage::parse_from_bytes(&first.message)
        .map_err(|e| Status::invalid_argument(format!("bad snapshot message: {e}")))?;
    let dir = shared.store.snap_dir().to_path_buf();
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
    shared.node.step(message);
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
