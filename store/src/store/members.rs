//! The member list, the removed members and the cluster id, kept in `meta` beside the
//! data so a snapshot carries them and they change only through applied entries.
//!
//! How each membership entry changes the list is decided here: a member's announced
//! attributes, new peer URLs, and raft configuration changes (whose raft half, the new
//! ConfState, the driver obtains from raft-rs and hands in).

use ballast_proto::etcdserverpb::{Member, MemberListResponse, MemberUpdateRequest};
use prost::Message as _;
use raft::eraftpb::{ConfChangeType, ConfChangeV2, ConfState};
use rocksdb::WriteBatch;

use super::Store;
use crate::backend::{meta, raft_state, Cf};
use crate::error::{Error, Result};
use crate::record::{decode_u64, encode_u64};

/// A new member list, ready to be written with the entry that made it.
#[derive(Debug)]
pub(super) struct MemberChange<'a> {
    pub(super) members: Vec<Member>,
    /// The raft configuration after a conf change; None for attribute and URL updates.
    pub(super) conf_state: Option<&'a ConfState>,
    /// The member a conf change removed.
    pub(super) removed: Option<u64>,
}

impl Store {
    /// Ids of members removed from the cluster.
    pub fn removed_members(&self) -> Result<Vec<u64>> {
        let list = self
            .backend
            .get(Cf::Meta, meta::REMOVED)?
            .unwrap_or_default();
        list.chunks(8).map(decode_u64).collect()
    }

    /// The members, as last applied (or bootstrapped).
    pub fn members(&self) -> Result<Vec<Member>> {
        match self.backend.get(Cf::Meta, meta::MEMBERS)? {
            Some(bytes) => Ok(MemberListResponse::decode(&bytes[..])?.members),
            None => Ok(Vec::new()),
        }
    }

    /// The cluster id, once the cluster was founded or joined.
    pub fn cluster_id(&self) -> Result<Option<u64>> {
        self.backend.get_u64(Cf::Meta, meta::CLUSTER_ID)
    }

    /// Records the cluster this node founds or joins, durably, before raft starts.
    pub fn set_cluster(&self, cluster_id: u64, members: &[Member]) -> Result<()> {
        let mut batch = WriteBatch::default();
        put_members(self, &mut batch, members);
        batch.put_cf(
            self.backend.cf(Cf::Meta),
            meta::CLUSTER_ID,
            encode_u64(cluster_id),
        );
        self.backend.write(batch, true)
    }

    /// The list after a member announced its name and client URLs.
    pub(super) fn with_attributes(&self, attributes: &Member) -> Result<Vec<Member>> {
        let mut members = self.members()?;
        if let Some(member) = members.iter_mut().find(|m| m.id == attributes.id) {
            member.name = attributes.name.clone();
            member.client_urls = attributes.client_urls.clone();
        }
        Ok(members)
    }

    /// The list after a member's peer URLs changed; refused for an unknown member.
    pub(super) fn with_peer_urls(&self, update: &MemberUpdateRequest) -> Result<Vec<Member>> {
        let mut members = self.members()?;
        let member = members
            .iter_mut()
            .find(|m| m.id == update.id)
            .ok_or(Error::MemberNotFound)?;
        member.peer_urls = update.peer_urls.clone();
        Ok(members)
    }

    /// The list after a raft configuration change that raft accepted; `member` is the
    /// one the change names (from the entry's context), and the id a removal removed.
    pub(super) fn with_conf_change(
        &self,
        change: &ConfChangeV2,
        member: &Member,
    ) -> Result<(Vec<Member>, Option<u64>)> {
        let mut members = self.members()?;
        let mut removed = None;
        for single in change.get_changes() {
            match single.get_change_type() {
                ConfChangeType::AddNode => {
                    match members.iter_mut().find(|m| m.id == single.node_id) {
                        Some(existing) => existing.is_learner = false,
                        None => members.push(Member {
                            is_learner: false,
                            ..member.clone()
                        }),
                    }
                }
                ConfChangeType::AddLearnerNode => {
                    if !members.iter().any(|m| m.id == single.node_id) {
                        members.push(Member {
                            is_learner: true,
                            ..member.clone()
                        });
                    }
                }
                ConfChangeType::RemoveNode => {
                    members.retain(|m| m.id != single.node_id);
                    removed = Some(single.node_id);
                }
            }
        }
        Ok((members, removed))
    }

    /// Writes a membership change in one batch with the applied index, so membership,
    /// raft configuration and applied index never disagree after a crash.
    pub(super) fn write_members(
        &self,
        index: u64,
        term: u64,
        change: &MemberChange<'_>,
    ) -> Result<()> {
        let mut batch = WriteBatch::default();
        self.stamp_applied(&mut batch, index, term);
        if let Some(id) = change.removed {
            let mut list = self
                .backend
                .get(Cf::Meta, meta::REMOVED)?
                .unwrap_or_default();
            list.extend_from_slice(&encode_u64(id));
            batch.put_cf(self.backend.cf(Cf::Meta), meta::REMOVED, list);
        }
        put_members(self, &mut batch, &change.members);
        if let Some(conf_state) = change.conf_state {
            batch.put_cf(
                self.backend.cf(Cf::RaftState),
                raft_state::CONF_STATE,
                protobuf::Message::write_to_bytes(conf_state)?,
            );
        }
        self.backend.write(batch, false)?;
        self.mark_applied(index, term);
        Ok(())
    }
}

fn put_members(store: &Store, batch: &mut WriteBatch, members: &[Member]) {
    let list = MemberListResponse {
        members: members.to_vec(),
        ..Default::default()
    };
    batch.put_cf(
        store.backend.cf(Cf::Meta),
        meta::MEMBERS,
        list.encode_to_vec(),
    );
}
