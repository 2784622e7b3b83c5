//! etcd's auth store: users, roles and their key-range permissions, whether auth is on,
//! and the auth revision that moves on every change.
//!
//! The state lives in the `auth` column family, changes only through applied raft entries
//! (`change`), and is read through an immutable [`Auth`] that the store swaps whole on
//! every change. Each `Auth` caches the permission sets it computes per user, so a
//! cached set can never outlive the revision it was computed at.

mod change;
mod perms;

pub use change::{authenticate, AuthChange, Authenticated};
pub use perms::{Granted, UserPermissions};

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use ballast_proto::authpb::permission::Type;
use ballast_proto::authpb::{Permission, Role, User};
use prost::Message as _;

use crate::backend::{Backend, Cf};
use crate::error::{Error, Result};
use crate::record::decode_u64;

/// The user and the role with every permission; AuthEnable needs the one holding the other.
pub const ROOT: &str = "root";

/// The auth revision of a store that never changed auth (etcd starts at 1 too, so that 0
/// can mean "not checked").
pub const INITIAL_AUTH_REVISION: u64 = 1;

/// Keys of the `auth` column family.
pub mod layout {
    pub const ENABLED: &[u8] = b"enabled";
    pub const REVISION: &[u8] = b"revision";
    pub const USER_PREFIX: &[u8] = b"user/";
    pub const ROLE_PREFIX: &[u8] = b"role/";

    pub fn user(name: &str) -> Vec<u8> {
        [USER_PREFIX, name.as_bytes()].concat()
    }

    pub fn role(name: &str) -> Vec<u8> {
        [ROLE_PREFIX, name.as_bytes()].concat()
    }
}

/// What a request needs on its keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// The auth data as of one auth revision.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuthData {
    pub enabled: bool,
    pub revision: u64,
    pub users: BTreeMap<String, User>,
    pub roles: BTreeMap<String, Role>,
}

/// One auth revision's state, read-only, with its permission cache.
#[derive(Debug, Default)]
pub struct Auth {
    data: AuthData,
    permissions: Mutex<HashMap<String, Arc<UserPermissions>>>,
}

impl Auth {
    pub fn new(data: AuthData) -> Auth {
        Auth {
            data,
            permissions: Mutex::default(),
        }
    }

    /// Reads the auth state from the `auth` column family.
    pub fn load(backend: &Backend) -> Result<Auth> {
        let mut data = AuthData {
            enabled: backend
                .get(Cf::Auth, layout::ENABLED)?
                .is_some_and(|v| v == [1]),
            revision: match backend.get(Cf::Auth, layout::REVISION)? {
                Some(bytes) => decode_u64(&bytes)?,
                None => INITIAL_AUTH_REVISION,
            },
            ..AuthData::default()
        };
        let db = backend.db();
        for item in db.iterator_cf(backend.cf(Cf::Auth), rocksdb::IteratorMode::Start) {
            let (key, value) = item?;
            if let Some(name) = key.strip_prefix(layout::USER_PREFIX) {
                data.users.insert(utf8(name)?, User::decode(&value[..])?);
            } else if let Some(name) = key.strip_prefix(layout::ROLE_PREFIX) {
                data.roles.insert(utf8(name)?, Role::decode(&value[..])?);
            }
        }
        Ok(Auth::new(data))
    }

    pub fn data(&self) -> &AuthData {
        &self.data
    }

    pub fn enabled(&self) -> bool {
        self.data.enabled
    }

    pub fn revision(&self) -> u64 {
        self.data.revision
    }

    pub fn user(&self, name: &str) -> Option<&User> {
        self.data.users.get(name)
    }

    pub fn role(&self, name: &str) -> Option<&Role> {
        self.data.roles.get(name)
    }

    /// True if the user exists and holds the root role.
    pub fn is_root(&self, name: &str) -> bool {
        self.user(name).is_some_and(has_root_role)
    }

    /// The permissions a role lists, as RoleGet answers: root's is every key.
    pub fn role_permissions(&self, name: &str) -> Result<Vec<Permission>> {
        let role = self.role(name).ok_or(Error::RoleNotFound)?;
        if name == ROOT {
            return Ok(vec![Permission {
                perm_type: Type::Readwrite as i32,
                key: Default::default(),
                range_end: vec![0].into(),
            }]);
        }
        Ok(role.key_permission.clone())
    }

    /// Whether `user` may access the keys of `key`/`range_end` (etcd's range semantics).
    /// Always allowed with auth off; root may do anything.
    pub fn check(&self, user: &str, access: Access, key: &[u8], range_end: &[u8]) -> Result<()> {
        if !self.data.enabled {
            return Ok(());
        }
        let Some(found) = self.user(user) else {
            return Err(Error::PermissionDenied);
        };
        if has_root_role(found) {
            return Ok(());
        }
        let permissions = self.permissions(user);
        let set = match access {
            Access::Read => &permissions.read,
            Access::Write => &permissions.write,
        };
        if set.contains(key, range_end) {
            Ok(())
        } else {
            Err(Error::PermissionDenied)
        }
    }

    /// etcd's IsAdminPermitted: the operations reserved for root.
    pub fn check_admin(&self, user: &str) -> Result<()> {
        if !self.data.enabled {
            return Ok(());
        }
        if user.is_empty() {
            return Err(Error::UserEmpty);
        }
        match self.user(user) {
            None => Err(Error::UserNotFound),
            Some(found) if has_root_role(found) => Ok(()),
            Some(_) => Err(Error::PermissionDenied),
        }
    }

    /// The user's permission sets, computed once per auth revision.
    fn permissions(&self, user: &str) -> Arc<UserPermissions> {
        let mut cache = self.permissions.lock().expect("permission cache poisoned");
        if let Some(cached) = cache.get(user) {
            return cached.clone();
        }
        let grants = self
            .user(user)
            .into_iter()
            .flat_map(|u| &u.roles)
            .filter_map(|role| self.role(role))
            .flat_map(|role| &role.key_permission);
        let computed = Arc::new(UserPermissions::from_grants(grants));
        cache.insert(user.to_string(), computed.clone());
        computed
    }
}

pub(crate) fn has_root_role(user: &User) -> bool {
    user.roles
        .binary_search_by(|r| r.as_str().cmp(ROOT))
        .is_ok()
}

fn utf8(bytes: &[u8]) -> Result<String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| Error::Corrupt("non-UTF-8 auth name".into()))
}
