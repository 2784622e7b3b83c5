//! `ballastutl`'s offline work on a data dir: restoring a snapshot in etcd's format
//! (from etcd 3.4 or 3.5, or Ballast's own Snapshot RPC) into a new member's data dir,
//! and defragmenting a stopped member's database.

use std::path::{Path, PathBuf};

use ballast_store::backend::Backend;
use ballast_store::bbolt::BoltReader;
use ballast_store::etcd_db::{import_etcd_db, verify_snapshot_hash, ImportSummary};
use ballast_store::{LogStore, Store};

use crate::cluster::{found, parse_initial_cluster};
use crate::config::Config;
use crate::error::{Error, Result};

/// What `snapshot restore` needs, with etcdutl's flag names.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    pub snapshot: PathBuf,
    pub data_dir: PathBuf,
    pub name: String,
    pub initial_cluster: String,
    pub initial_cluster_token: String,
    pub initial_advertise_peer_urls: Vec<String>,
    pub skip_hash_check: bool,
}

/// The database of a member's data dir.
fn db_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("member").join("db")
}

/// Restores the snapshot into a new data dir holding its keys, history, leases, users
/// and roles, and the cluster `--initial-cluster` founds: start each member with the
/// same flags and they form that cluster over the restored data. The data dir appears
/// only once whole: a failed restore leaves nothing behind.
pub fn restore(options: &RestoreOptions) -> Result<ImportSummary> {
    let empty = |dir: &Path| std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none());
    if options.data_dir.exists() && !empty(&options.data_dir) {
        return Err(Error::Config(format!(
            "data-dir {:?} not empty or could not be read",
            options.data_dir.display().to_string()
        )));
    }
    let mut config = <Config as clap::Parser>::try_parse_from(["ballast"])
        .map_err(|e| Error::Config(e.to_string()))?;
    config.name = options.name.clone();
    config.initial_cluster = Some(options.initial_cluster.clone());
    config.initial_cluster_token = options.initial_cluster_token.clone();
    config.initial_advertise_peer_urls = options.initial_advertise_peer_urls.clone();
    let listed = parse_initial_cluster(&config.initial_cluster(), &config.initial_cluster_token)?;

    let store_error = |e: ballast_store::Error| match e {
        ballast_store::Error::Corrupt(why) => Error::Config(format!("snapshot: {why}")),
        other => Error::Config(format!("snapshot: {other}")),
    };
    verify_snapshot_hash(&options.snapshot, options.skip_hash_check).map_err(store_error)?;
    let reader = BoltReader::open(&options.snapshot).map_err(store_error)?;

    let partial = options.data_dir.with_extension("restoring.part");
    if partial.exists() {
        std::fs::remove_dir_all(&partial)?;
    }
    let restored = (|| -> Result<ImportSummary> {
        let db = db_dir(&partial);
        std::fs::create_dir_all(&db)?;
        let summary = {
            let backend = Backend::open(&db)?;
            import_etcd_db(&reader, &backend).map_err(store_error)?
        };
        let store = Store::open(&db)?;
        let founded = found(&store, &config, &listed).and_then(|_| {
            let log = LogStore::open(store.clone())?;
            log.bootstrap(listed.iter().map(|m| m.id).collect())?;
            Ok(())
        });
        store.close();
        founded?;
        Ok(summary)
    })();
    match restored {
        Ok(summary) => {
            if options.data_dir.exists() {
                std::fs::remove_dir(&options.data_dir)?;
            }
            std::fs::rename(&partial, &options.data_dir)?;
            Ok(summary)
        }
        Err(err) => {
            let _ = std::fs::remove_dir_all(&partial);
            Err(err)
        }
    }
}

/// Compacts a stopped member's database fully (etcd's offline defrag).
pub fn defrag(data_dir: &Path) -> Result<()> {
    let db = db_dir(data_dir);
    if !db.exists() {
        return Err(Error::Config(format!(
            "{} holds no member database",
            data_dir.display()
        )));
    }
    let backend = Backend::open(&db)?;
    backend.compact_all();
    backend.flush()?;
    Ok(())
}
