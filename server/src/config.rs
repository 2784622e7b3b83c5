//! Command-line flags, with etcd's names, defaults and `ETCD_*` environment variables,
//! so a deployment written for etcd starts Ballast unchanged.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::limits::{REQUEST_BYTES_LIMIT, REQUEST_BYTES_MAX_DEFAULT};

/// etcd's `--max-txn-ops` default.
pub const TXN_OPS_MAX_DEFAULT: usize = 128;

/// Whether this node founds a cluster or joins an existing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClusterState {
    New,
    Existing,
}

/// Log verbosity, with etcd's level names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
    Panic,
    Fatal,
}

/// A Ballast node's configuration.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "ballast",
    version,
    about = "Ballast: a strongly consistent key-value store that speaks the etcd v3 API"
)]
pub struct Config {
    /// Human-readable name for this member.
    #[arg(long, env = "ETCD_NAME", default_value = "default")]
    pub name: String,

    /// Path to the data directory (default: <name>.etcd).
    #[arg(long, env = "ETCD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// URLs to listen on for client traffic (gRPC and HTTP on the same port).
    #[arg(
        long,
        env = "ETCD_LISTEN_CLIENT_URLS",
        default_value = "http://localhost:2379",
        value_delimiter = ','
    )]
    pub listen_client_urls: Vec<String>,

    /// More URLs to serve `/metrics` and `/health` on (http, or https with the client
    /// certificate).
    #[arg(long, env = "ETCD_LISTEN_METRICS_URLS", value_delimiter = ',')]
    pub listen_metrics_urls: Vec<String>,

    /// Client URLs of this member, as advertised to the cluster and to clients.
    #[arg(
        long,
        env = "ETCD_ADVERTISE_CLIENT_URLS",
        default_value = "http://localhost:2379",
        value_delimiter = ','
    )]
    pub advertise_client_urls: Vec<String>,

    /// URLs to listen on for peer traffic.
    #[arg(
        long,
        env = "ETCD_LISTEN_PEER_URLS",
        default_value = "http://localhost:2380",
        value_delimiter = ','
    )]
    pub listen_peer_urls: Vec<String>,

    /// Peer URLs of this member, as advertised to the rest of the cluster.
    #[arg(
        long,
        env = "ETCD_INITIAL_ADVERTISE_PEER_URLS",
        default_value = "http://localhost:2380",
        value_delimiter = ','
    )]
    pub initial_advertise_peer_urls: Vec<String>,

    /// Initial cluster configuration for bootstrapping: name=peer-url,... (default:
    /// <name>=<initial-advertise-peer-urls>).
    #[arg(long, env = "ETCD_INITIAL_CLUSTER")]
    pub initial_cluster: Option<String>,

    /// Initial cluster state: new or existing.
    #[arg(
        long,
        env = "ETCD_INITIAL_CLUSTER_STATE",
        value_enum,
        default_value = "new"
    )]
    pub initial_cluster_state: ClusterState,

    /// Initial cluster token, so that clusters with the same peer URLs stay apart.
    #[arg(
        long,
        env = "ETCD_INITIAL_CLUSTER_TOKEN",
        default_value = "etcd-cluster"
    )]
    pub initial_cluster_token: String,

    /// Maximum client request size in bytes the server will accept.
    #[arg(long, env = "ETCD_MAX_REQUEST_BYTES", default_value_t = REQUEST_BYTES_MAX_DEFAULT)]
    pub max_request_bytes: u32,

    /// Maximum number of operations permitted in a transaction.
    #[arg(long, env = "ETCD_MAX_TXN_OPS", default_value_t = TXN_OPS_MAX_DEFAULT)]
    pub max_txn_ops: usize,

    /// Check data corruption before serving any client/peer traffic.
    #[arg(
        long,
        env = "ETCD_EXPERIMENTAL_INITIAL_CORRUPT_CHECK",
        default_value_t = false
    )]
    pub experimental_initial_corrupt_check: bool,

    /// Duration of time between cluster corruption check passes (0: never).
    #[arg(long, env = "ETCD_EXPERIMENTAL_CORRUPT_CHECK_TIME", default_value = "0s", value_parser = parse_duration)]
    pub experimental_corrupt_check_time: Duration,

    /// Raise alarms when backend size exceeds the given quota. 0 means use the default
    /// quota (2 GiB); a negative value, no quota.
    #[arg(
        long,
        env = "ETCD_QUOTA_BACKEND_BYTES",
        default_value_t = 0,
        allow_hyphen_values = true
    )]
    pub quota_backend_bytes: i64,

    /// Time (in milliseconds) of a heartbeat interval.
    #[arg(long, env = "ETCD_HEARTBEAT_INTERVAL", default_value_t = 100)]
    pub heartbeat_interval: u64,

    /// Time (in milliseconds) for an election to timeout.
    #[arg(long, env = "ETCD_ELECTION_TIMEOUT", default_value_t = 1000)]
    pub election_timeout: u64,

    /// Not in etcd: the leader answers linearizable reads without a round to the
    /// followers while it holds a lease (90% of an election timeout less one heartbeat,
    /// from a round a quorum confirmed). Safe while the members' clocks run at rates
    /// within 10% of each other; set it on every member (each then refuses votes for an
    /// election timeout after it starts).
    #[arg(long, env = "BALLAST_EXPERIMENTAL_LEADER_LEASE_READS", default_value_t = false, num_args = 0..=1,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub experimental_leader_lease_reads: bool,

    /// Path to the client server TLS certificate file.
    #[arg(long, env = "ETCD_CERT_FILE")]
    pub cert_file: Option<PathBuf>,
    /// Path to the client server TLS key file.
    #[arg(long, env = "ETCD_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// Path to the client server TLS trusted CA certificate file.
    #[arg(long, env = "ETCD_TRUSTED_CA_FILE")]
    pub trusted_ca_file: Option<PathBuf>,
    /// Require client certificates signed by --trusted-ca-file; a request without a token is the certificate's CN.
    #[arg(long, env = "ETCD_CLIENT_CERT_AUTH", default_value_t = false, num_args = 0..=1,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub client_cert_auth: bool,
    /// Client TLS with a generated self-signed certificate.
    #[arg(long, env = "ETCD_AUTO_TLS", default_value_t = false, num_args = 0..=1,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub auto_tls: bool,
    /// Path to the peer server TLS certificate file (also presented to peers as a client).
    #[arg(long, env = "ETCD_PEER_CERT_FILE")]
    pub peer_cert_file: Option<PathBuf>,
    /// Path to the peer server TLS key file.
    #[arg(long, env = "ETCD_PEER_KEY_FILE")]
    pub peer_key_file: Option<PathBuf>,
    /// Path to the peer server TLS trusted CA file.
    #[arg(long, env = "ETCD_PEER_TRUSTED_CA_FILE")]
    pub peer_trusted_ca_file: Option<PathBuf>,
    /// Require peers to present certificates signed by --peer-trusted-ca-file.
    #[arg(long, env = "ETCD_PEER_CLIENT_CERT_AUTH", default_value_t = false, num_args = 0..=1,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub peer_client_cert_auth: bool,
    /// Peer TLS with generated self-signed certificates.
    #[arg(long, env = "ETCD_PEER_AUTO_TLS", default_value_t = false, num_args = 0..=1,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub peer_auto_tls: bool,
    /// Allowed CN of peer certificates (with --peer-client-cert-auth).
    #[arg(long, env = "ETCD_PEER_CERT_ALLOWED_CN")]
    pub peer_cert_allowed_cn: Option<String>,

    /// Minimum TLS version: TLS1.2 or TLS1.3.
    #[arg(long, env = "ETCD_TLS_MIN_VERSION", default_value = "TLS1.2",
          value_parser = ["TLS1.2", "TLS1.3"])]
    pub tls_min_version: String,

    /// Validity of --auto-tls and --peer-auto-tls certificates, in years.
    #[arg(long, env = "ETCD_SELF_SIGNED_CERT_VALIDITY", default_value_t = 1)]
    pub self_signed_cert_validity: u32,

    /// Auth token kind: `simple`, or `jwt,pub-key=<path>,priv-key=<path>,sign-method=<alg>,ttl=<duration>`.
    #[arg(long, env = "ETCD_AUTH_TOKEN", default_value = "simple")]
    pub auth_token: String,

    /// The bcrypt cost of hashing passwords (4 to 31).
    #[arg(long, env = "ETCD_BCRYPT_COST", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(4..=31))]
    pub bcrypt_cost: u32,

    /// Time (in seconds) of a simple auth token's life.
    #[arg(long, env = "ETCD_AUTH_TOKEN_TTL", default_value_t = 300)]
    pub auth_token_ttl: u64,

    /// Number of applied entries after which the raft log is truncated.
    #[arg(long, env = "ETCD_SNAPSHOT_COUNT", default_value_t = 100_000)]
    pub snapshot_count: u64,

    /// Applied entries kept in the raft log when it is truncated, so a follower slightly
    /// behind catches up from the log instead of needing a snapshot.
    #[arg(
        long,
        env = "ETCD_EXPERIMENTAL_SNAPSHOT_CATCHUP_ENTRIES",
        default_value_t = 5000
    )]
    pub experimental_snapshot_catchup_entries: u64,

    /// Maximum concurrent streams that each client can open at a time (etcd's default:
    /// no limit in practice).
    #[arg(long, env = "ETCD_MAX_CONCURRENT_STREAMS", default_value_t = u32::MAX)]
    pub max_concurrent_streams: u32,

    /// Minimum interval duration that a client should wait before pinging server. Accepted
    /// for etcd's command lines; the HTTP/2 server does not police client pings.
    #[arg(long, env = "ETCD_GRPC_KEEPALIVE_MIN_TIME", default_value = "5s", value_parser = parse_duration)]
    pub grpc_keepalive_min_time: Duration,

    /// Frequency duration of server-to-client ping to check if a connection is alive.
    #[arg(long, env = "ETCD_GRPC_KEEPALIVE_INTERVAL", default_value = "2h", value_parser = parse_duration)]
    pub grpc_keepalive_interval: Duration,

    /// Additional duration of wait before closing a non-responsive connection.
    #[arg(long, env = "ETCD_GRPC_KEEPALIVE_TIMEOUT", default_value = "20s", value_parser = parse_duration)]
    pub grpc_keepalive_timeout: Duration,

    /// Duration of the periodic watch progress notification (e.g. 10m, 30s, 500ms).
    #[arg(long, env = "ETCD_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL", default_value = "10m", value_parser = parse_duration)]
    pub experimental_watch_progress_notify_interval: Duration,

    /// Serve test-only HTTP endpoints on the client port (e.g. to cut a member off from a
    /// peer). Never enable in production.
    #[arg(long, env = "BALLAST_EXPERIMENTAL_TEST_HOOKS", default_value_t = false)]
    pub experimental_test_hooks: bool,

    /// Log level: debug, info, warn, error, panic or fatal.
    #[arg(long, env = "ETCD_LOG_LEVEL", value_enum, default_value = "info")]
    pub log_level: LogLevel,
}

/// A flag value that does not make sense.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Checks what clap cannot: relations between flags and URL syntax.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.heartbeat_interval == 0 {
            return Err(ConfigError("--heartbeat-interval must be positive".into()));
        }
        if self.election_timeout < 5 * self.heartbeat_interval {
            return Err(ConfigError(format!(
                "--election-timeout[{}ms] should be at least as 5 times as --heartbeat-interval[{}ms]",
                self.election_timeout, self.heartbeat_interval
            )));
        }
        if self.max_request_bytes as usize > REQUEST_BYTES_LIMIT {
            return Err(ConfigError(format!(
                "--max-request-bytes[{}] must be at most {}: a request must fit in one peer message",
                self.max_request_bytes,
                REQUEST_BYTES_LIMIT
            )));
        }
        if self.max_txn_ops == 0 {
            return Err(ConfigError("--max-txn-ops must be positive".into()));
        }
        for url in self
            .listen_client_urls
            .iter()
            .chain(&self.listen_peer_urls)
            .chain(&self.listen_metrics_urls)
        {
            socket_addrs(url)?;
        }
        let https = |urls: &[String]| urls.iter().any(|u| u.starts_with("https://"));
        let files = |cert: &Option<PathBuf>, key: &Option<PathBuf>| cert.is_some() && key.is_some();
        if https(&self.listen_client_urls)
            && !files(&self.cert_file, &self.key_file)
            && !self.auto_tls
        {
            return Err(ConfigError(
                "https client URLs need --cert-file and --key-file (or --auto-tls)".into(),
            ));
        }
        if https(&self.listen_peer_urls)
            && !files(&self.peer_cert_file, &self.peer_key_file)
            && !self.peer_auto_tls
        {
            return Err(ConfigError(
                "https peer URLs need --peer-cert-file and --peer-key-file (or --peer-auto-tls)"
                    .into(),
            ));
        }
        Ok(())
    }

    pub fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("{}.etcd", self.name)))
    }

    /// The `--initial-cluster` value, or this member alone.
    pub fn initial_cluster(&self) -> String {
        self.initial_cluster.clone().unwrap_or_else(|| {
            self.initial_advertise_peer_urls
                .iter()
                .map(|url| format!("{}={url}", self.name))
                .collect::<Vec<_>>()
                .join(",")
        })
    }

    /// Raft ticks in an election timeout (one tick per heartbeat interval).
    pub fn election_ticks(&self) -> usize {
        (self.election_timeout / self.heartbeat_interval) as usize
    }

    /// etcd's request timeout: 5 s plus two election timeouts.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(5) + 2 * Duration::from_millis(self.election_timeout)
    }

    /// The shortest lease TTL granted, in seconds: 1.5 election timeouts, rounded up,
    /// so a lease survives a leader election.
    pub fn min_lease_ttl(&self) -> i64 {
        let millis = (3 * self.election_ticks() as u64 / 2) * self.heartbeat_interval;
        millis.div_ceil(1000) as i64
    }
}

/// Resolves `http://host:port` or `https://host:port` to socket addresses.
pub fn socket_addrs(url: &str) -> Result<Vec<SocketAddr>, ConfigError> {
    let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    else {
        return Err(ConfigError(format!(
            "URL scheme must be http or https: {url}"
        )));
    };
    let host_port = rest.trim_end_matches('/');
    let addrs: Vec<SocketAddr> = host_port
        .to_socket_addrs()
        .map_err(|e| ConfigError(format!("{url}: {e}")))?
        .collect();
    if addrs.is_empty() {
        return Err(ConfigError(format!("{url}: resolves to no address")));
    }
    Ok(addrs)
}

/// Parses a Go-style duration: a number with unit ns, us, ms, s, m or h (e.g. 10m, 1.5s).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("missing unit in duration {text:?}"))?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?}"))?;
    let seconds = match unit {
        "ns" => number / 1e9,
        "us" | "µs" => number / 1e6,
        "ms" => number / 1e3,
        "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => return Err(format!("unknown unit {unit:?} in duration {text:?}")),
    };
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Config {
        Config::try_parse_from(std::iter::once("ballast").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn defaults_match_etcd() {
        let c = parse(&[]);
        assert_eq!(c.name, "default");
        assert_eq!(c.data_dir(), PathBuf::from("default.etcd"));
        assert_eq!(c.max_request_bytes, 1572864);
        assert_eq!(c.max_txn_ops, 128);
        assert_eq!(c.max_concurrent_streams, u32::MAX);
        assert_eq!(c.grpc_keepalive_min_time, Duration::from_secs(5));
        assert_eq!(c.grpc_keepalive_interval, Duration::from_secs(2 * 3600));
        assert_eq!(c.grpc_keepalive_timeout, Duration::from_secs(20));
        assert_eq!(c.initial_cluster(), "default=http://localhost:2380");
        assert_eq!(c.initial_cluster_token, "etcd-cluster");
        assert_eq!(c.min_lease_ttl(), 2);
        assert_eq!(c.request_timeout(), Duration::from_secs(7));
        c.validate().unwrap();
    }

    #[test]
    fn unknown_flags_and_bad_values_are_errors() {
        assert!(Config::try_parse_from(["ballast", "--no-such-flag"]).is_err());
        assert!(Config::try_parse_from(["ballast", "--max-txn-ops", "many"]).is_err());
        let c = parse(&["--election-timeout", "200", "--heartbeat-interval", "100"]);
        assert!(c.validate().is_err());
        let c = parse(&["--listen-client-urls", "https://127.0.0.1:2379"]);
        assert!(c.validate().is_err(), "https without certificate files");
        let c = parse(&[
            "--listen-client-urls",
            "https://127.0.0.1:2379",
            "--auto-tls",
        ]);
        c.validate().unwrap();
        let limit = crate::limits::REQUEST_BYTES_LIMIT;
        let c = parse(&["--max-request-bytes", &limit.to_string()]);
        c.validate().unwrap();
        let c = parse(&["--max-request-bytes", &(limit + 1).to_string()]);
        assert!(c.validate().is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("200ms").unwrap(), Duration::from_millis(200));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("10x").is_err());
    }
}
