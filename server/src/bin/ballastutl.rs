//! `ballastutl`: offline operations on snapshots and data dirs, with etcdutl's commands
//! and flags — `snapshot restore`, `snapshot status`, `defrag`.

use std::path::PathBuf;
use std::process::ExitCode;

use ballast_server::restore::{defrag, restore, RestoreOptions};
use ballast_store::etcd_db::snapshot_status;
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "ballastutl",
    version,
    about = "Offline operations on Ballast (and etcd) snapshots and data dirs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Manages snapshot files in etcd's format.
    Snapshot {
        #[command(subcommand)]
        command: SnapshotCommand,
    },
    /// Defragments the database of a stopped member.
    Defrag {
        /// Data directory of the member.
        #[arg(long)]
        data_dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum SnapshotCommand {
    /// Restores a snapshot (etcd 3.4/3.5's or Ballast's) into a new member data dir.
    Restore {
        /// The snapshot file.
        file: PathBuf,
        /// Path to the data directory [default: <name>.etcd].
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Human-readable name for this member.
        #[arg(long, default_value = "default")]
        name: String,
        /// Initial cluster configuration for restore bootstrap.
        #[arg(long, default_value = "default=http://localhost:2380")]
        initial_cluster: String,
        /// Initial cluster token for the cluster during restore bootstrap.
        #[arg(long, default_value = "etcd-cluster")]
        initial_cluster_token: String,
        /// List of this member's peer URLs to advertise to the rest of the cluster.
        #[arg(long, default_value = "http://localhost:2380", value_delimiter = ',')]
        initial_advertise_peer_urls: Vec<String>,
        /// Ignore the snapshot's hash (required for a database file copied from a data dir).
        #[arg(long)]
        skip_hash_check: bool,
    },
    /// Gets the status of a snapshot file.
    Status {
        file: PathBuf,
        /// Output format.
        #[arg(short = 'w', long = "write-out", value_enum, default_value = "simple")]
        write_out: Format,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Simple,
    Table,
    Json,
}

/// Bytes as go-humanize prints them (SI units), as etcdutl shows sizes.
fn human(bytes: u64) -> String {
    if bytes < 10 {
        return format!("{bytes} B");
    }
    let units = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let exponent = ((bytes as f64).ln() / 1000f64.ln()).floor() as usize;
    let value = ((bytes as f64 / 1000f64.powi(exponent as i32)) * 10.0 + 0.5).floor() / 10.0;
    if value < 10.0 {
        format!("{value:.1} {}", units[exponent])
    } else {
        format!("{value:.0} {}", units[exponent])
    }
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Defrag { data_dir } => {
            defrag(&data_dir).map_err(|e| e.to_string())?;
            println!("Finished defragmenting etcd data[{}]", data_dir.display());
        }
        Command::Snapshot {
            command: SnapshotCommand::Status { file, write_out },
        } => {
            let s = snapshot_status(&file).map_err(|e| e.to_string())?;
            let size = human(s.total_size);
            match write_out {
                Format::Simple => {
                    println!("{:x}, {}, {}, {size}", s.hash, s.revision, s.total_key)
                }
                Format::Json => println!(
                    r#"{{"hash":{},"revision":{},"totalKey":{},"totalSize":{}}}"#,
                    s.hash, s.revision, s.total_key, s.total_size
                ),
                Format::Table => {
                    let line = "+----------+----------+------------+------------+";
                    println!("{line}\n|   HASH   | REVISION | TOTAL KEYS | TOTAL SIZE |\n{line}");
                    println!(
                        "| {:>8x} | {:>8} | {:>10} | {:>10} |\n{line}",
                        s.hash, s.revision, s.total_key, size
                    );
                }
            }
        }
        Command::Snapshot {
            command:
                SnapshotCommand::Restore {
                    file,
                    data_dir,
                    name,
                    initial_cluster,
                    initial_cluster_token,
                    initial_advertise_peer_urls,
                    skip_hash_check,
                },
        } => {
            let data_dir = data_dir.unwrap_or_else(|| PathBuf::from(format!("{name}.etcd")));
            let options = RestoreOptions {
                snapshot: file.clone(),
                data_dir: data_dir.clone(),
                name,
                initial_cluster,
                initial_cluster_token,
                initial_advertise_peer_urls,
                skip_hash_check,
            };
            let summary = restore(&options).map_err(|e| e.to_string())?;
            println!(
                "restored snapshot {} into {}: revision {}, {} keys ({} versions), {} leases, compacted at {}",
                file.display(),
                data_dir.display(),
                summary.revision,
                summary.keys,
                summary.versions,
                summary.leases,
                summary.compacted
            );
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("Error: {err}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_go_humanize_prints_them() {
        assert_eq!(human(5), "5 B");
        assert_eq!(human(20480), "20 kB");
        assert_eq!(human(57344), "57 kB");
        assert_eq!(human(1_500_000), "1.5 MB");
    }
}
