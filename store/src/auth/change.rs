//! How each auth request changes the auth state, as etcd's auth store decides it: the
//! checks, their order and their errors, and the auth revision moved by every change.
//! Pure: the changed data and the records to write come back; the store writes them.

use ballast_proto::authpb::{Permission, Role, User, UserAddOptions};
use ballast_proto::etcdserverpb::{
    AuthRoleAddRequest, AuthRoleDeleteRequest, AuthRoleGrantPermissionRequest,
    AuthRoleRevokePermissionRequest, AuthUserAddRequest, AuthUserChangePasswordRequest,
    AuthUserDeleteRequest, AuthUserGrantRoleRequest, AuthUserRevokeRoleRequest,
};
use prost::Message as _;

use super::{has_root_role, layout, AuthData, ROOT};
use crate::error::{Error, Result};
use crate::record::encode_u64;

/// A user whose Authenticate entry was applied, and the token every member learns for
/// them (empty unless simple tokens are in use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    pub user: String,
    pub token: String,
}

/// The auth data being changed by one entry, and the records to write for it.
#[derive(Debug)]
pub struct AuthChange {
    pub data: AuthData,
    /// `auth` column family records: Some(value) to put, None to delete.
    pub writes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl AuthChange {
    pub fn new(data: AuthData) -> AuthChange {
        AuthChange {
            data,
            writes: Vec::new(),
        }
    }

    /// Moves the auth revision: every change does, so checks made before it are stale.
    fn commit_revision(&mut self) {
        self.data.revision += 1;
        self.writes.push((
            layout::REVISION.to_vec(),
            Some(encode_u64(self.data.revision).to_vec()),
        ));
    }

    fn put_user(&mut self, user: User) {
        let name = String::from_utf8_lossy(&user.name).into_owned();
        self.writes
            .push((layout::user(&name), Some(user.encode_to_vec())));
        self.data.users.insert(name, user);
    }

    fn put_role(&mut self, role: Role) {
        let name = String::from_utf8_lossy(&role.name).into_owned();
        self.writes
            .push((layout::role(&name), Some(role.encode_to_vec())));
        self.data.roles.insert(name, role);
    }

    fn user(&self, name: &str) -> Result<User> {
        self.data
            .users
            .get(name)
            .cloned()
            .ok_or(Error::UserNotFound)
    }

    fn role(&self, name: &str) -> Result<Role> {
        self.data
            .roles
            .get(name)
            .cloned()
            .ok_or(Error::RoleNotFound)
    }

    fn set_enabled(&mut self, enabled: bool) {
        self.data.enabled = enabled;
        self.writes
            .push((layout::ENABLED.to_vec(), Some(vec![enabled as u8])));
    }

    /// Turns auth on: refused unless user root exists and holds role root. Turning it
    /// on again changes nothing. (etcd does not move the revision here; the next change
    /// does. Ballast moves it, so that what was checked with auth off is refused after.)
    pub fn enable(&mut self) -> Result<()> {
        if self.data.enabled {
            return Ok(());
        }
        let root = self.data.users.get(ROOT).ok_or(Error::RootUserNotExist)?;
        if !has_root_role(root) {
            return Err(Error::RootRoleNotExist);
        }
        self.set_enabled(true);
        self.commit_revision();
        Ok(())
    }

    pub fn disable(&mut self) {
        if !self.data.enabled {
            return;
        }
        self.set_enabled(false);
        self.commit_revision();
    }

    /// Adds a user. `hashed_password` holds the bcrypt hash the proposer made.
    pub fn user_add(&mut self, req: &AuthUserAddRequest) -> Result<()> {
        if req.name.is_empty() {
            return Err(Error::UserEmpty);
        }
        if self.data.users.contains_key(&req.name) {
            return Err(Error::UserExists);
        }
        let options = req.options.unwrap_or(UserAddOptions { no_password: false });
        let password = if options.no_password {
            Default::default()
        } else {
            req.hashed_password.as_bytes().to_vec().into()
        };
        self.put_user(User {
            name: req.name.as_bytes().to_vec().into(),
            password,
            roles: Vec::new(),
            options: Some(options),
        });
        self.commit_revision();
        Ok(())
    }

    pub fn user_delete(&mut self, req: &AuthUserDeleteRequest) -> Result<()> {
        if self.data.enabled && req.name == ROOT {
            return Err(Error::InvalidAuthMgmt);
        }
        self.user(&req.name)?;
        self.data.users.remove(&req.name);
        self.writes.push((layout::user(&req.name), None));
        self.commit_revision();
        Ok(())
    }

    pub fn user_change_password(&mut self, req: &AuthUserChangePasswordRequest) -> Result<()> {
        let mut user = self.user(&req.name)?;
        if !no_password(&user.options) {
            user.password = req.hashed_password.as_bytes().to_vec().into();
        }
        self.put_user(user);
        self.commit_revision();
        Ok(())
    }

    pub fn user_grant_role(&mut self, req: &AuthUserGrantRoleRequest) -> Result<()> {
        let mut user = self.user(&req.user)?;
        if req.role != ROOT {
            self.role(&req.role)?;
        }
        match user.roles.binary_search(&req.role) {
            // Granting a role twice is not an error, and changes nothing.
            Ok(_) => return Ok(()),
            Err(at) => user.roles.insert(at, req.role.clone()),
        }
        self.put_user(user);
        self.commit_revision();
        Ok(())
    }

    pub fn user_revoke_role(&mut self, req: &AuthUserRevokeRoleRequest) -> Result<()> {
        if self.data.enabled && req.name == ROOT && req.role == ROOT {
            return Err(Error::InvalidAuthMgmt);
        }
        let mut user = self.user(&req.name)?;
        let before = user.roles.len();
        user.roles.retain(|r| *r != req.role);
        if user.roles.len() == before {
            return Err(Error::RoleNotGranted);
        }
        self.put_user(user);
        self.commit_revision();
        Ok(())
    }

    pub fn role_add(&mut self, req: &AuthRoleAddRequest) -> Result<()> {
        if req.name.is_empty() {
            return Err(Error::RoleEmpty);
        }
        if self.data.roles.contains_key(&req.name) {
            return Err(Error::RoleExists);
        }
        self.put_role(Role {
            name: req.name.as_bytes().to_vec().into(),
            key_permission: Vec::new(),
        });
        self.commit_revision();
        Ok(())
    }

    /// Deletes a role and takes it from every user holding it.
    pub fn role_delete(&mut self, req: &AuthRoleDeleteRequest) -> Result<()> {
        if self.data.enabled && req.role == ROOT {
            return Err(Error::InvalidAuthMgmt);
        }
        self.role(&req.role)?;
        self.data.roles.remove(&req.role);
        self.writes.push((layout::role(&req.role), None));
        let holders: Vec<User> = self
            .data
            .users
            .values()
            .filter(|u| u.roles.contains(&req.role))
            .cloned()
            .collect();
        for mut user in holders {
            user.roles.retain(|r| *r != req.role);
            self.put_user(user);
        }
        self.commit_revision();
        Ok(())
    }

    /// Grants a permission; one on the same key and range end changes its type.
    pub fn role_grant_permission(&mut self, req: &AuthRoleGrantPermissionRequest) -> Result<()> {
        let Some(perm) = &req.perm else {
            return Err(Error::PermissionNotGiven);
        };
        let mut role = self.role(&req.name)?;
        let same = |p: &Permission| p.key == perm.key && p.range_end == perm.range_end;
        match role.key_permission.iter_mut().find(|p| same(p)) {
            Some(existing) => existing.perm_type = perm.perm_type,
            None => {
                let at = role.key_permission.partition_point(|p| p.key <= perm.key);
                role.key_permission.insert(at, perm.clone());
            }
        }
        self.put_role(role);
        self.commit_revision();
        Ok(())
    }

    pub fn role_revoke_permission(&mut self, req: &AuthRoleRevokePermissionRequest) -> Result<()> {
        let mut role = self.role(&req.role)?;
        let before = role.key_permission.len();
        role.key_permission
            .retain(|p| p.key != req.key || p.range_end != req.range_end);
        if role.key_permission.len() == before {
            return Err(Error::PermissionNotGranted);
        }
        self.put_role(role);
        self.commit_revision();
        Ok(())
    }
}

/// Issues a token to a user whose password the proposer checked: changes nothing.
pub fn authenticate(
    data: &AuthData,
    name: &str,
    simple_token: &str,
    index: u64,
) -> Result<Authenticated> {
    if !data.enabled {
        return Err(Error::AuthNotEnabled);
    }
    match data.users.get(name) {
        None => Err(Error::AuthFailed),
        Some(user) if no_password(&user.options) => Err(Error::AuthFailed),
        Some(_) => Ok(Authenticated {
            user: name.to_string(),
            token: if simple_token.is_empty() {
                String::new()
            } else {
                format!("{simple_token}.{index}")
            },
        }),
    }
}

pub(crate) fn no_password(options: &Option<UserAddOptions>) -> bool {
    options.is_some_and(|o| o.no_password)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Access, Auth, INITIAL_AUTH_REVISION};
    use ballast_proto::authpb::permission::Type;

    fn fresh() -> AuthChange {
        AuthChange::new(AuthData {
            revision: INITIAL_AUTH_REVISION,
            ..AuthData::default()
        })
    }

    fn add_user(change: &mut AuthChange, name: &str) {
        change
            .user_add(&AuthUserAddRequest {
                name: name.into(),
                hashed_password: "$2b$04$hash".into(),
                ..Default::default()
            })
            .unwrap();
    }

    fn grant_role(change: &mut AuthChange, user: &str, role: &str) -> Result<()> {
        change.user_grant_role(&AuthUserGrantRoleRequest {
            user: user.into(),
            role: role.into(),
        })
    }

    #[test]
    fn enable_needs_root_with_the_root_role() {
        let mut change = fresh();
        assert!(matches!(change.enable(), Err(Error::RootUserNotExist)));
        add_user(&mut change, ROOT);
        assert!(matches!(change.enable(), Err(Error::RootRoleNotExist)));
        grant_role(&mut change, ROOT, ROOT).unwrap();
        let before = change.data.revision;
        change.enable().unwrap();
        assert!(change.data.enabled);
        assert_eq!(change.data.revision, before + 1);
        // Root can neither be deleted nor lose its role while auth is on.
        let delete = AuthUserDeleteRequest { name: ROOT.into() };
        assert!(matches!(
            change.user_delete(&delete),
            Err(Error::InvalidAuthMgmt)
        ));
        let revoke = AuthUserRevokeRoleRequest {
            name: ROOT.into(),
            role: ROOT.into(),
        };
        assert!(matches!(
            change.user_revoke_role(&revoke),
            Err(Error::InvalidAuthMgmt)
        ));
    }

    #[test]
    fn every_change_moves_the_revision_and_refusals_do_not() {
        let mut change = fresh();
        add_user(&mut change, "alice");
        let after_add = change.data.revision;
        assert_eq!(after_add, INITIAL_AUTH_REVISION + 1);
        let again = change.user_add(&AuthUserAddRequest {
            name: "alice".into(),
            ..Default::default()
        });
        assert!(matches!(again, Err(Error::UserExists)));
        assert!(matches!(
            grant_role(&mut change, "alice", "nope"),
            Err(Error::RoleNotFound)
        ));
        assert!(matches!(
            grant_role(&mut change, "bob", ROOT),
            Err(Error::UserNotFound)
        ));
        assert_eq!(change.data.revision, after_add);
    }

    #[test]
    fn grants_reach_the_permission_check_and_role_delete_takes_them_back() {
        let mut change = fresh();
        add_user(&mut change, "alice");
        change
            .role_add(&AuthRoleAddRequest { name: "r".into() })
            .unwrap();
        let perm = Permission {
            perm_type: Type::Read as i32,
            key: b"a/".to_vec().into(),
            range_end: b"a0".to_vec().into(),
        };
        change
            .role_grant_permission(&AuthRoleGrantPermissionRequest {
                name: "r".into(),
                perm: Some(perm.clone()),
            })
            .unwrap();
        // The same key and range again changes the type instead of adding a grant.
        change
            .role_grant_permission(&AuthRoleGrantPermissionRequest {
                name: "r".into(),
                perm: Some(Permission {
                    perm_type: Type::Readwrite as i32,
                    ..perm.clone()
                }),
            })
            .unwrap();
        assert_eq!(change.data.roles["r"].key_permission.len(), 1);
        grant_role(&mut change, "alice", "r").unwrap();
        add_user(&mut change, ROOT);
        grant_role(&mut change, ROOT, ROOT).unwrap();
        change.enable().unwrap();

        let auth = Auth::new(change.data.clone());
        auth.check("alice", Access::Write, b"a/x", b"").unwrap();
        assert!(matches!(
            auth.check("alice", Access::Read, b"b", b""),
            Err(Error::PermissionDenied)
        ));
        assert!(matches!(
            auth.check_admin("alice"),
            Err(Error::PermissionDenied)
        ));
        auth.check_admin(ROOT).unwrap();
        auth.check(ROOT, Access::Write, b"anything", b"\0").unwrap();

        change
            .role_delete(&AuthRoleDeleteRequest { role: "r".into() })
            .unwrap();
        assert!(change.data.users["alice"].roles.is_empty());
        let auth = Auth::new(change.data.clone());
        assert!(auth.check("alice", Access::Read, b"a/x", b"").is_err());
    }

    #[test]
    fn revoking_what_was_not_granted_is_refused() {
        let mut change = fresh();
        change
            .role_add(&AuthRoleAddRequest { name: "r".into() })
            .unwrap();
        let revoke = AuthRoleRevokePermissionRequest {
            role: "r".into(),
            key: b"k".to_vec().into(),
            range_end: Default::default(),
        };
        assert!(matches!(
            change.role_revoke_permission(&revoke),
            Err(Error::PermissionNotGranted)
        ));
        add_user(&mut change, "u");
        let revoke_role = AuthUserRevokeRoleRequest {
            name: "u".into(),
            role: "r".into(),
        };
        assert!(matches!(
            change.user_revoke_role(&revoke_role),
            Err(Error::RoleNotGranted)
        ));
    }

    #[test]
    fn simple_tokens_carry_the_entry_index_and_no_password_users_cannot_log_in() {
        let mut change = fresh();
        assert!(matches!(
            authenticate(&change.data, "x", "t", 1),
            Err(Error::AuthNotEnabled)
        ));
        add_user(&mut change, ROOT);
        grant_role(&mut change, ROOT, ROOT).unwrap();
        change
            .user_add(&AuthUserAddRequest {
                name: "cert-only".into(),
                options: Some(UserAddOptions { no_password: true }),
                ..Default::default()
            })
            .unwrap();
        change.enable().unwrap();
        let issued = authenticate(&change.data, ROOT, "abc", 42).unwrap();
        assert_eq!(issued.token, "abc.42");
        assert!(matches!(
            authenticate(&change.data, "cert-only", "abc", 43),
            Err(Error::AuthFailed)
        ));
        assert!(matches!(
            authenticate(&change.data, "ghost", "abc", 44),
            Err(Error::AuthFailed)
        ));
    }
}
