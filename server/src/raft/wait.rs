//! The wait registry: a proposal's client waits here, by request id, until the entry is
//! applied. Replies are matched by id, never by queue position, so entries applied in any
//! interleaving reach the right client.

use std::collections::HashMap;
use std::sync::Mutex;

use ballast_store::Response;
use tokio::sync::oneshot;

use crate::error::Error;

/// What a waiting client receives.
pub type Outcome = Result<Response, Error>;

/// Pending proposals by request id.
#[derive(Debug, Default)]
pub struct WaitRegistry {
    waiters: Mutex<HashMap<u64, oneshot::Sender<Outcome>>>,
}

impl WaitRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Outcome>>> {
        self.waiters.lock().expect("wait registry lock poisoned")
    }

    /// Registers a waiter; the id must be unique.
    pub fn register(&self, id: u64) -> oneshot::Receiver<Outcome> {
        let (tx, rx) = oneshot::channel();
        let previous = self.lock().insert(id, tx);
        assert!(previous.is_none(), "request id {id} registered twice");
        rx
    }

    /// Hands the outcome to the waiter of `id`, if it is still waiting (it may have timed
    /// out, or the entry was proposed by another member).
    pub fn trigger(&self, id: u64, outcome: Outcome) {
        if let Some(tx) = self.lock().remove(&id) {
            let _ = tx.send(outcome);
        }
    }

    /// Forgets a waiter that gave up.
    pub fn cancel(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// Fails every waiter, e.g. when the node stops.
    pub fn fail_all(&self, error: impl Fn() -> Error) {
        for (_, tx) in self.lock().drain() {
            let _ = tx.send(Err(error()));
        }
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
