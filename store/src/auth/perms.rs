//! A user's key permissions as sets of disjoint key intervals, one for reading and one
//! for writing, so that checking a request is one binary search, whatever the number
//! of roles and grants.

use ballast_proto::authpb::permission::Type;
use ballast_proto::authpb::Permission;

use crate::range_set::{End, RangeSet};

/// The interval etcd's `key`/`range_end` pair names: empty `range_end` is the key
/// alone (`[key, key\0)`), `"\0"` every key from `key` on. An empty interval
/// (`range_end <= key`) is treated as the key alone, so it is never vacuously allowed.
fn interval(key: &[u8], range_end: &[u8]) -> (Vec<u8>, End) {
    let end = match range_end {
        [0] => End::Unbounded,
        end if end > key => End::Before(end.to_vec()),
        _ => {
            let mut next = key.to_vec();
            next.push(0);
            End::Before(next)
        }
    };
    (key.to_vec(), end)
}

/// Keys one kind of access is granted on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Granted(RangeSet);

impl Granted {
    /// True if every key of `key`/`range_end` is granted.
    pub fn contains(&self, key: &[u8], range_end: &[u8]) -> bool {
        let (start, end) = interval(key, range_end);
        self.0.contains(&start, &end)
    }
}

/// What one user may read and write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserPermissions {
    pub read: Granted,
    pub write: Granted,
}

impl UserPermissions {
    /// The union of the given grants.
    pub fn from_grants<'a>(grants: impl IntoIterator<Item = &'a Permission>) -> UserPermissions {
        let (mut read, mut write) = (Vec::new(), Vec::new());
        for grant in grants {
            let range = interval(&grant.key, &grant.range_end);
            match grant.perm_type() {
                Type::Read => read.push(range),
                Type::Write => write.push(range),
                Type::Readwrite => {
                    read.push(range.clone());
                    write.push(range);
                }
            }
        }
        UserPermissions {
            read: Granted(read.into_iter().collect()),
            write: Granted(write.into_iter().collect()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn grant(kind: Type, key: &[u8], range_end: &[u8]) -> Permission {
        Permission {
            perm_type: kind as i32,
            key: key.to_vec().into(),
            range_end: range_end.to_vec().into(),
        }
    }

    #[test]
    fn a_key_grant_covers_that_key_only() {
        let perms = UserPermissions::from_grants(&[grant(Type::Read, b"a", b"")]);
        assert!(perms.read.contains(b"a", b""));
        assert!(!perms.read.contains(b"a0", b""));
        assert!(!perms.read.contains(b"a", b"b"));
        assert!(!perms.write.contains(b"a", b""));
    }

    #[test]
    fn prefix_and_open_ended_grants() {
        let perms = UserPermissions::from_grants(&[
            grant(Type::Readwrite, b"foo/", b"foo0"),
            grant(Type::Write, b"z", b"\0"),
        ]);
        assert!(perms.read.contains(b"foo/", b"foo0"));
        assert!(perms.read.contains(b"foo/x", b""));
        assert!(perms.write.contains(b"foo/a", b"foo/b"));
        assert!(!perms.read.contains(b"foo", b""));
        assert!(!perms.read.contains(b"foo/", b"\0"));
        assert!(perms.write.contains(b"zz", b"\0"));
        assert!(!perms.read.contains(b"zz", b""));
    }

    #[test]
    fn adjacent_grants_merge() {
        let perms = UserPermissions::from_grants(&[
            grant(Type::Read, b"a", b"c"),
            grant(Type::Read, b"c", b"e"),
        ]);
        assert!(perms.read.contains(b"a", b"e"));
        assert!(!perms.read.contains(b"a", b"f"));
    }

    proptest! {
        /// Containment agrees with checking every key of a small alphabet one by one.
        #[test]
        fn contains_matches_a_key_by_key_model(
            grants in proptest::collection::vec((0u8..6, 0u8..7), 0..6),
            query in (0u8..6, 0u8..7),
        ) {
            let key = |n: u8| vec![b'a' + n];
            let grants: Vec<Permission> = grants
                .iter()
                .map(|&(k, e)| grant(Type::Read, &key(k), &key(e)))
                .collect();
            let perms = UserPermissions::from_grants(&grants);
            let (k, e) = query;
            let covered = |probe: &[u8]| grants.iter().any(|g| {
                let (s, end) = interval(&g.key, &g.range_end);
                probe >= &s[..] && End::Before(probe.to_vec()) < end
            });
            // Keys are single letters, so the probes below see every boundary.
            let expected = if e > k {
                (k..e).all(|n| covered(&key(n)) && covered(&[b'a' + n, 0]))
            } else {
                covered(&key(k))
            };
            prop_assert_eq!(perms.read.contains(&key(k), &key(e)), expected);
        }
    }
}
