//! The sockets a node serves on, bound before [`crate::run`] is called (mini-redis's
//! `run(listener, shutdown)` shape): a caller that binds port 0 knows its port before the
//! node starts, and nothing can take it in between.
//!
//! The binary binds the URLs of `--listen-client-urls` and `--listen-peer-urls`, or adopts
//! sockets its parent bound and passed down (systemd's socket activation protocol,
//! `LISTEN_FDS`): an inherited socket serves the URL whose address it is bound to.

use std::net::{SocketAddr, TcpListener};

use crate::config::{socket_addrs, Config};
use crate::error::{Error, Result};

/// Bound client and peer sockets, one per distinct address of the URL flags.
#[derive(Debug)]
pub struct Listeners {
    pub client: Vec<Listener>,
    pub peer: Vec<Listener>,
    /// `--listen-metrics-urls`.
    pub metrics: Vec<Listener>,
}

/// One bound socket and whether its URL asked for TLS.
#[derive(Debug)]
pub struct Listener {
    pub socket: TcpListener,
    pub https: bool,
}

impl Listeners {
    /// Binds every listen URL of `config`.
    pub fn bind(config: &Config) -> Result<Listeners> {
        Listeners::adopt(config, Vec::new())
    }

    /// Binds every listen URL of `config`, using an `inherited` socket for a URL whose
    /// address it is bound to. An inherited socket no URL names is an error: it was
    /// passed for a reason.
    pub fn adopt(config: &Config, inherited: Vec<TcpListener>) -> Result<Listeners> {
        let mut inherited = inherited
            .into_iter()
            .map(|l| Ok((l.local_addr()?, l)))
            .collect::<Result<Vec<(SocketAddr, TcpListener)>>>()?;
        let client = bind_urls(&config.listen_client_urls, &mut inherited)?;
        let peer = bind_urls(&config.listen_peer_urls, &mut inherited)?;
        let metrics = bind_urls(&config.listen_metrics_urls, &mut inherited)?;
        if let Some((address, _)) = inherited.first() {
            return Err(Error::Config(format!(
                "an inherited socket on {address} matches no listen URL"
            )));
        }
        Ok(Listeners {
            client,
            peer,
            metrics,
        })
    }

    /// Adopts the sockets of `LISTEN_FDS`, if any, and binds the rest.
    pub fn from_env(config: &Config) -> Result<Listeners> {
        let mut fds = listenfd::ListenFd::from_env();
        let mut inherited = Vec::new();
        for index in 0..fds.len() {
            if let Some(listener) = fds.take_tcp_listener(index)? {
                inherited.push(listener);
            }
        }
        Listeners::adopt(config, inherited)
    }
}

/// One socket per distinct address of `urls` (etcd's defaults name `localhost`, which
/// is bound once), preferring IPv4 where a name resolves to both.
fn bind_urls(
    urls: &[String],
    inherited: &mut Vec<(SocketAddr, TcpListener)>,
) -> Result<Vec<Listener>> {
    let mut bound: Vec<SocketAddr> = Vec::new();
    let mut listeners = Vec::new();
    for url in urls {
        let addrs = socket_addrs(url).map_err(|e| Error::Config(e.0))?;
        let addr = addrs
            .iter()
            .find(|a| a.is_ipv4())
            .copied()
            .unwrap_or(addrs[0]);
        if bound.contains(&addr) {
            continue;
        }
        let listener = match inherited.iter().position(|(a, _)| *a == addr) {
            Some(at) => inherited.swap_remove(at).1,
            None => TcpListener::bind(addr)
                .map_err(|e| Error::Config(format!("listen on {url}: {e}")))?,
        };
        listener.set_nonblocking(true)?;
        bound.push(addr);
        listeners.push(Listener {
            socket: listener,
            https: url.starts_with("https://"),
        });
    }
    Ok(listeners)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn config_with(client: &str, peer: &str) -> Config {
        Config::parse_from([
            "ballast",
            "--listen-client-urls",
            client,
            "--listen-peer-urls",
            peer,
        ])
    }

    #[test]
    fn inherited_sockets_serve_the_urls_they_are_bound_to() {
        let client = TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = TcpListener::bind("127.0.0.1:0").unwrap();
        let (client_addr, peer_addr) = (client.local_addr().unwrap(), peer.local_addr().unwrap());
        let config = config_with(
            &format!("http://{client_addr}"),
            &format!("http://{peer_addr}"),
        );
        // Passed in any order, each lands where its address says.
        let listeners = Listeners::adopt(&config, vec![peer, client]).unwrap();
        assert_eq!(
            listeners.client[0].socket.local_addr().unwrap(),
            client_addr
        );
        assert_eq!(listeners.peer[0].socket.local_addr().unwrap(), peer_addr);
        assert!(!listeners.client[0].https);

        let stray = TcpListener::bind("127.0.0.1:0").unwrap();
        let config = config_with("http://127.0.0.1:0", "http://127.0.0.1:0");
        assert!(Listeners::adopt(&config, vec![stray]).is_err());
    }
}
