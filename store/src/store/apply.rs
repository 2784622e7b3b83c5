//! Applying committed raft entries: the one dispatch over every request kind, and the
//! apply batch, which alone decides when staged entries are written.
//!
//! The driver opens an [`ApplyBatch`] per run of committed entries, hands it each entry
//! in log order, then calls [`ApplyBatch::write`] and only then answers the proposers.
//! Entries are staged into one RocksDB WriteBatch (one write for a whole Ready). The
//! batch writes what it staged earlier by itself when an entry needs it: compaction and
//! auth entries read or write tables the staging overlay does not cover, a membership
//! entry is written with its raft configuration, an entry read history that staged
//! entries wrote, a revoke lists the keys of a lease that staged entries attached keys
//! to, or the batch outgrew [`APPLY_BATCH_BYTES_MAX`]. Nothing staged is visible
//! (applied index, revision, reads, watch events) before it is written.
//!
//! Words: raft *commits* an entry; the store *applies* it (stages its changes) and
//! *writes* the batch.

use ballast_proto::ballast::internal::raft_request::Request;
use ballast_proto::ballast::internal::{Authenticate, RaftRequest};
use ballast_proto::etcdserverpb::{
    AuthDisableResponse, AuthEnableResponse, AuthRoleAddResponse, AuthRoleDeleteResponse,
    AuthRoleGrantPermissionResponse, AuthRoleRevokePermissionResponse, AuthUserAddResponse,
    AuthUserChangePasswordResponse, AuthUserDeleteResponse, AuthUserGrantRoleResponse,
    AuthUserRevokeRoleResponse, AuthenticateResponse, LeaseGrantRequest, LeaseGrantResponse,
    LeaseRevokeRequest, LeaseRevokeResponse, Member, ResponseHeader,
};
use ballast_proto::mvccpb::event::EventType;
use ballast_proto::mvccpb::Event;
use raft::eraftpb::{ConfChangeV2, ConfState};
use rocksdb::WriteBatch;

use super::members::MemberChange;
use super::{header, Store};
use crate::auth::{authenticate, AuthChange, Authenticated};
use crate::backend::{meta, Cf};
use crate::error::{Error, Result};
use crate::lease;
use crate::mvcc::read::{KvRead, ReadView};
use crate::mvcc::txn::execute_txn;
use crate::mvcc::write::{Unwritten, WriteTxn};
use crate::proposal::{Proposal, Response};
use crate::record::encode_u64;

/// Bytes an apply batch stages before it is written, whatever the caller: bounds the
/// memory of a follower that applies thousands of entries in one go.
pub const APPLY_BATCH_BYTES_MAX: usize = 4 << 20;

/// What applying one entry produced. A refused request (a missing lease, a compacted
/// revision, ...) is a normal outcome: it changed nothing, on every member alike.
#[derive(Debug)]
pub struct Applied {
    pub response: Result<Response>,
    /// What the node outside the store must follow up on.
    pub effect: Effect,
}

impl Applied {
    fn plain(response: Result<Response>) -> Applied {
        Applied {
            response,
            effect: Effect::None,
        }
    }
}

/// State outside the store that an applied entry changes: lease deadlines (the lessor)
/// and the member list the transport and cluster view hold.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    None,
    LeaseGranted {
        id: i64,
        ttl: i64,
    },
    /// The lease is gone, whether this entry revoked it or it was already gone.
    LeaseRevoked(i64),
    /// The member list changed (and was written, with its raft configuration).
    Members {
        members: Vec<Member>,
        /// A member a conf change removed.
        removed: Option<u64>,
    },
    /// A user authenticated: with simple tokens, every member learns the token.
    Authenticated(Authenticated),
    /// Tokens issued before are void: the named user's (deleted, new password), or
    /// everyone's (None: auth turned off).
    TokensRevoked(Option<String>),
}

/// Entries staged and not yet written: one WriteBatch, so a raft Ready's entries cost
/// one RocksDB write, and the applied index and revision are recorded once for all.
#[derive(Default)]
pub(super) struct Pending {
    batch: WriteBatch,
    unwritten: Unwritten,
    /// The last staged entry's index and term; None when nothing is staged.
    applied: Option<(u64, u64)>,
    /// The store revision after the staged entries.
    revision: i64,
    /// Each staged revision's events, in order, published once written.
    events: Vec<(i64, Vec<Event>)>,
    /// Keys the staged entries created less those they deleted.
    keys_delta: i64,
}

impl Pending {
    pub(super) fn empty(revision: i64) -> Pending {
        Pending {
            unwritten: Unwritten {
                written: revision,
                ..Default::default()
            },
            revision,
            ..Default::default()
        }
    }
}

/// Committed entries being applied; see the module docs. What a batch dropped without
/// [`ApplyBatch::write`] staged stays staged, and the next batch's write writes it.
#[derive(Debug)]
#[must_use = "staged entries are visible only once the batch is written"]
pub struct ApplyBatch<'a> {
    store: &'a Store,
}

impl Store {
    /// Starts applying committed entries. The raft driver is the only caller: one batch
    /// at a time.
    pub fn apply_batch(&self) -> ApplyBatch<'_> {
        ApplyBatch { store: self }
    }

    /// Applies one committed entry and writes it: a batch of one.
    pub fn apply(&self, index: u64, term: u64, entry: &RaftRequest) -> Result<Applied> {
        let mut batch = self.apply_batch();
        let applied = batch.apply(index, term, entry)?;
        batch.write()?;
        Ok(applied)
    }
}

impl ApplyBatch<'_> {
    /// Applies the request of one committed entry. Its response is final, but nothing of
    /// it is visible until [`ApplyBatch::write`]; so no client may hear of it before
    /// then. An `Err` means the store itself failed (disk, corruption): the node must
    /// stop, as continuing would diverge.
    pub fn apply(&mut self, index: u64, term: u64, entry: &RaftRequest) -> Result<Applied> {
        let Some(request) = &entry.request else {
            return Err(Error::Corrupt(format!(
                "raft entry {index} carries no request"
            )));
        };
        let store = self.store;
        if entry.auth_revision != 0 {
            let auth = store.auth();
            if auth.enabled() && entry.auth_revision < auth.revision() {
                self.skip(index, term);
                return Ok(Applied::plain(Err(Error::AuthOldRevision)));
            }
        }
        if let Some(refused) = store.refused_by_alarm(request) {
            self.skip(index, term);
            return Ok(Applied::plain(Err(refused)));
        }
        match request {
            Request::Alarm(req) => {
                self.write_staged()?;
                let response = store.apply_alarm(index, term, req)?;
                Ok(Applied::plain(Ok(wrap(req, response))))
            }
            Request::Put(req) => self.stage(index, term, req, |txn, req| txn.put(req)),
            Request::DeleteRange(req) => {
                self.stage(index, term, req, |txn, req| txn.delete_range(req))
            }
            Request::Txn(req) => self.stage(index, term, req, execute_txn),
            Request::LeaseGrant(req) => self.apply_lease_grant(index, term, req),
            Request::LeaseRevoke(req) => self.apply_lease_revoke(index, term, req),
            Request::Compaction(req) => {
                self.write_staged()?;
                let response = store.apply_compaction(index, term, req)?;
                Ok(Applied::plain(response.map(|r| wrap(req, r))))
            }
            Request::MemberAttributes(attributes) => {
                let members = store.with_attributes(attributes)?;
                let response = self.change_members(index, term, members, None, None)?;
                Ok(Applied {
                    response: Ok(wrap(attributes, response.0)),
                    effect: response.1,
                })
            }
            Request::MemberUpdate(update) => match store.with_peer_urls(update) {
                Ok(members) => {
                    let response = self.change_members(index, term, members, None, None)?;
                    Ok(Applied {
                        response: Ok(wrap(update, response.0)),
                        effect: response.1,
                    })
                }
                Err(err) if err.is_fatal() => Err(err),
                Err(err) => {
                    self.skip(index, term);
                    Ok(Applied::plain(Err(err)))
                }
            },
            Request::Authenticate(req) => self.apply_authenticate(index, term, req),
            Request::AuthEnable(req) => self.apply_auth(index, term, req, |auth, _, header| {
                auth.enable()?;
                Ok(AuthEnableResponse { header })
            }),
            Request::AuthDisable(req) => {
                let mut applied = self.apply_auth(index, term, req, |auth, _, header| {
                    auth.disable();
                    Ok(AuthDisableResponse { header })
                })?;
                if applied.response.is_ok() {
                    applied.effect = Effect::TokensRevoked(None);
                }
                Ok(applied)
            }
            Request::AuthUserAdd(req) => self.apply_auth(index, term, req, |auth, req, header| {
                auth.user_add(req)?;
                Ok(AuthUserAddResponse { header })
            }),
            Request::AuthUserDelete(req) => {
                let mut applied = self.apply_auth(index, term, req, |auth, req, header| {
                    auth.user_delete(req)?;
                    Ok(AuthUserDeleteResponse { header })
                })?;
                if applied.response.is_ok() {
                    applied.effect = Effect::TokensRevoked(Some(req.name.clone()));
                }
                Ok(applied)
            }
            Request::AuthUserChangePassword(req) => {
                let mut applied = self.apply_auth(index, term, req, |auth, req, header| {
                    auth.user_change_password(req)?;
                    Ok(AuthUserChangePasswordResponse { header })
                })?;
                if applied.response.is_ok() {
                    applied.effect = Effect::TokensRevoked(Some(req.name.clone()));
                }
                Ok(applied)
            }
            Request::AuthUserGrantRole(req) => {
                self.apply_auth(index, term, req, |auth, req, header| {
                    auth.user_grant_role(req)?;
                    Ok(AuthUserGrantRoleResponse { header })
                })
            }
            Request::AuthUserRevokeRole(req) => {
                self.apply_auth(index, term, req, |auth, req, header| {
                    auth.user_revoke_role(req)?;
                    Ok(AuthUserRevokeRoleResponse { header })
                })
            }
            Request::AuthRoleAdd(req) => self.apply_auth(index, term, req, |auth, req, header| {
                auth.role_add(req)?;
                Ok(AuthRoleAddResponse { header })
            }),
            Request::AuthRoleDelete(req) => {
                self.apply_auth(index, term, req, |auth, req, header| {
                    auth.role_delete(req)?;
                    Ok(AuthRoleDeleteResponse { header })
                })
            }
            Request::AuthRoleGrantPermission(req) => {
                self.apply_auth(index, term, req, |auth, req, header| {
                    auth.role_grant_permission(req)?;
                    Ok(AuthRoleGrantPermissionResponse { header })
                })
            }
            Request::AuthRoleRevokePermission(req) => {
                self.apply_auth(index, term, req, |auth, req, header| {
                    auth.role_revoke_permission(req)?;
                    Ok(AuthRoleRevokePermissionResponse { header })
                })
            }
        }
    }

    /// Applies a raft configuration change that raft-rs accepted: `conf_state` is the
    /// configuration raft-rs reports after it, `member` the member the entry names.
    pub fn apply_conf_change(
        &mut self,
        index: u64,
        term: u64,
        change: &ConfChangeV2,
        member: &Member,
        conf_state: &ConfState,
    ) -> Result<Applied> {
        let (members, removed) = self.store.with_conf_change(change, member)?;
        let (members, effect) =
            self.change_members(index, term, members, Some(conf_state), removed)?;
        Ok(Applied {
            response: Ok(Response::Members(members)),
            effect,
        })
    }

    /// Records that an entry with no effect on the store (a leader's empty entry, a
    /// refused request or conf change) has been applied.
    pub fn skip(&mut self, index: u64, term: u64) {
        self.store.lock_pending().applied = Some((index, term));
    }

    /// Writes everything staged and makes it visible.
    pub fn write(self) -> Result<()> {
        self.write_staged()
    }

    fn apply_lease_grant(
        &mut self,
        index: u64,
        term: u64,
        req: &LeaseGrantRequest,
    ) -> Result<Applied> {
        let response = self.stage(index, term, req, |txn, req| {
            let begin = txn.view().revision();
            lease::grant(txn, req).map(|lease| LeaseGrantResponse {
                header: Some(header(begin)),
                id: lease.id,
                ttl: lease.ttl,
                error: String::new(),
            })
        })?;
        let effect = match &response.response {
            Ok(_) => Effect::LeaseGranted {
                id: req.id,
                ttl: req.ttl,
            },
            Err(_) => Effect::None,
        };
        Ok(Applied { effect, ..response })
    }

    fn apply_lease_revoke(
        &mut self,
        index: u64,
        term: u64,
        req: &LeaseRevokeRequest,
    ) -> Result<Applied> {
        let response = self.stage(index, term, req, |txn, req| {
            lease::revoke(txn, req).map(|()| LeaseRevokeResponse {
                header: Some(header(txn.end_revision())),
            })
        })?;
        let effect = match &response.response {
            Ok(_) | Err(Error::LeaseNotFound) => Effect::LeaseRevoked(req.id),
            Err(_) => Effect::None,
        };
        Ok(Applied { effect, ..response })
    }

    /// Applies an auth change, written alone after what was staged before it. A refusal
    /// changes nothing but the applied index.
    fn apply_auth<P: Proposal>(
        &mut self,
        index: u64,
        term: u64,
        req: &P,
        run: impl FnOnce(&mut AuthChange, &P, Option<ResponseHeader>) -> Result<P::Response>,
    ) -> Result<Applied> {
        self.write_staged()?;
        let store = self.store;
        let mut change = AuthChange::new(store.auth().data().clone());
        let header = Some(header(store.revisions().current));
        match run(&mut change, req, header) {
            Ok(response) => {
                store.write_auth(index, term, change)?;
                Ok(Applied::plain(Ok(P::wrap(response))))
            }
            Err(err) => {
                self.skip(index, term);
                Ok(Applied::plain(Err(err)))
            }
        }
    }

    /// Issues a token: changes no stored state, but every member learns a simple token.
    fn apply_authenticate(&mut self, index: u64, term: u64, req: &Authenticate) -> Result<Applied> {
        let store = self.store;
        self.skip(index, term);
        let auth = store.auth();
        Ok(
            match authenticate(auth.data(), &req.name, &req.simple_token, index) {
                Ok(issued) => Applied {
                    response: Ok(wrap(
                        req,
                        AuthenticateResponse {
                            header: Some(header(store.revisions().current)),
                            token: issued.token.clone(),
                        },
                    )),
                    effect: Effect::Authenticated(issued),
                },
                Err(err) => Applied::plain(Err(err)),
            },
        )
    }

    /// Writes a new member list (after what was staged before it).
    fn change_members(
        &mut self,
        index: u64,
        term: u64,
        members: Vec<Member>,
        conf_state: Option<&ConfState>,
        removed: Option<u64>,
    ) -> Result<(Vec<Member>, Effect)> {
        self.write_staged()?;
        let change = MemberChange {
            members,
            conf_state,
            removed,
        };
        self.store.write_members(index, term, &change)?;
        let effect = Effect::Members {
            members: change.members.clone(),
            removed,
        };
        Ok((change.members, effect))
    }

    /// Stages one KV or lease request: `run` executes it in a write transaction after
    /// the staged entries. Its result becomes a [`Response`] through the request's own
    /// [`Proposal`] impl, so each kind answers with its own response kind.
    fn stage<P: Proposal>(
        &mut self,
        index: u64,
        term: u64,
        req: &P,
        run: impl Fn(&mut WriteTxn<'_>, &P) -> Result<P::Response>,
    ) -> Result<Applied> {
        let run = |txn: &mut WriteTxn<'_>| run(txn, req);
        let result = match self.stage_once(index, term, &run) {
            Err(Error::Unwritten) => {
                self.write_staged()?;
                self.stage_once(index, term, &run)?
            }
            other => other?,
        };
        if self.store.lock_pending().batch.size_in_bytes() > APPLY_BATCH_BYTES_MAX {
            self.write_staged()?;
        }
        Ok(Applied::plain(result.map(P::wrap)))
    }

    /// Runs one request after the staged entries and stages its changes; a refusal
    /// stages only the applied index. `Err(Unwritten)` asks for the staged entries to be
    /// written first.
    fn stage_once<T>(
        &mut self,
        index: u64,
        term: u64,
        run: &impl Fn(&mut WriteTxn<'_>) -> Result<T>,
    ) -> Result<Result<T>> {
        let store = self.store;
        let mut pending = store.lock_pending();
        let compacted = store.revisions().compacted;
        let before = pending.revision;
        let view = ReadView::live(&store.backend, before, compacted);
        let mut txn = WriteTxn::after(view, &pending.unwritten, &store.latest);
        let response = match run(&mut txn) {
            Err(err) if err.is_fatal() || matches!(err, Error::Unwritten) => return Err(err),
            Err(err) => {
                drop(txn);
                pending.applied = Some((index, term));
                return Ok(Err(err));
            }
            Ok(response) => response,
        };
        let staged = txn.into_staged();
        let pending = &mut *pending;
        for op in staged.ops {
            op.add_to(&store.backend, &mut pending.batch);
        }
        pending.unwritten.keys.extend(staged.overlay);
        pending.unwritten.leases.extend(staged.leases);
        pending.unwritten.attached.extend(staged.attached);
        if staged.revision != before {
            assert_eq!(staged.revision, before + 1, "one revision per entry");
            pending.keys_delta += keys_delta(&staged.events);
            pending.revision = staged.revision;
            pending.events.push((staged.revision, staged.events));
        }
        pending.applied = Some((index, term));
        Ok(Ok(response))
    }

    /// Writes the staged entries, then makes them visible: key cache, applied index,
    /// revision, watch events, in that order.
    fn write_staged(&self) -> Result<()> {
        let store = self.store;
        let mut pending = store.lock_pending();
        let Some((index, term)) = pending.applied else {
            return Ok(());
        };
        let current = pending.unwritten.written;
        let revision = pending.revision;
        let staged = std::mem::replace(&mut *pending, Pending::empty(revision));
        let mut batch = staged.batch;
        store.stamp_applied(&mut batch, index, term);
        if staged.revision != current {
            batch.put_cf(
                store.backend.cf(Cf::Meta),
                meta::REVISION,
                encode_u64(staged.revision as u64),
            );
        }
        let keys = store.keys_total() + staged.keys_delta;
        if staged.keys_delta != 0 {
            batch.put_cf(
                store.backend.cf(Cf::Meta),
                meta::KEYS,
                encode_u64(keys as u64),
            );
        }
        store.backend.write(batch, false)?;
        store.keys.store(keys, std::sync::atomic::Ordering::Release);
        {
            let mut cache = store.lock_latest();
            for (key, kv) in staged.unwritten.keys {
                cache.insert(key, kv);
            }
            cache.written(staged.revision);
        }
        store.mark_applied(index, term);
        if staged.revision != current {
            store
                .revisions
                .write()
                .expect("revision lock poisoned")
                .current = staged.revision;
            for (revision, events) in &staged.events {
                store.hub.publish(*revision, events);
            }
        }
        Ok(())
    }
}

/// Keys a revision's events created (a put of version 1) less those they deleted.
fn keys_delta(events: &[Event]) -> i64 {
    events
        .iter()
        .map(|event| match EventType::try_from(event.r#type) {
            Ok(EventType::Put) if event.kv.as_ref().is_some_and(|kv| kv.version == 1) => 1,
            Ok(EventType::Delete) => -1,
            _ => 0,
        })
        .sum()
}

/// A request kind's result as a [`Response`], through that kind's [`Proposal`] impl.
fn wrap<P: Proposal>(_request: &P, response: P::Response) -> Response {
    P::wrap(response)
}
