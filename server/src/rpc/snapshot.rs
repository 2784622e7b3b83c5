//! Maintenance.Snapshot: the whole state as etcd's backend database (`etcd_db`), taken
//! at one instant of a RocksDB snapshot while writes go on, then streamed as etcd
//! streams it: 32 KiB blobs counting down `remaining_bytes`, then a last message
//! holding the SHA-256 of the bytes before it (what `etcdctl snapshot save` appends and
//! `etcdutl snapshot restore` checks).

use std::path::PathBuf;
use std::sync::Arc;

use ballast_proto::etcdserverpb::SnapshotResponse;
use ballast_store::etcd_db::write_etcd_db;
use ballast_store::snapshot::PARTIAL_SUFFIX;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::BoxStream;
use tonic::Status;

use crate::node::Node;

/// Bytes per message, as etcd sends them.
const SNAPSHOT_CHUNK_BYTES: usize = 32 * 1024;
/// Messages queued ahead of a slow client.
const SNAPSHOT_MESSAGES_QUEUED: usize = 8;

/// The database file, removed once streamed (or when the stream is dropped). A crash
/// leaves it behind as a partial file, which the store removes at its next open.
struct Removed(PathBuf);

impl Drop for Removed {
    fn drop(&mut self) {
        if let Err(err) = std::fs::remove_file(&self.0) {
            tracing::warn!(path = %self.0.display(), %err, "removing a streamed snapshot failed");
        }
    }
}

/// Writes the database and starts streaming it.
pub(crate) async fn stream(node: &Arc<Node>) -> Result<BoxStream<SnapshotResponse>, Status> {
    let store = node.store.clone();
    let dir = store.snap_dir().to_path_buf();
    let path = dir.join(format!(
        "etcd-{:016x}.db{PARTIAL_SUFFIX}",
        node.raft.ids().next()
    ));
    let file = Removed(path.clone());
    let summary = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&dir)?;
        write_etcd_db(store.backend(), &path)
    })
    .await
    .map_err(|e| Status::internal(e.to_string()))?
    .map_err(|e| Status::internal(format!("etcdserver: writing the snapshot: {e}")))?;
    tracing::info!(
        bytes = summary.bytes,
        revision = summary.revision,
        versions = summary.versions,
        "sending a database snapshot"
    );
    let header = node.header(summary.revision);
    let (out, queue) = mpsc::channel(SNAPSHOT_MESSAGES_QUEUED);
    node.tasks.spawn(async move {
        if let Err(status) = send(&file, summary.bytes, header, &out).await {
            let _ = out.send(Err(status)).await;
        }
    });
    Ok(Box::pin(ReceiverStream::new(queue)))
}

async fn send(
    file: &Removed,
    total: u64,
    header: ballast_proto::etcdserverpb::ResponseHeader,
    out: &mpsc::Sender<Result<SnapshotResponse, Status>>,
) -> Result<(), Status> {
    let io = |e: std::io::Error| Status::internal(format!("etcdserver: reading the snapshot: {e}"));
    let mut input = tokio::fs::File::open(&file.0).await.map_err(io)?;
    let mut hash = Sha256::new();
    let mut sent = 0u64;
    let mut header = Some(header);
    let mut buffer = vec![0u8; SNAPSHOT_CHUNK_BYTES];
    while sent < total {
        let n = (total - sent).min(SNAPSHOT_CHUNK_BYTES as u64) as usize;
        input.read_exact(&mut buffer[..n]).await.map_err(io)?;
        hash.update(&buffer[..n]);
        sent += n as u64;
        let first = header.is_some();
        let message = SnapshotResponse {
            header: header.take(),
            remaining_bytes: total - sent,
            blob: bytes::Bytes::copy_from_slice(&buffer[..n]),
            // The storage version of the file, in the first message (etcd 3.6 reads it).
            version: if first { "3.5.0".into() } else { String::new() },
        };
        if out.send(Ok(message)).await.is_err() {
            return Ok(());
        }
    }
    let digest = SnapshotResponse {
        header: header.take(),
        remaining_bytes: 0,
        blob: bytes::Bytes::copy_from_slice(&hash.finalize()),
        version: String::new(),
    };
    let _ = out.send(Ok(digest)).await;
    Ok(())
}
