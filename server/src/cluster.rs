//! Cluster identity and membership.
//!
//! Member ids derive from peer URLs and the cluster token, so every founding member
//! computes the same ids and cluster id from the same `--initial-cluster`. The members
//! are replicated state: changed only by applied raft entries, persisted by the store
//! with the applied index, and read back on every later start (as etcd ignores the
//! `--initial-*` flags once a member has data). A member joining an existing cluster
//! asks the members it was told about for the cluster id and member list.

use std::sync::RwLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ballast_proto::ballast::transport::raft_transport_client::RaftTransportClient;
use ballast_proto::ballast::transport::MembershipRequest;
use ballast_proto::etcdserverpb::Member;
use ballast_store::Store;

use crate::config::{ClusterState, Config};
use crate::error::{Error, Result};
use crate::tls::{peer_channel, PeerConnector};

/// How long a joining member waits for an existing member to describe the cluster.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Who this node is, which cluster it belongs to, and the current members.
#[derive(Debug)]
pub struct Cluster {
    pub cluster_id: u64,
    pub local_id: u64,
    members: RwLock<Vec<Member>>,
    /// Members removed from the cluster: their messages are refused.
    removed: RwLock<Vec<u64>>,
}

/// 64-bit FNV-1a: a stable hash, so every member derives the same ids from the same flags.
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &byte in *part {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        hash ^= 0xff;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash.max(1)
}

/// A member id from its sorted peer URLs, the cluster token and, for members added
/// later, the time of the addition (etcd does the same with SHA-1).
pub fn member_id(peer_urls: &[String], token: &str, added_at: Option<u64>) -> u64 {
    let mut urls = peer_urls.to_vec();
    urls.sort();
    let joined = urls.join("");
    let time = added_at.map(|t| t.to_be_bytes()).unwrap_or_default();
    fnv1a(&[joined.as_bytes(), token.as_bytes(), &time])
}

/// A fresh id for a member added through MemberAdd.
pub fn new_member_id(peer_urls: &[String], cluster_id: u64) -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    member_id(peer_urls, &cluster_id.to_string(), Some(nanos))
}

/// Parses `name=url,name=url,...` into members (a name may repeat for several URLs).
pub fn parse_initial_cluster(text: &str, token: &str) -> Result<Vec<Member>> {
    let mut members: Vec<Member> = Vec::new();
    for item in text.split(',').filter(|s| !s.is_empty()) {
        let (name, url) = item.split_once('=').ok_or_else(|| {
            Error::Config(format!("--initial-cluster entry {item:?} is not name=url"))
        })?;
        match members.iter_mut().find(|m| m.name == name) {
            Some(member) => member.peer_urls.push(url.to_string()),
            None => members.push(Member {
                name: name.to_string(),
                peer_urls: vec![url.to_string()],
                ..Default::default()
            }),
        }
    }
    if members.is_empty() {
        return Err(Error::Config("--initial-cluster is empty".into()));
    }
    for member in &mut members {
        member.id = member_id(&member.peer_urls, token, None);
    }
    Ok(members)
}

fn founding_cluster_id(members: &[Member], token: &str) -> u64 {
    let mut ids: Vec<u64> = members.iter().map(|m| m.id).collect();
    ids.sort_unstable();
    let id_bytes: Vec<u8> = ids.iter().flat_map(|id| id.to_be_bytes()).collect();
    fnv1a(&[&id_bytes, token.as_bytes()])
}

/// What starting the member found.
#[derive(Debug)]
pub struct Bootstrap {
    pub cluster: Cluster,
    /// Voters to seed raft with: only when founding a new cluster on empty storage.
    pub founding_voters: Option<Vec<u64>>,
}

impl Cluster {
    /// Reads the membership from the store, founds a new cluster from the flags, or
    /// joins an existing one by asking its members.
    pub async fn bootstrap(
        store: &Store,
        config: &Config,
        peer_tls: Option<&PeerConnector>,
    ) -> Result<Bootstrap> {
        if let Some(cluster_id) = store.cluster_id()? {
            let members = store.members()?;
            let removed = store.removed_members()?;
            let local_id = match local_member(&members, config) {
                Ok(id) => id,
                Err(_) if !removed.is_empty() => {
                    return Err(Error::Config(
                        "this member was removed from the cluster".into(),
                    ))
                }
                Err(err) => return Err(err),
            };
            let cluster = Cluster::new(cluster_id, local_id, members);
            cluster.set_removed(removed);
            return Ok(Bootstrap {
                cluster,
                founding_voters: None,
            });
        }
        let listed =
            parse_initial_cluster(&config.initial_cluster(), &config.initial_cluster_token)?;
        match config.initial_cluster_state {
            ClusterState::New => {
                let (cluster_id, local_id) = found(store, config, &listed)?;
                let voters = listed.iter().map(|m| m.id).collect();
                Ok(Bootstrap {
                    cluster: Cluster::new(cluster_id, local_id, listed),
                    founding_voters: Some(voters),
                })
            }
            ClusterState::Existing => {
                let (cluster_id, members) = fetch_membership(&listed, config, peer_tls).await?;
                let local_id = local_member(&members, config)?;
                store.set_cluster(cluster_id, &members)?;
                Ok(Bootstrap {
                    cluster: Cluster::new(cluster_id, local_id, members),
                    founding_voters: None,
                })
            }
        }
    }

    pub fn new(cluster_id: u64, local_id: u64, members: Vec<Member>) -> Cluster {
        Cluster {
            cluster_id,
            local_id,
            members: RwLock::new(members),
            removed: RwLock::new(Vec::new()),
        }
    }

    /// Marks members as removed.
    pub fn set_removed(&self, removed: Vec<u64>) {
        *self.removed.write().expect("removed lock poisoned") = removed;
    }

    pub fn is_removed(&self, id: u64) -> bool {
        self.removed
            .read()
            .expect("removed lock poisoned")
            .contains(&id)
    }

    pub fn members(&self) -> Vec<Member> {
        self.members.read().expect("members lock poisoned").clone()
    }

    pub fn member(&self, id: u64) -> Option<Member> {
        self.members
            .read()
            .expect("members lock poisoned")
            .iter()
            .find(|m| m.id == id)
            .cloned()
    }

    /// Replaces the member list with one just applied.
    pub fn set_members(&self, members: Vec<Member>) {
        *self.members.write().expect("members lock poisoned") = members;
    }

    pub fn is_learner(&self, id: u64) -> bool {
        self.member(id).is_some_and(|m| m.is_learner)
    }
}

/// This node's member: by name, or (for a member added by MemberAdd, which has no name
/// until it publishes one) by its advertised peer URLs.
/// Records the cluster `listed` (from `--initial-cluster`) founds, with this member in
/// it; returns the cluster id and this member's id. Used at a new cluster's first start
/// and by `ballastutl snapshot restore`.
pub(crate) fn found(store: &Store, config: &Config, listed: &[Member]) -> Result<(u64, u64)> {
    let cluster_id = founding_cluster_id(listed, &config.initial_cluster_token);
    let local_id = local_member(listed, config)?;
    store.set_cluster(cluster_id, listed)?;
    Ok((cluster_id, local_id))
}

fn local_member(members: &[Member], config: &Config) -> Result<u64> {
    let mut urls = config.initial_advertise_peer_urls.clone();
    urls.sort();
    let by_urls = |m: &&Member| {
        let mut theirs = m.peer_urls.clone();
        theirs.sort();
        theirs == urls
    };
    members
        .iter()
        .find(|m| m.name == config.name && !m.name.is_empty())
        .or_else(|| members.iter().find(by_urls))
        .map(|m| m.id)
        .ok_or_else(|| {
            Error::Config(format!(
                "couldn't find local name {:?} (peer URLs {:?}) in the cluster configuration",
                config.name, config.initial_advertise_peer_urls
            ))
        })
}

/// Asks the other listed members for the cluster's id and members.
async fn fetch_membership(
    listed: &[Member],
    config: &Config,
    peer_tls: Option<&PeerConnector>,
) -> Result<(u64, Vec<Member>)> {
    let mut failures = Vec::new();
    let deadline = tokio::time::Instant::now() + JOIN_TIMEOUT;
    while tokio::time::Instant::now() < deadline {
        for member in listed.iter().filter(|m| m.name != config.name) {
            for url in &member.peer_urls {
                let urls = std::slice::from_ref(url);
                let Some(channel) = peer_channel(urls, peer_tls, Duration::from_secs(2)) else {
                    continue;
                };
                let response = async {
                    RaftTransportClient::new(channel)
                        .membership(MembershipRequest {})
                        .await
                        .map_err(|e| e.message().to_string())
                }
                .await;
                match response {
                    Ok(response) => {
                        let response = response.into_inner();
                        return Ok((response.cluster_id, response.members));
                    }
                    Err(err) => failures.push(format!("{url}: {err}")),
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(Error::Config(format!(
        "cannot join: no existing member answered ({})",
        failures.join("; ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_depend_on_urls_and_token_only() {
        let a = parse_initial_cluster("n1=http://a:2380,n2=http://b:2380", "t").unwrap();
        let b = parse_initial_cluster("n2=http://b:2380,n1=http://a:2380", "t").unwrap();
        assert_eq!(a[0].id, b[1].id);
        assert_eq!(founding_cluster_id(&a, "t"), founding_cluster_id(&b, "t"));
        let c = parse_initial_cluster("n1=http://a:2380", "other").unwrap();
        assert_ne!(a[0].id, c[0].id);
        assert!(parse_initial_cluster("n1", "t").is_err());
        let multi = parse_initial_cluster("n1=http://a:1,n1=http://a:2", "t").unwrap();
        assert_eq!(multi.len(), 1);
        assert_eq!(multi[0].peer_urls.len(), 2);
    }
}
