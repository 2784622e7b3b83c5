//! Byte layouts of the keys in the `kv`, `rev`, `lease` and `lease_keys` column families.
//!
//! `kv` holds every version of every user key, keyed so that RocksDB's byte order is
//! (user key ascending, revision descending):
//!
//! ```text
//! escape(user key) ++ 0x00 0x01 ++ !revision (u64 big-endian)
//! ```
//!
//! `escape` turns each 0x00 into 0x00 0xFF; the 0x00 0x01 terminator then sorts below any
//! continuation of the key, so the encoding is order-preserving and prefix-free: a key
//! sorts before every longer key it is a prefix of, whatever revision follows. Inverting
//! the revision puts the newest version first, so "the version visible at revision R" is
//! one seek to `prefix ++ !R`.
//!
//! `rev` is keyed by (main, sub) revision, both u64 big-endian: the history in commit order.
//!
//! `lease` is keyed by lease id (i64 big-endian); `lease_keys` by lease id ++ user key, so
//! the keys a lease holds are one prefix scan.

/// Bytes after the escaped user key that end it.
const TERMINATOR: [u8; 2] = [0x00, 0x01];
/// What a 0x00 in a user key becomes.
const ESCAPED_ZERO: [u8; 2] = [0x00, 0xFF];
/// Length of the inverted revision that ends a version key.
pub const REVISION_BYTES: usize = 8;
/// Length of a `rev` column family key: main and sub revision.
pub const REV_KEY_BYTES: usize = 16;

/// Appends the escaped, terminated form of `user_key`: the prefix shared by all its versions.
pub fn push_key_prefix(out: &mut Vec<u8>, user_key: &[u8]) {
    out.reserve(user_key.len() + TERMINATOR.len() + REVISION_BYTES);
    for &byte in user_key {
        if byte == 0 {
            out.extend_from_slice(&ESCAPED_ZERO);
        } else {
            out.push(byte);
        }
    }
    out.extend_from_slice(&TERMINATOR);
}

/// The prefix shared by all versions of `user_key`.
pub fn key_prefix(user_key: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    push_key_prefix(&mut out, user_key);
    out
}

/// The `kv` key of `user_key` at `revision`.
pub fn version_key(user_key: &[u8], revision: i64) -> Vec<u8> {
    let mut out = key_prefix(user_key);
    push_revision(&mut out, revision);
    out
}

/// Appends the inverted revision, so newer versions sort first.
pub fn push_revision(out: &mut Vec<u8>, revision: i64) {
    assert!(revision >= 0, "revisions are never negative: {revision}");
    out.extend_from_slice(&(!(revision as u64)).to_be_bytes());
}

/// The smallest `kv` key above every version of the key whose prefix is given: where the
/// next user key starts. Revision 0 never exists, so `!0` is past the oldest version.
pub fn after_all_versions(prefix: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(prefix.len() + REVISION_BYTES);
    out.extend_from_slice(prefix);
    out.extend_from_slice(&[0xFF; REVISION_BYTES]);
    out
}

/// Splits a `kv` key into its prefix (escaped key + terminator) and revision.
pub fn split_version_key(key: &[u8]) -> (&[u8], i64) {
    assert!(
        key.len() >= TERMINATOR.len() + REVISION_BYTES,
        "kv key too short: {key:?}"
    );
    let (prefix, revision) = key.split_at(key.len() - REVISION_BYTES);
    let inverted = u64::from_be_bytes(revision.try_into().expect("8 bytes"));
    (prefix, !inverted as i64)
}

/// RocksDB's prefix extractor for `kv`: a version key without its revision, so that
/// bloom filters answer "does this file hold any version of the key?".
pub fn version_key_prefix(key: &[u8]) -> &[u8] {
    &key[..key.len() - REVISION_BYTES]
}

/// Whether [`version_key_prefix`] applies: every `kv` key is at least this long.
pub fn is_version_key(key: &[u8]) -> bool {
    key.len() >= TERMINATOR.len() + REVISION_BYTES
}

/// Recovers the user key from a prefix made by [`push_key_prefix`].
pub fn decode_key_prefix(prefix: &[u8]) -> Vec<u8> {
    let body = prefix
        .strip_suffix(&TERMINATOR)
        .unwrap_or_else(|| panic!("kv key prefix without terminator: {prefix:?}"));
    let mut out = Vec::with_capacity(body.len());
    let mut bytes = body.iter();
    while let Some(&byte) = bytes.next() {
        out.push(byte);
        if byte == 0 {
            let escape = bytes.next();
            assert_eq!(escape, Some(&0xFF), "bad escape in kv key {prefix:?}");
        }
    }
    out
}

/// The `rev` key of a write: main revision then its index within the revision.
pub fn rev_key(main: i64, sub: i64) -> [u8; REV_KEY_BYTES] {
    assert!(main >= 0 && sub >= 0, "negative revision ({main}, {sub})");
    let mut out = [0u8; REV_KEY_BYTES];
    out[..8].copy_from_slice(&(main as u64).to_be_bytes());
    out[8..].copy_from_slice(&(sub as u64).to_be_bytes());
    out
}

/// Splits a `rev` key into (main, sub).
pub fn split_rev_key(key: &[u8]) -> (i64, i64) {
    assert_eq!(key.len(), REV_KEY_BYTES, "bad rev key {key:?}");
    let main = u64::from_be_bytes(key[..8].try_into().expect("8 bytes"));
    let sub = u64::from_be_bytes(key[8..].try_into().expect("8 bytes"));
    (main as i64, sub as i64)
}

/// The `lease` key of lease `id`, also the prefix of its `lease_keys` entries.
pub(crate) fn lease_key(id: i64) -> [u8; 8] {
    id.to_be_bytes()
}

/// The `lease_keys` entry recording that lease `id` holds `key`.
pub(crate) fn lease_key_entry(id: i64, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + key.len());
    out.extend_from_slice(&lease_key(id));
    out.extend_from_slice(key);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn newest_version_sorts_first() {
        assert!(version_key(b"a", 9) < version_key(b"a", 3));
    }

    #[test]
    fn key_sorts_before_its_extensions_at_any_revision() {
        assert!(version_key(b"a", 1) < version_key(b"a\x00", 100));
        assert!(version_key(b"a", 1) < version_key(b"a\x00\x00", 1));
        assert!(version_key(b"a\x00", 1) < version_key(b"a\x01", 1));
    }

    #[test]
    fn after_all_versions_is_below_the_next_key() {
        let prefix = key_prefix(b"a");
        let bound = after_all_versions(&prefix);
        assert!(version_key(b"a", 1) < bound);
        assert!(bound < version_key(b"a\x00", i64::MAX));
    }

    proptest! {
        #[test]
        fn encoding_preserves_order(
            a in proptest::collection::vec(any::<u8>(), 0..8),
            b in proptest::collection::vec(any::<u8>(), 0..8),
            ra in 1i64..1000,
            rb in 1i64..1000,
        ) {
            let ka = version_key(&a, ra);
            let kb = version_key(&b, rb);
            let expected = a.cmp(&b).then(rb.cmp(&ra));
            prop_assert_eq!(ka.cmp(&kb), expected);
        }

        #[test]
        fn encoding_round_trips(key in proptest::collection::vec(any::<u8>(), 0..16), rev in 0i64..i64::MAX) {
            let encoded = version_key(&key, rev);
            let (prefix, decoded_rev) = split_version_key(&encoded);
            prop_assert_eq!(decode_key_prefix(prefix), key);
            prop_assert_eq!(decoded_rev, rev);
        }

        #[test]
        fn rev_keys_sort_by_main_then_sub(a in 0i64..1000, b in 0i64..1000, c in 0i64..10, d in 0i64..10) {
            prop_assert_eq!(rev_key(a, c).cmp(&rev_key(b, d)), (a, c).cmp(&(b, d)));
            prop_assert_eq!(split_rev_key(&rev_key(a, c)), (a, c));
        }
    }
}
