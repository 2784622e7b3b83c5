//! Sets of keys kept as disjoint, sorted, non-touching intervals: adding an interval and
//! asking whether a key or an interval is in the set each take a few B-tree steps,
//! however many intervals went in. A user's permissions and the keys a txn writes are
//! such sets.

use std::collections::BTreeMap;
use std::ops::Bound;

/// The end of an interval: below a key, or past every key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum End {
    Before(Vec<u8>),
    Unbounded,
}

impl End {
    /// True if the interval ending here reaches `key` (contains it or touches it).
    fn reaches(&self, key: &[u8]) -> bool {
        match self {
            End::Unbounded => true,
            End::Before(end) => key <= &end[..],
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeSet {
    /// Start of each interval to its end.
    intervals: BTreeMap<Vec<u8>, End>,
}

impl RangeSet {
    /// Adds the keys of [start, end); an empty interval (end <= start) adds none.
    pub fn insert(&mut self, mut start: Vec<u8>, mut end: End) {
        if !matches!(&end, End::Before(e) if *e <= start) {
            if let Some((s, e)) = self.before(&start) {
                if e.reaches(&start) {
                    start = s.to_vec();
                    end = end.max(e.clone());
                }
            }
            // Every interval that starts inside the new one (or at its end) joins it.
            let joined: Vec<Vec<u8>> = self
                .intervals
                .range::<[u8], _>((Bound::Included(&start[..]), Bound::Unbounded))
                .take_while(|(s, _)| end.reaches(s))
                .map(|(s, _)| s.clone())
                .collect();
            for s in joined {
                let e = self.intervals.remove(&s).expect("just seen");
                end = end.max(e);
            }
            self.intervals.insert(start, end);
        }
    }

    /// True if every key of [start, end) is in the set.
    pub fn contains(&self, start: &[u8], end: &End) -> bool {
        self.before(start)
            .is_some_and(|(_, covered)| end <= covered)
    }

    /// True if `key` is in the set.
    pub fn contains_key(&self, key: &[u8]) -> bool {
        self.before(key).is_some_and(|(_, end)| match end {
            End::Unbounded => true,
            End::Before(end) => key < &end[..],
        })
    }

    /// Adds every interval of `other`.
    pub fn extend(&mut self, other: RangeSet) {
        for (start, end) in other.intervals {
            self.insert(start, end);
        }
    }

    /// The interval starting at or before `key`.
    fn before(&self, key: &[u8]) -> Option<(&Vec<u8>, &End)> {
        self.intervals
            .range::<[u8], _>((Bound::Unbounded, Bound::Included(key)))
            .next_back()
    }
}

impl FromIterator<(Vec<u8>, End)> for RangeSet {
    fn from_iter<I: IntoIterator<Item = (Vec<u8>, End)>>(intervals: I) -> RangeSet {
        let mut set = RangeSet::default();
        for (start, end) in intervals {
            set.insert(start, end);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn before(key: &[u8]) -> End {
        End::Before(key.to_vec())
    }

    #[test]
    fn touching_and_overlapping_intervals_merge() {
        let set: RangeSet = [
            (b"a".to_vec(), before(b"c")),
            (b"c".to_vec(), before(b"e")),
            (b"x".to_vec(), End::Unbounded),
            (b"y".to_vec(), before(b"z")),
        ]
        .into_iter()
        .collect();
        assert_eq!(set.intervals.len(), 2);
        assert!(set.contains(b"a", &before(b"e")));
        assert!(!set.contains(b"a", &before(b"f")));
        assert!(set.contains(b"xyz", &End::Unbounded));
        assert!(set.contains_key(b"d"));
        assert!(!set.contains_key(b"e"));
    }

    #[test]
    fn an_empty_interval_adds_nothing() {
        let mut set = RangeSet::default();
        set.insert(b"b".to_vec(), before(b"a"));
        set.insert(b"b".to_vec(), before(b"b"));
        assert_eq!(set, RangeSet::default());
    }

    proptest! {
        /// Membership agrees with checking each inserted interval, whatever the order.
        #[test]
        fn membership_matches_the_intervals_one_by_one(
            intervals in proptest::collection::vec((0u8..8, 0u8..9), 0..12),
            probes in proptest::collection::vec(0u8..9, 1..8),
        ) {
            let key = |n: u8| vec![b'a' + n];
            let end = |n: u8| if n == 8 { End::Unbounded } else { End::Before(key(n)) };
            let set: RangeSet = intervals.iter().map(|&(s, e)| (key(s), end(e))).collect();
            let inside = |k: &[u8]| intervals.iter().any(|&(s, e)| {
                k >= &key(s)[..] && match end(e) {
                    End::Unbounded => true,
                    End::Before(b) => k < &b[..],
                }
            });
            for &p in &probes {
                prop_assert_eq!(set.contains_key(&key(p)), inside(&key(p)));
                // Keys between the letters, too.
                prop_assert_eq!(set.contains_key(&[b'a' + p, 0]), inside(&[b'a' + p, 0]));
            }
        }
    }
}
