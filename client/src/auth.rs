//! Auth records: permissions and roles.

use ballast_proto::authpb;
use bytes::Bytes;

use crate::kv::Span;

/// What a permission allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PermissionKind {
    /// Reads.
    Read,
    /// Writes.
    Write,
    /// Reads and writes.
    ReadWrite,
}

/// A permission on a key or a range of keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permission {
    /// What it allows.
    pub kind: PermissionKind,
    /// The key, or the start of the range.
    pub key: Bytes,
    /// The end of the range; empty for one key.
    pub range_end: Bytes,
}

impl Permission {
    /// A permission on one key.
    pub fn key(kind: PermissionKind, key: impl AsRef<[u8]>) -> Self {
        Permission {
            kind,
            key: Bytes::copy_from_slice(key.as_ref()),
            range_end: Bytes::new(),
        }
    }

    /// A permission on every key starting with `prefix`.
    pub fn prefix(kind: PermissionKind, prefix: impl AsRef<[u8]>) -> Self {
        let (key, range_end) = Span::Prefix.resolve(Bytes::copy_from_slice(prefix.as_ref()));
        Permission {
            kind,
            key,
            range_end,
        }
    }
}

impl From<authpb::Permission> for Permission {
    fn from(p: authpb::Permission) -> Self {
        let kind = match authpb::permission::Type::try_from(p.perm_type) {
            Ok(authpb::permission::Type::Write) => PermissionKind::Write,
            Ok(authpb::permission::Type::Readwrite) => PermissionKind::ReadWrite,
            _ => PermissionKind::Read,
        };
        Permission {
            kind,
            key: p.key,
            range_end: p.range_end,
        }
    }
}

impl From<Permission> for authpb::Permission {
    fn from(p: Permission) -> Self {
        let kind = match p.kind {
            PermissionKind::Read => authpb::permission::Type::Read,
            PermissionKind::Write => authpb::permission::Type::Write,
            PermissionKind::ReadWrite => authpb::permission::Type::Readwrite,
        };
        authpb::Permission {
            perm_type: kind as i32,
            key: p.key,
            range_end: p.range_end,
        }
    }
}

/// A role and its permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleInfo {
    /// The role's name.
    pub name: String,
    /// What it may do.
    pub permissions: Vec<Permission>,
}
