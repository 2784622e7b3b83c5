//! The lessor: when each lease expires. Which leases exist is replicated state (in the
//! store); their deadlines are not. Only the leader (the *primary* lessor) expires leases
//! and accepts keep-alives; a member that becomes leader gives every lease its full TTL
//! afresh, as etcd does, so no lease expires early because leadership moved.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ballast_store::Lease;

/// Largest TTL a lease may have, in seconds (etcd's MaxLeaseTTL).
pub const LEASE_TTL_MAX_SECONDS: i64 = 9_000_000_000;

#[derive(Debug, Clone, Copy)]
struct Deadline {
    /// Granted TTL in seconds.
    ttl: i64,
    expiry: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    primary: bool,
    leases: HashMap<i64, Deadline>,
    /// Expired leases whose revoke has been proposed and not yet applied.
    revoking: HashSet<i64>,
}

/// Lease deadlines; see the module docs.
#[derive(Debug)]
pub struct Lessor {
    inner: Mutex<Inner>,
}

/// Why a keep-alive was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenewError {
    /// No such lease (or it expired and is being revoked).
    NotFound,
    /// This member is not the leader.
    NotPrimary,
}

fn ttl_duration(ttl: i64) -> Duration {
    Duration::from_secs(ttl.clamp(0, LEASE_TTL_MAX_SECONDS) as u64)
}

impl Lessor {
    /// A lessor for the leases in the store; not primary until [`Lessor::promote`].
    pub fn new(leases: &[Lease]) -> Self {
        let now = Instant::now();
        let leases = leases
            .iter()
            .map(|l| {
                let deadline = Deadline {
                    ttl: l.ttl,
                    expiry: now + ttl_duration(l.ttl),
                };
                (l.id, deadline)
            })
            .collect();
        Lessor {
            inner: Mutex::new(Inner {
                primary: false,
                leases,
                revoking: HashSet::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("lessor lock poisoned")
    }

    /// Replaces every lease (a snapshot was installed); deadlines start afresh.
    pub fn reset(&self, leases: &[Lease]) {
        let fresh = Lessor::new(leases);
        let mut inner = self.lock();
        let primary = inner.primary;
        *inner = fresh.inner.into_inner().expect("fresh lessor lock");
        inner.primary = primary;
    }

    /// A lease was granted (applied).
    pub fn granted(&self, id: i64, ttl: i64) {
        let deadline = Deadline {
            ttl,
            expiry: Instant::now() + ttl_duration(ttl),
        };
        self.lock().leases.insert(id, deadline);
    }

    /// A lease was revoked (applied).
    pub fn revoked(&self, id: i64) {
        let mut inner = self.lock();
        inner.leases.remove(&id);
        inner.revoking.remove(&id);
    }

    /// This member became leader: every lease gets its full TTL from now.
    pub fn promote(&self) {
        let now = Instant::now();
        let mut inner = self.lock();
        inner.primary = true;
        inner.revoking.clear();
        for deadline in inner.leases.values_mut() {
            deadline.expiry = now + ttl_duration(deadline.ttl);
        }
    }

    /// This member is no longer leader.
    pub fn demote(&self) {
        let mut inner = self.lock();
        inner.primary = false;
        inner.revoking.clear();
    }

    pub fn is_primary(&self) -> bool {
        self.lock().primary
    }

    /// A keep-alive: the lease's deadline moves to now + TTL; returns the TTL.
    pub fn renew(&self, id: i64) -> Result<i64, RenewError> {
        let now = Instant::now();
        let mut inner = self.lock();
        if !inner.primary {
            return Err(RenewError::NotPrimary);
        }
        if inner.revoking.contains(&id) {
            return Err(RenewError::NotFound);
        }
        let deadline = inner.leases.get_mut(&id).ok_or(RenewError::NotFound)?;
        if deadline.expiry <= now {
            return Err(RenewError::NotFound);
        }
        deadline.expiry = now + ttl_duration(deadline.ttl);
        Ok(deadline.ttl)
    }

    /// Remaining whole seconds and granted TTL of a lease.
    pub fn time_to_live(&self, id: i64) -> Option<(i64, i64)> {
        let inner = self.lock();
        let deadline = inner.leases.get(&id)?;
        let remaining = deadline
            .expiry
            .saturating_duration_since(Instant::now())
            .as_secs() as i64;
        Some((remaining, deadline.ttl))
    }

    /// Up to `max` expired leases not yet being revoked; they are marked as being revoked.
    /// Empty unless primary.
    pub fn take_expired(&self, max: usize) -> Vec<i64> {
        let now = Instant::now();
        let mut inner = self.lock();
        if !inner.primary {
            return Vec::new();
        }
        let Inner {
            leases, revoking, ..
        } = &mut *inner;
        let expired: Vec<i64> = leases
            .iter()
            .filter(|(id, d)| d.expiry <= now && !revoking.contains(id))
            .map(|(&id, _)| id)
            .take(max)
            .collect();
        revoking.extend(&expired);
        expired
    }

    /// A proposed revoke did not go through; the lease may be retried.
    pub fn revoke_failed(&self, id: i64) {
        self.lock().revoking.remove(&id);
    }

    /// For tests: move a lease's deadline.
    #[cfg(test)]
    fn set_expiry(&self, id: i64, expiry: Instant) {
        if let Some(d) = self.lock().leases.get_mut(&id) {
            d.expiry = expiry;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_primary_renews_and_expires() {
        let lessor = Lessor::new(&[Lease { id: 1, ttl: 10 }]);
        assert_eq!(lessor.renew(1), Err(RenewError::NotPrimary));
        lessor.set_expiry(1, Instant::now());
        assert!(lessor.take_expired(10).is_empty());
        lessor.promote();
        // Promotion gives the full TTL back.
        assert_eq!(lessor.time_to_live(1).unwrap().1, 10);
        assert!(lessor.time_to_live(1).unwrap().0 >= 9);
        assert_eq!(lessor.renew(1), Ok(10));
        assert_eq!(lessor.renew(2), Err(RenewError::NotFound));
    }

    #[test]
    fn expired_leases_are_handed_out_once() {
        let lessor = Lessor::new(&[]);
        lessor.promote();
        lessor.granted(7, 5);
        lessor.set_expiry(7, Instant::now());
        assert_eq!(lessor.take_expired(10), vec![7]);
        assert!(lessor.take_expired(10).is_empty());
        assert_eq!(lessor.renew(7), Err(RenewError::NotFound));
        lessor.revoke_failed(7);
        assert_eq!(lessor.take_expired(10), vec![7]);
        lessor.revoked(7);
        assert!(lessor.time_to_live(7).is_none());
    }
}
