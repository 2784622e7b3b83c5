//! Auth: users, roles, permissions, enabling auth and issuing tokens, with etcd's
//! semantics. Changes go through raft (passwords already bcrypt-hashed); reads are
//! served from this member after a read barrier. Everything but Authenticate and
//! AuthStatus is root's, except reading one's own user and the roles one holds.

use std::sync::Arc;

use ballast_proto::ballast::internal::Authenticate;
use ballast_proto::etcdserverpb::auth_server::Auth;
use ballast_proto::etcdserverpb::*;
use ballast_store::{Error as StoreError, Proposal};
use tonic::{Request, Response, Status};

use crate::auth::password;
use crate::error::Error;
use crate::node::Node;
use crate::tokens::Tokens;

/// Authenticate attempts when auth changes between the password check and the apply.
const AUTHENTICATE_ATTEMPTS: usize = 3;

/// The Auth service.
#[derive(Debug, Clone)]
pub struct AuthService {
    node: Arc<Node>,
}

impl AuthService {
    pub fn new(node: Arc<Node>) -> Self {
        AuthService { node }
    }

    fn header(&self) -> Option<ResponseHeader> {
        Some(self.node.header(self.node.revision()))
    }

    /// Proposes a change reserved for root.
    async fn admin<P, R>(
        &self,
        request: Request<P>,
        header: fn(&mut R) -> &mut Option<ResponseHeader>,
    ) -> Result<Response<R>, Status>
    where
        P: Proposal<Response = R>,
    {
        let who = self.node.authorize(&request).await?;
        who.admin()?;
        let mut resp = self
            .node
            .raft
            .propose_checked(request.into_inner(), who.stamp)
            .await?;
        self.node.complete(header(&mut resp));
        Ok(Response::new(resp))
    }

    /// A read reserved for root (`allowed` lets others through): answered from this
    /// member once it has applied what was committed.
    async fn admin_read<T>(
        &self,
        request: &Request<T>,
        allowed: impl Fn(&str) -> bool,
    ) -> Result<(), Status> {
        let who = self.node.authorize(request).await?;
        if let Err(err) = who.admin() {
            if !who.auth.enabled() || !allowed(&who.user) {
                return Err(err.into());
            }
        }
        self.node.raft.read_barrier().await?;
        Ok(())
    }
}

#[tonic::async_trait]
impl Auth for AuthService {
    async fn auth_enable(
        &self,
        request: Request<AuthEnableRequest>,
    ) -> Result<Response<AuthEnableResponse>, Status> {
        self.admin(request, |r| &mut r.header).await
    }

    async fn auth_disable(
        &self,
        request: Request<AuthDisableRequest>,
    ) -> Result<Response<AuthDisableResponse>, Status> {
        self.admin(request, |r| &mut r.header).await
    }

    async fn auth_status(
        &self,
        _request: Request<AuthStatusRequest>,
    ) -> Result<Response<AuthStatusResponse>, Status> {
        self.node.raft.read_barrier().await?;
        let auth = self.node.store.auth();
        Ok(Response::new(AuthStatusResponse {
            header: self.header(),
            enabled: auth.enabled(),
            auth_revision: auth.revision(),
        }))
    }

    async fn authenticate(
        &self,
        request: Request<AuthenticateRequest>,
    ) -> Result<Response<AuthenticateResponse>, Status> {
        let req = request.into_inner();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let auth = self.node.store.auth();
            if !auth.enabled() {
                return Err(Error::from(StoreError::AuthNotEnabled).into());
            }
            let user = auth
                .user(&req.name)
                .ok_or(Error::from(StoreError::AuthFailed))?;
            if user.options.is_some_and(|o| o.no_password) {
                return Err(Error::from(StoreError::AuthFailed).into());
            }
            password::verify(req.password.clone(), user.password.to_vec()).await?;
            let entry = Authenticate {
                name: req.name.clone(),
                simple_token: self.node.tokens.simple_prefix().unwrap_or_default(),
            };
            let mut resp = match self.node.raft.propose_checked(entry, auth.revision()).await {
                // The password may have changed meanwhile: check it again.
                Err(Error::Store(StoreError::AuthOldRevision))
                    if attempts < AUTHENTICATE_ATTEMPTS =>
                {
                    continue
                }
                other => other?,
            };
            if let Tokens::Jwt(jwt) = &*self.node.tokens {
                resp.token = jwt
                    .sign(&req.name, auth.revision())
                    .map_err(Status::internal)?;
            }
            self.node.complete(&mut resp.header);
            return Ok(Response::new(resp));
        }
    }

    async fn user_add(
        &self,
        request: Request<AuthUserAddRequest>,
    ) -> Result<Response<AuthUserAddResponse>, Status> {
        let (metadata, extensions, mut req) = request.into_parts();
        if !req.options.is_some_and(|o| o.no_password) {
            let plain = std::mem::take(&mut req.password);
            req.hashed_password = password::hash(plain, self.node.config.bcrypt_cost).await?;
        }
        req.password.clear();
        self.admin(Request::from_parts(metadata, extensions, req), |r| {
            &mut r.header
        })
        .await
    }

    async fn user_get(
        &self,
        request: Request<AuthUserGetRequest>,
    ) -> Result<Response<AuthUserGetResponse>, Status> {
        let name = request.get_ref().name.clone();
        self.admin_read(&request, |caller| caller == name).await?;
        let auth = self.node.store.auth();
        let user = auth
            .user(&name)
            .ok_or(Error::from(StoreError::UserNotFound))?;
        Ok(Response::new(AuthUserGetResponse {
            header: self.header(),
            roles: user.roles.clone(),
        }))
    }

    async fn user_list(
        &self,
        request: Request<AuthUserListRequest>,
    ) -> Result<Response<AuthUserListResponse>, Status> {
        self.admin_read(&request, |_| false).await?;
        let auth = self.node.store.auth();
        Ok(Response::new(AuthUserListResponse {
            header: self.header(),
            users: auth.data().users.keys().cloned().collect(),
        }))
    }

    async fn user_delete(
        &self,
        request: Request<AuthUserDeleteRequest>,
    ) -> Result<Response<AuthUserDeleteResponse>, Status> {
        self.admin(request, |r| &mut r.header).await
    }

    async fn user_change_password(
        &self,
        request: Request<AuthUserChangePasswordRequest>,
    ) -> Result<Response<AuthUserChangePasswordResponse>, Status> {
        let (metadata, extensions, mut req) = request.into_parts();
        let plain = std::mem::take(&mut req.password);
        req.hashed_password = password::hash(plain, self.node.config.bcrypt_cost).await?;
        self.admin(Request::from_parts(metadata, extensions, req), |r| {
            &mut r.header
        })
        .await
    }

    async fn user_grant_role(
        &self,
        request: Request<AuthUserGrantRoleRequest>,
    ) -> Result<Response<AuthUserGrantRoleResponse>, Status> {
        self.admin(request, |r| &mut r.header).await
    }

    async fn user_revoke_role(
        &self,
        request: Request<AuthUserRevokeRoleRequest>,
    ) -> Result<Response<AuthUserRevokeRoleResponse>, Status> {
        self.admin(request, |r| &mut r.header).await
    }

    async fn role_add(
        &self,
        request: Request<AuthRoleAddRequest>,
    ) -> Result<Response<AuthRoleAddResponse>, Status> {
        self.admin(request, |r| &mut r.header).await
    }

    async fn role_get(
        &self,
        request: Request<AuthRoleGetRequest>,
    ) -> Result<Response<AuthRoleGetResponse>, Status> {
        let role = request.get_ref().role.clone();
        let auth = self.node.store.auth();
        self.admin_read(&request, |caller| {
            auth.user(caller).is_some_and(|u| u.roles.contains(&role))
        })
        .await?;
        // Read after the barrier: the state the caller was checked against may be older.
        let perm = self
            .node
            .store
            .auth()
            .role_permissions(&role)
            .map_err(Error::from)?;
        Ok(Response::new(AuthRoleGetResponse {
            header: self.header(),
            perm,
        }))
    }

    async fn role_list(
        &self,
        request: Request<AuthRoleListRequest>,
    ) -> Result<Response<AuthRoleListResponse>, Status> {
        self.admin_read(&request, |_| false).await?;
        let auth = self.node.store.auth();
        Ok(Response::new(AuthRoleListResponse {
            header: self.header(),
            roles: auth.data().roles.keys().cloned().collect(),
        }))
    }

    async fn role_delete(
        &self,
        request: Request<AuthRoleDeleteRequest>,
    ) -> Result<Response<AuthRoleDeleteResponse>, Status> {
        self.admin(request, |r| &mut r.header).await
    }

    async fn role_grant_permission(
        &self,
        request: Request<AuthRoleGrantPermissionRequest>,
    ) -> Result<Response<AuthRoleGrantPermissionResponse>, Status> {
        self.admin(request, |r| &mut r.header).await
    }

    async fn role_revoke_permission(
        &self,
        request: Request<AuthRoleRevokePermissionRequest>,
    ) -> Result<Response<AuthRoleRevokePermissionResponse>, Status> {
        self.admin(request, |r| &mut r.header).await
    }
}
