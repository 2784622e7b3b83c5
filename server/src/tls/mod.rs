//! TLS on the client and peer ports (rustls), configured with etcd's flags.
//!
//! Certificates are files an operator (or cert-manager, or kubeadm) rotates in place:
//! every configuration here is rebuilt from its files when one of them changes, checked
//! at most once per [`RELOAD_CHECK_INTERVAL`], so a rotated certificate is served (and
//! presented to peers) without a restart. A rebuild that fails keeps the last good one.
//! `--auto-tls` and `--peer-auto-tls` generate a self-signed pair under the data dir.

mod accept;
mod auto;
mod peer_client;

pub(crate) use accept::{incoming, ConnInfo, CLIENT_CONNECTIONS_MAX, PEER_CONNECTIONS_MAX};
pub(crate) use peer_client::{peer_channel, PeerConnector};

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::config::Config;

/// How often, at most, certificate files are checked for changes.
pub(crate) const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// One side's TLS files and checks: the client port's or the peer port's.
#[derive(Debug, Clone)]
pub(crate) struct TlsSettings {
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
    /// Certificates of clients (or peers) are verified against this CA.
    pub(crate) trusted_ca: Option<PathBuf>,
    /// Refuse a connection without a certificate the CA signed.
    pub(crate) client_cert_auth: bool,
    /// With `client_cert_auth`, the only common name accepted (peers).
    pub(crate) allowed_cn: Option<String>,
    /// Generated self-signed: encrypts, vouches for nobody (etcd's auto TLS).
    pub(crate) auto: bool,
    pub(crate) tls13_only: bool,
}

impl TlsSettings {
    /// The client port's settings, if any client URL is https.
    pub(crate) fn client(config: &Config) -> Result<Option<TlsSettings>, String> {
        let wanted = config
            .listen_client_urls
            .iter()
            .any(|u| u.starts_with("https://"));
        settings(
            config,
            wanted,
            (&config.cert_file, &config.key_file, &config.trusted_ca_file),
            config.client_cert_auth,
            None,
            config.auto_tls,
            "client",
        )
    }

    /// The peer port's settings, if any peer URL is https. They also make the
    /// certificate this member presents when it connects to peers.
    pub(crate) fn peer(config: &Config) -> Result<Option<TlsSettings>, String> {
        let wanted = config
            .listen_peer_urls
            .iter()
            .chain(&config.initial_advertise_peer_urls)
            .any(|u| u.starts_with("https://"))
            || config.peer_cert_file.is_some()
            || config.peer_auto_tls;
        settings(
            config,
            wanted,
            (
                &config.peer_cert_file,
                &config.peer_key_file,
                &config.peer_trusted_ca_file,
            ),
            config.peer_client_cert_auth,
            config.peer_cert_allowed_cn.clone(),
            config.peer_auto_tls,
            "peer",
        )
    }

    fn files(&self) -> Vec<&Path> {
        let mut files = vec![self.cert.as_path(), self.key.as_path()];
        files.extend(self.trusted_ca.as_deref());
        files
    }

    fn versions(&self) -> &'static [&'static rustls::SupportedProtocolVersion] {
        static TLS13_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
        if self.tls13_only {
            TLS13_ONLY
        } else {
            rustls::ALL_VERSIONS
        }
    }

    /// The server side: this certificate, and the client verification asked for.
    pub(crate) fn server_config(&self) -> Result<ServerConfig, String> {
        let (certs, key) = self.identity()?;
        let builder = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(self.versions())
            .map_err(|e| e.to_string())?;
        let builder = match (&self.trusted_ca, self.client_cert_auth && !self.auto) {
            (Some(ca), true) => {
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca)?), provider())
                        .build()
                        .map_err(|e| format!("{}: {e}", ca.display()))?;
                builder.with_client_cert_verifier(verifier)
            }
            (None, true) => return Err("client certificate auth needs a trusted CA file".into()),
            // Without client-cert-auth a CA still lets clients present certificates,
            // which name the user when they send no token.
            (Some(ca), false) if !self.auto => {
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca)?), provider())
                        .allow_unauthenticated()
                        .build()
                        .map_err(|e| format!("{}: {e}", ca.display()))?;
                builder.with_client_cert_verifier(verifier)
            }
            _ => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(certs, key)
            .map_err(|e| format!("{}: {e}", self.cert.display()))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }

    /// The client side towards peers: this certificate as identity, the peer CA as trust
    /// (auto TLS trusts whatever a peer presents, as etcd's does).
    pub(crate) fn client_config(&self) -> Result<ClientConfig, String> {
        let (certs, key) = self.identity()?;
        let builder = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(self.versions())
            .map_err(|e| e.to_string())?;
        let builder = match (&self.trusted_ca, self.auto) {
            (Some(ca), false) => builder.with_root_certificates(roots(ca)?),
            _ => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(peer_client::AnyServer::new())),
        };
        let mut config = builder
            .with_client_auth_cert(certs, key)
            .map_err(|e| format!("{}: {e}", self.cert.display()))?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(config)
    }

    fn identity(&self) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
        let certs = CertificateDer::pem_file_iter(&self.cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("{}: {e}", self.cert.display()))?;
        if certs.is_empty() {
            return Err(format!("{}: no certificate", self.cert.display()));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|e| format!("{}: {e}", self.key.display()))?;
        Ok((certs, key))
    }
}

#[allow(clippy::too_many_arguments)]
fn settings(
    config: &Config,
    wanted: bool,
    (cert, key, ca): (&Option<PathBuf>, &Option<PathBuf>, &Option<PathBuf>),
    client_cert_auth: bool,
    allowed_cn: Option<String>,
    auto: bool,
    side: &str,
) -> Result<Option<TlsSettings>, String> {
    if !wanted {
        return Ok(None);
    }
    let (cert, key, auto) = match (cert, key) {
        (Some(cert), Some(key)) => (cert.clone(), key.clone(), false),
        (None, None) if auto => {
            let (cert, key) = auto::generate(config, side)?;
            (cert, key, true)
        }
        _ => {
            let flags = if side == "peer" {
                "--peer-cert-file and --peer-key-file (or --peer-auto-tls)"
            } else {
                "--cert-file and --key-file (or --auto-tls)"
            };
            return Err(format!("https {side} URLs need {flags}"));
        }
    };
    if auto && client_cert_auth {
        tracing::warn!(
            side,
            "auto TLS certificates vouch for nobody; client certificate auth is ignored"
        );
    }
    Ok(Some(TlsSettings {
        cert,
        key,
        trusted_ca: ca.clone(),
        client_cert_auth,
        allowed_cn,
        auto,
        tls13_only: config.tls_min_version == "TLS1.3",
    }))
}

/// ring, named explicitly: no process-wide default provider is relied on.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(ca: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", ca.display()))?;
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!("{}: no CA certificate", ca.display()));
    }
    Ok(roots)
}

/// A configuration built from files, rebuilt when they change.
pub(crate) struct Reloading<T> {
    settings: TlsSettings,
    build: fn(&TlsSettings) -> Result<T, String>,
    state: Mutex<Loaded<T>>,
}

struct Loaded<T> {
    checked: Instant,
    stamps: Vec<Option<(SystemTime, u64)>>,
    current: Arc<T>,
}

impl<T> std::fmt::Debug for Reloading<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloading")
            .field("settings", &self.settings)
            .finish()
    }
}

impl<T> Reloading<T> {
    /// Builds the configuration once; an error here is a startup error.
    pub(crate) fn new(
        settings: TlsSettings,
        build: fn(&TlsSettings) -> Result<T, String>,
    ) -> Result<Reloading<T>, String> {
        let current = Arc::new(build(&settings)?);
        let stamps = stamps(&settings);
        Ok(Reloading {
            settings,
            build,
            state: Mutex::new(Loaded {
                checked: Instant::now(),
                stamps,
                current,
            }),
        })
    }

    pub(crate) fn settings(&self) -> &TlsSettings {
        &self.settings
    }

    /// The configuration as of the files now.
    pub(crate) fn current(&self) -> Arc<T> {
        let mut state = self.state.lock().expect("tls state poisoned");
        if state.checked.elapsed() >= RELOAD_CHECK_INTERVAL {
            state.checked = Instant::now();
            let now = stamps(&self.settings);
            if now != state.stamps {
                match (self.build)(&self.settings) {
                    Ok(config) => {
                        tracing::info!(cert = %self.settings.cert.display(), "TLS files changed; reloaded");
                        state.current = Arc::new(config);
                        state.stamps = now;
                    }
                    // Perhaps half-written: tried again at the next check.
                    Err(err) => {
                        tracing::warn!(%err, "TLS files changed but do not load; keeping the old ones")
                    }
                }
            }
        }
        state.current.clone()
    }
}

/// What tells that a file changed: its modification time and size.
fn stamps(settings: &TlsSettings) -> Vec<Option<(SystemTime, u64)>> {
    settings
        .files()
        .iter()
        .map(|f| {
            let meta = std::fs::metadata(f).ok()?;
            Some((meta.modified().ok()?, meta.len()))
        })
        .collect()
}

/// The common name of a DER certificate's subject.
pub(crate) fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let name = cert.subject().iter_common_name().next()?.as_str().ok()?;
    Some(name.to_string())
}
