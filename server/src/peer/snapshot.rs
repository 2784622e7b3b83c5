//! Sending snapshot files to members that fell behind.
//!
//! The sender streams the file named by a raft MsgSnapshot in chunks, with the message
//! itself in the first chunk and the CRC32 of the whole file in the last (the receiving
//! side is `rpc::peer::snapshot`). Whatever happens, raft on the sender learns whether
//! the snapshot was delivered.

use std::path::PathBuf;

use ballast_proto::ballast::transport::raft_transport_client::RaftTransportClient;
use ballast_proto::ballast::transport::SnapshotChunk;
use protobuf::Message as _;
use raft::eraftpb::Message as RaftMessage;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

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
