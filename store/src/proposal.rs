//! What may be proposed through raft, and what applying each kind answers.
//!
//! One table (the `proposals!` invocation below) pairs every request kind of the raft log
//! with its response kind. The apply dispatch (`store::apply`) turns a request's result
//! into a [`Response`] through the request's own [`Proposal`] impl, and a proposer turns
//! the [`Response`] back through the same impl: a Put proposal gets a Put result by
//! construction, and no layer in between matches request kinds to response kinds.

use ballast_proto::ballast::internal::raft_request::Request;
use ballast_proto::ballast::internal::Authenticate;
use ballast_proto::etcdserverpb::{
    AlarmRequest, AlarmResponse, AuthDisableRequest, AuthDisableResponse, AuthEnableRequest,
    AuthEnableResponse, AuthRoleAddRequest, AuthRoleAddResponse, AuthRoleDeleteRequest,
    AuthRoleDeleteResponse, AuthRoleGrantPermissionRequest, AuthRoleGrantPermissionResponse,
    AuthRoleRevokePermissionRequest, AuthRoleRevokePermissionResponse, AuthUserAddRequest,
    AuthUserAddResponse, AuthUserChangePasswordRequest, AuthUserChangePasswordResponse,
    AuthUserDeleteRequest, AuthUserDeleteResponse, AuthUserGrantRoleRequest,
    AuthUserGrantRoleResponse, AuthUserRevokeRoleRequest, AuthUserRevokeRoleResponse,
    AuthenticateResponse, CompactionRequest, CompactionResponse, DeleteRangeRequest,
    DeleteRangeResponse, LeaseGrantRequest, LeaseGrantResponse, LeaseRevokeRequest,
    LeaseRevokeResponse, Member, MemberUpdateRequest, PutRequest, PutResponse, TxnRequest,
    TxnResponse,
};

/// The client-visible result of applying one entry.
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(TxnResponse),
    Compaction(CompactionResponse),
    LeaseGrant(LeaseGrantResponse),
    LeaseRevoke(LeaseRevokeResponse),
    /// A membership change of any kind: the members after it.
    Members(Vec<Member>),
    AuthEnable(AuthEnableResponse),
    AuthDisable(AuthDisableResponse),
    Authenticate(AuthenticateResponse),
    UserAdd(AuthUserAddResponse),
    UserDelete(AuthUserDeleteResponse),
    UserChangePassword(AuthUserChangePasswordResponse),
    UserGrantRole(AuthUserGrantRoleResponse),
    UserRevokeRole(AuthUserRevokeRoleResponse),
    RoleAdd(AuthRoleAddResponse),
    RoleDelete(AuthRoleDeleteResponse),
    RoleGrantPermission(AuthRoleGrantPermissionResponse),
    RoleRevokePermission(AuthRoleRevokePermissionResponse),
    Alarm(AlarmResponse),
}

/// A request that travels through the raft log, with the response applying it gives.
pub trait Proposal: Sized {
    type Response;
    /// The request as the raft log carries it.
    fn into_request(self) -> Request;
    /// Wraps this kind's result for the proposer's wait (the apply side).
    fn wrap(response: Self::Response) -> Response;
    /// Unwraps this kind's result (the proposer's side). None only if the apply dispatch
    /// answered with another kind's response, which [`Proposal::wrap`] rules out.
    fn unwrap(response: Response) -> Option<Self::Response>;
}

macro_rules! proposals {
    ($($request:ty => $variant:ident, $response:ident($payload:ty);)*) => {$(
        impl Proposal for $request {
            type Response = $payload;
            fn into_request(self) -> Request {
                Request::$variant(self)
            }
            fn wrap(response: $payload) -> Response {
                Response::$response(response)
            }
            fn unwrap(response: Response) -> Option<$payload> {
                match response {
                    Response::$response(inner) => Some(inner),
                    _ => None,
                }
            }
        }
    )*};
}

proposals! {
    PutRequest => Put, Put(PutResponse);
    DeleteRangeRequest => DeleteRange, DeleteRange(DeleteRangeResponse);
    TxnRequest => Txn, Txn(TxnResponse);
    CompactionRequest => Compaction, Compaction(CompactionResponse);
    LeaseGrantRequest => LeaseGrant, LeaseGrant(LeaseGrantResponse);
    LeaseRevokeRequest => LeaseRevoke, LeaseRevoke(LeaseRevokeResponse);
    // A member announces its name and client URLs (etcd's "publish").
    Member => MemberAttributes, Members(Vec<Member>);
    MemberUpdateRequest => MemberUpdate, Members(Vec<Member>);
    AuthEnableRequest => AuthEnable, AuthEnable(AuthEnableResponse);
    AuthDisableRequest => AuthDisable, AuthDisable(AuthDisableResponse);
    Authenticate => Authenticate, Authenticate(AuthenticateResponse);
    AuthUserAddRequest => AuthUserAdd, UserAdd(AuthUserAddResponse);
    AuthUserDeleteRequest => AuthUserDelete, UserDelete(AuthUserDeleteResponse);
    AuthUserChangePasswordRequest => AuthUserChangePassword,
        UserChangePassword(AuthUserChangePasswordResponse);
    AuthUserGrantRoleRequest => AuthUserGrantRole, UserGrantRole(AuthUserGrantRoleResponse);
    AuthUserRevokeRoleRequest => AuthUserRevokeRole, UserRevokeRole(AuthUserRevokeRoleResponse);
    AuthRoleAddRequest => AuthRoleAdd, RoleAdd(AuthRoleAddResponse);
    AuthRoleDeleteRequest => AuthRoleDelete, RoleDelete(AuthRoleDeleteResponse);
    AuthRoleGrantPermissionRequest => AuthRoleGrantPermission,
        RoleGrantPermission(AuthRoleGrantPermissionResponse);
    AuthRoleRevokePermissionRequest => AuthRoleRevokePermission,
        RoleRevokePermission(AuthRoleRevokePermissionResponse);
    AlarmRequest => Alarm, Alarm(AlarmResponse);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_unwraps_only_its_own_response() {
        let put = PutRequest::wrap(PutResponse::default());
        assert!(PutRequest::unwrap(put.clone()).is_some());
        assert!(TxnRequest::unwrap(put).is_none());
        let members = Member::wrap(vec![Member::default()]);
        assert_eq!(
            MemberUpdateRequest::unwrap(members).map(|m| m.len()),
            Some(1)
        );
        assert!(matches!(
            LeaseGrantRequest::default().into_request(),
            Request::LeaseGrant(_)
        ));
    }
}
