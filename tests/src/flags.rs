//! The flags that place a member: the same for `ballast` and `etcd`, which is the point.

use std::ffi::OsString;
use std::path::Path;

/// etcd's flags for member `name` with its data in `data_dir`, serving clients on
/// `client_url` and peers on `peer_url`, in the cluster `initial_cluster` (`new` or
/// `existing` as `state`).
pub(crate) fn member_flags(
    name: &str,
    data_dir: &Path,
    client_url: &str,
    peer_url: &str,
    initial_cluster: &str,
    state: &str,
) -> Vec<OsString> {
    let mut flags: Vec<OsString> = vec!["--name".into(), name.into(), "--data-dir".into()];
    flags.push(data_dir.into());
    for (flag, value) in [
        ("--listen-client-urls", client_url),
        ("--advertise-client-urls", client_url),
        ("--listen-peer-urls", peer_url),
        ("--initial-advertise-peer-urls", peer_url),
        ("--initial-cluster", initial_cluster),
        ("--initial-cluster-state", state),
    ] {
        flags.push(flag.into());
        flags.push(value.into());
    }
    flags
}
