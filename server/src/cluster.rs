//! Cluster identity and membership: member ids derived from the bootstrap flags, stored
//! in the node's data on first start and read back on every later start (as etcd ignores
//! the `--initial-*` flags once a member has data).

use ballast_proto::etcdserverpb::Member;
use ballast_store::Store;
use prost::Message;

use crate::config::Config;
use crate::error::{Error, Result};

const META_CLUSTER_ID: &[u8] = b"cluster_id";
const META_MEMBERS: &[u8] = b"members";

/// Who this node is and which cluster it belongs to.
#[derive(Debug, Clone)]
pub struct Membership {
    pub cluster_id: u64,
    pub member_id: u64,
    pub members: Vec<Member>,
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

/// A member id from its sorted peer URLs and the cluster token (etcd does the same with
/// SHA-1).
pub fn member_id(peer_urls: &[String], token: &str) -> u64 {
    let mut urls = peer_urls.to_vec();
    urls.sort();
    let joined = urls.join("");
    fnv1a(&[joined.as_bytes(), token.as_bytes()])
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
        member.id = member_id(&member.peer_urls, token);
    }
    Ok(members)
}

impl Membership {
    /// Reads the membership from the store, or founds it from the flags on first start.
    pub fn load_or_bootstrap(store: &Store, config: &Config) -> Result<Membership> {
        let stored_id = store.meta(META_CLUSTER_ID)?;
        let stored_members = store.meta(META_MEMBERS)?;
        let (cluster_id, mut members) = match (stored_id, stored_members) {
            (Some(id), Some(members)) => {
                let id = u64::from_be_bytes(
                    id.as_slice()
                        .try_into()
                        .map_err(|_| Error::Fatal("bad stored cluster id".into()))?,
                );
                let members = ballast_proto::etcdserverpb::MemberListResponse::decode(&members[..])
                    .map_err(|e| Error::Fatal(format!("bad stored members: {e}")))?
                    .members;
                (id, members)
            }
            _ => {
                let members = parse_initial_cluster(
                    &config.initial_cluster(),
                    &config.initial_cluster_token,
                )?;
                let mut ids: Vec<u64> = members.iter().map(|m| m.id).collect();
                ids.sort_unstable();
                let id_bytes: Vec<u8> = ids.iter().flat_map(|id| id.to_be_bytes()).collect();
                let cluster_id = fnv1a(&[&id_bytes, config.initial_cluster_token.as_bytes()]);
                let list = ballast_proto::etcdserverpb::MemberListResponse {
                    members: members.clone(),
                    ..Default::default()
                };
                store.put_meta(META_MEMBERS, &list.encode_to_vec())?;
                store.put_meta(META_CLUSTER_ID, &cluster_id.to_be_bytes())?;
                (cluster_id, members)
            }
        };
        let me = members
            .iter_mut()
            .find(|m| m.name == config.name)
            .ok_or_else(|| {
                Error::Config(format!(
                    "couldn't find local name {:?} in the initial cluster configuration",
                    config.name
                ))
            })?;
        me.client_urls = config.advertise_client_urls.clone();
        let member_id = me.id;
        Ok(Membership {
            cluster_id,
            member_id,
            members,
        })
    }

    /// Raft voters: every member that is not a learner.
    pub fn voters(&self) -> Vec<u64> {
        self.members
            .iter()
            .filter(|m| !m.is_learner)
            .map(|m| m.id)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_depend_on_urls_and_token_only() {
        let a = parse_initial_cluster("n1=http://a:2380,n2=http://b:2380", "t").unwrap();
        let b = parse_initial_cluster("n2=http://b:2380,n1=http://a:2380", "t").unwrap();
        assert_eq!(a[0].id, b[1].id);
        let c = parse_initial_cluster("n1=http://a:2380", "other").unwrap();
        assert_ne!(a[0].id, c[0].id);
        assert!(parse_initial_cluster("n1", "t").is_err());
        let multi = parse_initial_cluster("n1=http://a:1,n1=http://a:2", "t").unwrap();
        assert_eq!(multi.len(), 1);
        assert_eq!(multi[0].peer_urls.len(), 2);
    }
}
