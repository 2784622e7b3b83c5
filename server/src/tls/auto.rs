//! `--auto-tls` / `--peer-auto-tls`: a self-signed certificate for this member's hosts,
//! made once and kept under `<data-dir>/fixtures/<client|peer>/` as etcd keeps it.

use std::path::PathBuf;

use crate::config::Config;

/// The certificate and key files for `side`, generated if they are not there yet.
pub(super) fn generate(config: &Config, side: &str) -> Result<(PathBuf, PathBuf), String> {
    let dir = config.data_dir().join("fixtures").join(side);
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    let urls = if side == "peer" {
        config
            .listen_peer_urls
            .iter()
            .chain(&config.initial_advertise_peer_urls)
    } else {
        config
            .listen_client_urls
            .iter()
            .chain(&config.advertise_client_urls)
    };
    let mut hosts: Vec<String> = urls.filter_map(|u| host_of(u)).collect();
    hosts.extend(["localhost".to_string(), "127.0.0.1".to_string()]);
    hosts.sort();
    hosts.dedup();
    let mut params = rcgen::CertificateParams::new(hosts).map_err(|e| e.to_string())?;
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "etcd");
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(365 * config.self_signed_cert_validity as i64);
    let pair = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let made = params.self_signed(&pair).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    write_private(&key, pair.serialize_pem().as_bytes())?;
    std::fs::write(&cert, made.pem()).map_err(|e| format!("{}: {e}", cert.display()))?;
    tracing::info!(cert = %cert.display(), "generated a self-signed {side} certificate");
    Ok((cert, key))
}

/// The host of `scheme://host:port`.
fn host_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let host = match authority.rsplit_once(':') {
        Some((host, _port)) => host,
        None => authority,
    };
    Some(
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
    )
}

/// Writes a key file readable by its owner only.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    file.write_all(bytes)
        .map_err(|e| format!("{}: {e}", path.display()))
}
