//! Unique ids for requests and leases, without coordination: the member id in the top
//! 16 bits, then a millisecond timestamp and a counter (as etcd's idutil). Ids from two
//! members never collide; ids from one member are unique across restarts as long as the
//! clock does not go back by more than the ids used since.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

const PREFIX_BITS: u32 = 16;
const SUFFIX_BITS: u32 = 64 - PREFIX_BITS;
const COUNTER_BITS: u32 = 8;
const SUFFIX_MASK: u64 = (1 << SUFFIX_BITS) - 1;

/// Generates ids unique across the cluster.
#[derive(Debug)]
pub struct IdGenerator {
    prefix: u64,
    suffix: AtomicU64,
}

impl IdGenerator {
    pub fn new(member_id: u64) -> Self {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        IdGenerator {
            prefix: (member_id & ((1 << PREFIX_BITS) - 1)) << SUFFIX_BITS,
            suffix: AtomicU64::new((millis << COUNTER_BITS) & SUFFIX_MASK),
        }
    }

    pub fn next(&self) -> u64 {
        let suffix = self.suffix.fetch_add(1, Ordering::Relaxed) + 1;
        self.prefix | (suffix & SUFFIX_MASK)
    }

    /// A positive i64 id, for leases (etcd lease ids are int64 and 0 means none).
    pub fn next_positive(&self) -> i64 {
        loop {
            let id = (self.next() & (i64::MAX as u64)) as i64;
            if id != 0 {
                return id;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_carry_the_member() {
        let a = IdGenerator::new(0xABCD_1234);
        let b = IdGenerator::new(0x1234_5678);
        let x = a.next();
        let y = a.next();
        assert_ne!(x, y);
        assert_eq!(x >> SUFFIX_BITS, 0x1234);
        assert_ne!(a.next(), b.next());
        assert!(a.next_positive() > 0);
    }
}
