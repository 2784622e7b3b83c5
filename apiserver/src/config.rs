//! Flags, with kube-apiserver's names and defaults.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// ballast-apiserver: a Kubernetes-style API server keeping its objects in Ballast (or any
/// etcd v3).
#[derive(Debug, Clone, Parser)]
#[command(name = "ballast-apiserver", version)]
pub struct Config {
    /// The store's client URLs, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:2379")]
    pub etcd_servers: Vec<String>,
    /// The key prefix every object is kept under.
    #[arg(long, default_value = "/registry")]
    pub etcd_prefix: String,
    /// CA file to verify the store's certificate with.
    #[arg(long)]
    pub etcd_cafile: Option<PathBuf>,
    /// Client certificate to present to the store.
    #[arg(long)]
    pub etcd_certfile: Option<PathBuf>,
    /// Key of --etcd-certfile.
    #[arg(long)]
    pub etcd_keyfile: Option<PathBuf>,
    /// Address to serve HTTPS on.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind_address: IpAddr,
    /// Port to serve HTTPS on (0: any free port, printed at start).
    #[arg(long, default_value_t = 6443)]
    pub secure_port: u16,
    /// Serving certificate (PEM); without one, a self-signed pair is made under --cert-dir.
    #[arg(long)]
    pub tls_cert_file: Option<PathBuf>,
    /// Key of --tls-cert-file.
    #[arg(long)]
    pub tls_private_key_file: Option<PathBuf>,
    /// Where the self-signed serving pair is kept (apiserver.crt, apiserver.key).
    #[arg(long, default_value = "/var/run/kubernetes")]
    pub cert_dir: PathBuf,
    /// CA whose client certificates authenticate users (CN: user, O: groups).
    #[arg(long)]
    pub client_ca_file: Option<PathBuf>,
    /// Static bearer tokens: CSV lines `token,user,uid[,"group1,group2"]`.
    #[arg(long)]
    pub token_auth_file: Option<PathBuf>,
    /// Requests without credentials run as `system:anonymous` (else they are a 401).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub anonymous_auth: bool,
    /// Authorizers, asked in order: AlwaysAllow, AlwaysDeny, RBAC.
    #[arg(long, default_value = "AlwaysAllow")]
    pub authorization_mode: String,
    /// Key that signs service account tokens (PEM, EC P-256 or RSA); generated under
    /// --cert-dir when absent.
    #[arg(long)]
    pub service_account_signing_key_file: Option<PathBuf>,
    /// More public keys that verify service account tokens (PEM).
    #[arg(long)]
    pub service_account_key_file: Vec<PathBuf>,
    /// The issuer of service account tokens (`iss`).
    #[arg(long, default_value = "https://kubernetes.default.svc.cluster.local")]
    pub service_account_issuer: String,
    /// Audiences the API accepts in service account tokens (default: the issuer).
    #[arg(long, value_delimiter = ',')]
    pub api_audiences: Vec<String>,
    /// Where audit events go, one JSON line each (`-`: standard output).
    #[arg(long)]
    pub audit_log_path: Option<PathBuf>,
    /// The audit policy (kube's `audit.k8s.io/v1` Policy YAML).
    #[arg(long)]
    pub audit_policy_file: Option<PathBuf>,
    /// Admission plugins to turn on besides kube's defaults (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub enable_admission_plugins: Vec<String>,
    /// Admission plugins to turn off (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub disable_admission_plugins: Vec<String>,
    /// How long events are kept (a store lease per event).
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub event_ttl: Duration,
}

/// Go's duration syntax for the flags that take one: `1h`, `30m`, `90s`, `1h30m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let mut total = 0f64;
    let mut number = String::new();
    let mut chars = text.chars().peekable();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let mut unit = c.to_string();
        if c == 'm' && chars.peek() == Some(&'s') {
            unit.push(chars.next().unwrap_or('s'));
        }
        let value: f64 = number
            .parse()
            .map_err(|_| format!("invalid duration {text:?}"))?;
        number.clear();
        total += value
            * match unit.as_str() {
                "h" => 3600.0,
                "m" => 60.0,
                "s" => 1.0,
                "ms" => 0.001,
                _ => return Err(format!("unknown unit {unit:?} in duration {text:?}")),
            };
    }
    if !number.is_empty() {
        return Err(format!("missing unit in duration {text:?}"));
    }
    Ok(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_take_kube_names_and_defaults() {
        let c = Config::parse_from([
            "ballast-apiserver",
            "--etcd-servers",
            "http://a:1,http://b:2",
        ]);
        assert_eq!(c.etcd_servers, ["http://a:1", "http://b:2"]);
        assert_eq!(c.etcd_prefix, "/registry");
        assert_eq!(c.secure_port, 6443);
        assert_eq!(c.event_ttl, Duration::from_secs(3600));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("5").is_err());
    }
}
