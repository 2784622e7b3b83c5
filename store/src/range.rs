//! The key ranges of etcd requests: `key` plus `range_end`.

use bytes::Bytes;

/// A set of keys, as etcd's `key`/`range_end` pair describes it:
/// empty `range_end` = the one key; `"\0"` = every key >= `key`; anything else =
/// the half-open interval `[key, range_end)` (empty when `range_end <= key`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyRange {
    pub start: Bytes,
    pub end: RangeEnd,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RangeEnd {
    /// Only `start`.
    Single,
    /// Every key from `start` on.
    Unbounded,
    /// Keys below this one.
    Before(Bytes),
}

impl KeyRange {
    pub fn new(key: Bytes, range_end: Bytes) -> KeyRange {
        let end = match &range_end[..] {
            [] => RangeEnd::Single,
            [0] => RangeEnd::Unbounded,
            _ => RangeEnd::Before(range_end),
        };
        KeyRange { start: key, end }
    }

    pub fn single(key: Bytes) -> KeyRange {
        KeyRange {
            start: key,
            end: RangeEnd::Single,
        }
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        match &self.end {
            RangeEnd::Single => key == &self.start[..],
            RangeEnd::Unbounded => key >= &self.start[..],
            RangeEnd::Before(end) => key >= &self.start[..] && key < &end[..],
        }
    }

    pub fn is_single(&self) -> bool {
        self.end == RangeEnd::Single
    }

    /// True if some key is in both ranges.
    pub fn overlaps(&self, other: &KeyRange) -> bool {
        // Each range is [start, exclusive upper bound); compare as intervals.
        let below_end = |key: &[u8], range: &KeyRange| match &range.end {
            RangeEnd::Single => key <= &range.start[..],
            RangeEnd::Unbounded => true,
            RangeEnd::Before(end) => key < &end[..],
        };
        !self.is_empty()
            && !other.is_empty()
            && below_end(&self.start, other)
            && below_end(&other.start, self)
    }

    pub fn is_empty(&self) -> bool {
        match &self.end {
            RangeEnd::Before(end) => end <= &self.start,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(key: &'static [u8], end: &'static [u8]) -> KeyRange {
        KeyRange::new(Bytes::from_static(key), Bytes::from_static(end))
    }

    #[test]
    fn range_end_rules() {
        assert!(range(b"a", b"").contains(b"a"));
        assert!(!range(b"a", b"").contains(b"ab"));
        assert!(range(b"a", b"\0").contains(b"zzz"));
        assert!(!range(b"b", b"\0").contains(b"a"));
        assert!(range(b"a", b"b").contains(b"a\xff"));
        assert!(!range(b"a", b"b").contains(b"b"));
        assert!(range(b"\0", b"\0").contains(b"\0"));
        assert!(range(b"b", b"a").is_empty());
    }

    #[test]
    fn overlap() {
        assert!(range(b"a", b"c").overlaps(&range(b"b", b"")));
        assert!(!range(b"a", b"c").overlaps(&range(b"c", b"")));
        assert!(range(b"a", b"\0").overlaps(&range(b"zz", b"zzz")));
        assert!(range(b"k", b"").overlaps(&range(b"k", b"")));
        assert!(!range(b"k", b"").overlaps(&range(b"j", b"")));
        assert!(!range(b"b", b"a").overlaps(&range(b"a", b"\0")));
    }
}
