//! Alarms (etcd's NOSPACE and CORRUPT): raised, cleared and listed through raft, so every
//! member holds the same set and refuses the same writes while one is active. A member
//! raises NOSPACE when a write would take it past its space quota; CORRUPT comes from
//! the corruption check. Only `etcdctl alarm disarm` clears either.

use ballast_proto::ballast::internal::raft_request::Request;
use ballast_proto::etcdserverpb::alarm_request::AlarmAction;
use ballast_proto::etcdserverpb::request_op::Request as TxnOp;
use ballast_proto::etcdserverpb::{
    AlarmMember, AlarmRequest, AlarmResponse, AlarmType, TxnRequest,
};
use prost::Message;
use rocksdb::WriteBatch;

use super::{header, Store};
use crate::backend::{meta, Backend, Cf};
use crate::error::{Error, Result};

impl Store {
    /// The active alarms, ordered by kind, then member.
    pub fn alarms(&self) -> Vec<AlarmMember> {
        self.alarms.read().expect("alarm lock poisoned").clone()
    }

    /// True while an alarm of `kind` is active on any member.
    pub fn alarm_active(&self, kind: AlarmType) -> bool {
        self.alarms
            .read()
            .expect("alarm lock poisoned")
            .iter()
            .any(|a| a.alarm == kind as i32)
    }

    /// What the active alarms refuse of `request`, as etcd's capped and corrupt appliers
    /// do: with CORRUPT every write, with NOSPACE every write that adds data (puts, also
    /// inside txns, and lease grants). Deletes, compaction and lease revokes still pass
    /// under NOSPACE, so an operator can make room.
    pub(super) fn refused_by_alarm(&self, request: &Request) -> Option<Error> {
        let alarms = self.alarms.read().expect("alarm lock poisoned");
        if alarms.is_empty() {
            return None;
        }
        let active = |kind: AlarmType| alarms.iter().any(|a| a.alarm == kind as i32);
        let writes = matches!(
            request,
            Request::Put(_)
                | Request::DeleteRange(_)
                | Request::Txn(_)
                | Request::Compaction(_)
                | Request::LeaseGrant(_)
                | Request::LeaseRevoke(_)
        );
        if writes && active(AlarmType::Corrupt) {
            return Some(Error::CorruptCluster);
        }
        let adds = match request {
            Request::Put(_) | Request::LeaseGrant(_) => true,
            Request::Txn(txn) => txn_puts(txn),
            _ => false,
        };
        (adds && active(AlarmType::Nospace)).then_some(Error::NoSpace)
    }

    /// Applies an alarm request, written alone with its entry's applied index. Answers
    /// as etcd does: GET lists the alarms of the kind asked for (NONE: all), ACTIVATE
    /// the alarm raised (also when it was already active), DEACTIVATE the alarm cleared
    /// (nothing if it was not active).
    pub(super) fn apply_alarm(
        &self,
        index: u64,
        term: u64,
        req: &AlarmRequest,
    ) -> Result<AlarmResponse> {
        let mut alarms = self.alarms.write().expect("alarm lock poisoned");
        let known = matches!(
            AlarmType::try_from(req.alarm),
            Ok(AlarmType::Nospace | AlarmType::Corrupt)
        );
        let member = AlarmMember {
            member_id: req.member_id,
            alarm: req.alarm,
        };
        let position =
            alarms.binary_search_by_key(&(req.alarm, req.member_id), |a| (a.alarm, a.member_id));
        let mut changed = None;
        let answer = match AlarmAction::try_from(req.action) {
            Ok(AlarmAction::Get) => alarms
                .iter()
                .filter(|a| req.alarm == AlarmType::None as i32 || a.alarm == req.alarm)
                .cloned()
                .collect(),
            Ok(AlarmAction::Activate) if known => {
                if let Err(at) = position {
                    let mut next = alarms.clone();
                    next.insert(at, member);
                    changed = Some(next);
                }
                vec![member]
            }
            Ok(AlarmAction::Deactivate) => match position {
                Ok(at) => {
                    let mut next = alarms.clone();
                    next.remove(at);
                    changed = Some(next);
                    vec![member]
                }
                Err(_) => Vec::new(),
            },
            // Unknown kinds and actions change nothing; the server refuses them before
            // proposing, so only a peer's odd entry gets here.
            _ => Vec::new(),
        };
        let mut batch = WriteBatch::default();
        self.stamp_applied(&mut batch, index, term);
        if let Some(next) = &changed {
            batch.put_cf(self.backend.cf(Cf::Meta), meta::ALARMS, encode(next));
        }
        self.backend.write(batch, false)?;
        self.mark_applied(index, term);
        if let Some(next) = changed {
            let raised = next.len() > alarms.len();
            tracing::warn!(
                alarm = ?AlarmType::try_from(req.alarm).unwrap_or(AlarmType::None),
                member = format_args!("{:x}", req.member_id),
                "alarm {}",
                if raised { "raised" } else { "disarmed" }
            );
            *alarms = next;
        }
        Ok(AlarmResponse {
            header: Some(header(self.revisions().current)),
            alarms: answer,
        })
    }

    /// Reloads the alarms after a snapshot replaced the state.
    pub(super) fn reload_alarms(&self) -> Result<()> {
        *self.alarms.write().expect("alarm lock poisoned") = load(&self.backend)?;
        Ok(())
    }
}

/// True if the txn puts anything, in either branch, at any depth.
fn txn_puts(txn: &TxnRequest) -> bool {
    txn.success
        .iter()
        .chain(&txn.failure)
        .any(|op| match &op.request {
            Some(TxnOp::RequestPut(_)) => true,
            Some(TxnOp::RequestTxn(inner)) => txn_puts(inner),
            _ => false,
        })
}

fn encode(alarms: &[AlarmMember]) -> Vec<u8> {
    AlarmResponse {
        header: None,
        alarms: alarms.to_vec(),
    }
    .encode_to_vec()
}

/// The alarms recorded in the DB.
pub(super) fn load(backend: &Backend) -> Result<Vec<AlarmMember>> {
    let Some(bytes) = backend.get(Cf::Meta, meta::ALARMS)? else {
        return Ok(Vec::new());
    };
    let mut alarms = AlarmResponse::decode(bytes.as_slice())?.alarms;
    alarms.sort_by_key(|a| (a.alarm, a.member_id));
    Ok(alarms)
}
