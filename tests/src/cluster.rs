//! A cluster of `ballast` processes on loopback.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ballast_client::{Client, ConnectOptions};

use crate::{bind_port, port_of, Node, WAIT};

/// A cluster of `ballast` processes on loopback.
#[derive(Debug)]
pub struct TestCluster {
    pub dir: PathBuf,
    pub nodes: Vec<Node>,
}

impl TestCluster {
    /// Starts `size` members named n0, n1, ... and waits until every one serves.
    pub fn start(dir: &Path, size: usize, extra_args: &[&str]) -> TestCluster {
        TestCluster::start_scheme(dir, size, "http", extra_args)
    }

    /// [`TestCluster::start`] with peer URLs of `peer_scheme` ("https" for peer TLS).
    pub fn start_scheme(
        dir: &Path,
        size: usize,
        peer_scheme: &str,
        extra_args: &[&str],
    ) -> TestCluster {
        TestCluster::start_full(dir, size, peer_scheme, &[], extra_args)
    }

    /// [`TestCluster::start`] with `env` in every member's environment.
    pub fn start_env(
        dir: &Path,
        size: usize,
        env: &[(&str, &str)],
        extra_args: &[&str],
    ) -> TestCluster {
        TestCluster::start_full(dir, size, "http", env, extra_args)
    }

    fn start_full(
        dir: &Path,
        size: usize,
        peer_scheme: &str,
        env: &[(&str, &str)],
        extra_args: &[&str],
    ) -> TestCluster {
        std::fs::create_dir_all(dir).expect("cluster directory");
        let peers: Vec<TcpListener> = (0..size).map(|_| bind_port()).collect();
        let initial = peers
            .iter()
            .enumerate()
            .map(|(i, peer)| format!("n{i}={peer_scheme}://127.0.0.1:{}", port_of(peer)))
            .collect::<Vec<_>>()
            .join(",");
        let mut nodes: Vec<Node> = peers
            .into_iter()
            .enumerate()
            .map(|(i, peer)| {
                let mut node = Node::new(
                    &dir.join(format!("n{i}")),
                    &format!("n{i}"),
                    peer,
                    Some(initial.clone()),
                    extra_args,
                );
                node.peer_scheme = peer_scheme.to_string();
                node.env = env
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                node
            })
            .collect();
        for node in &mut nodes {
            node.spawn();
        }
        for node in &mut nodes {
            if let Err(log) = node.wait_ready() {
                panic!("member {} did not start:\n{log}", node.name);
            }
        }
        TestCluster {
            dir: dir.to_path_buf(),
            nodes,
        }
    }

    /// Client endpoints of the running members.
    pub fn endpoints(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.is_running())
            .map(|n| n.endpoint())
            .collect()
    }

    /// A client of every running member.
    pub async fn client(&self) -> Client {
        Client::connect(self.endpoints(), ConnectOptions::default())
            .await
            .expect("connect to the cluster")
    }

    /// Index of the member that leads, as the running members agree; waits for one.
    pub async fn leader(&self) -> usize {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let mut ids = Vec::new();
            let mut leaders = Vec::new();
            for node in self.nodes.iter().filter(|n| n.is_running()) {
                let Ok(client) =
                    Client::connect([node.endpoint()], ConnectOptions::default()).await
                else {
                    continue;
                };
                if let Ok(status) = client.status().await {
                    ids.push((status.header.member_id, node.name.clone()));
                    leaders.push(status.leader);
                }
            }
            if let Some(&leader) = leaders.first() {
                if leader != 0 && leaders.iter().all(|l| *l == leader) {
                    if let Some((_, name)) = ids.iter().find(|(id, _)| *id == leader) {
                        return self
                            .nodes
                            .iter()
                            .position(|n| &n.name == name)
                            .expect("known name");
                    }
                }
            }
            assert!(tokio::time::Instant::now() < deadline, "no agreed leader");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
