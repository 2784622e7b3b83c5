//! Authorization: may this user do this. Part 1 runs kube's `AlwaysAllow` mode; part 2
//! adds RBAC as further modes of this stage, asked in order.

use crate::authn::User;
use crate::status::ApiResult;
use crate::transport::request::ResourceRequest;

/// What is asked: a resource request or a path.
#[derive(Debug, Clone, Copy)]
pub enum Attributes<'a> {
    /// A request for an API resource.
    Resource(&'a ResourceRequest),
    /// A request for any other path.
    Path(&'a str),
}

/// The decision for `user` asking `attributes`.
pub fn authorize(_user: &User, _attributes: Attributes<'_>) -> ApiResult<()> {
    Ok(())
}
