//! The wait registry: a proposal's client waits here, by request id, until the entry is
//! applied. Replies are matched by id, never by queue position, so entries applied in any
//! interleaving reach the right client.
//!
//! Each waiter remembers the leadership epoch it was registered in. When leadership
//! changes, waiters from earlier epochs are failed with etcd's "leader changed" so their
//! clients retry instead of waiting out the timeout; such a write may still have been
//! committed, which is what Unavailable means to an etcd client. Membership changes wait
//! through leader changes, as etcd's do: removing the leader is itself one.

use std::collections::HashMap;
use std::sync::Mutex;

use ballast_store::Response;
use tokio::sync::oneshot;

use crate::error::Error;

/// The epoch of a waiter that no leader change fails: it waits for its entry to be
/// applied, the request timeout, or the member to stop.
pub const ANY_EPOCH: u64 = u64::MAX;

/// What a waiting client receives: the applied entry's response, or why there is none.
pub type Outcome = Result<Response, Error>;

struct Waiter {
    tx: oneshot::Sender<Outcome>,
    epoch: u64,
}

/// Pending proposals by request id.
#[derive(Default)]
pub struct WaitRegistry {
    waiters: Mutex<HashMap<u64, Waiter>>,
}

impl std::fmt::Debug for WaitRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitRegistry")
            .field("pending", &self.len())
            .finish()
    }
}

impl WaitRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Waiter>> {
        self.waiters.lock().expect("wait registry lock poisoned")
    }

    /// Registers a waiter in leadership `epoch` (or `ANY_EPOCH`); the id must be unique.
    pub fn register(&self, id: u64, epoch: u64) -> oneshot::Receiver<Outcome> {
        let (tx, rx) = oneshot::channel();
        let previous = self.lock().insert(id, Waiter { tx, epoch });
        assert!(previous.is_none(), "request id {id} registered twice");
        rx
    }

    /// Hands the outcome to the waiter of `id`, if it is still waiting (it may have timed
    /// out, or the entry was proposed by another member).
    pub fn trigger(&self, id: u64, outcome: Outcome) {
        if let Some(waiter) = self.lock().remove(&id) {
            let _ = waiter.tx.send(outcome);
        }
    }

    /// Forgets a waiter that gave up.
    pub fn cancel(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// Fails every waiter registered before leadership `epoch`.
    pub fn fail_before(&self, epoch: u64, error: impl Fn() -> Error) {
        let mut waiters = self.lock();
        let stale: Vec<u64> = waiters
            .iter()
            .filter(|(_, w)| w.epoch < epoch)
            .map(|(&id, _)| id)
            .collect();
        for id in stale {
            if let Some(waiter) = waiters.remove(&id) {
                let _ = waiter.tx.send(Err(error()));
            }
        }
    }

    /// Fails every waiter, e.g. when the node stops.
    pub fn fail_all(&self, error: impl Fn() -> Error) {
        for (_, waiter) in self.lock().drain() {
            let _ = waiter.tx.send(Err(error()));
        }
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn leader_changes_fail_older_waiters_but_not_membership_changes() {
        let waits = WaitRegistry::default();
        let old = waits.register(1, 0);
        let new = waits.register(2, 1);
        let membership = waits.register(3, ANY_EPOCH);
        waits.fail_before(1, || Error::LeaderChanged);
        waits.fail_before(2, || Error::LeaderChanged);
        assert!(matches!(old.await.unwrap(), Err(Error::LeaderChanged)));
        assert!(matches!(new.await.unwrap(), Err(Error::LeaderChanged)));
        waits.trigger(3, Ok(Response::Members(Vec::new())));
        assert!(matches!(
            membership.await.unwrap(),
            Ok(Response::Members(_))
        ));
        assert_eq!(waits.len(), 0);
    }
}
