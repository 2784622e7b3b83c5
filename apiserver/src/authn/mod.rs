//! Authentication: who is asking, as kube-apiserver decides it. Each authenticator is
//! asked in turn: a client certificate verified against --client-ca-file (CN is the user,
//! O the groups), a bearer token from --token-auth-file; a request with neither is
//! `system:anonymous` when --anonymous-auth is on. A credential that is presented and
//! wrong is a 401 whatever the rest. Every authenticated user is in
//! `system:authenticated`.

mod tokens;

use std::collections::BTreeMap;
use std::path::Path;

use http::HeaderMap;
use x509_parser::prelude::{FromDer as _, X509Certificate};

use crate::status::{ApiError, ApiResult};
use crate::transport::Peer;

pub use tokens::TokenFile;

/// The group of every authenticated user.
pub const AUTHENTICATED: &str = "system:authenticated";
/// The group of anonymous requests.
pub const UNAUTHENTICATED: &str = "system:unauthenticated";
/// The user of anonymous requests.
pub const ANONYMOUS: &str = "system:anonymous";

/// The user a request runs as.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct User {
    /// The user name.
    pub name: String,
    /// The uid, if the authenticator knows one.
    pub uid: String,
    /// Groups, `system:authenticated` included.
    pub groups: Vec<String>,
    /// Extra attributes (impersonation's `Impersonate-Extra-*`).
    pub extra: BTreeMap<String, Vec<String>>,
}

impl User {
    /// An authenticated user with `groups` (plus `system:authenticated`).
    pub fn authenticated(
        name: impl Into<String>,
        uid: impl Into<String>,
        mut groups: Vec<String>,
    ) -> User {
        if !groups.iter().any(|g| g == AUTHENTICATED) {
            groups.push(AUTHENTICATED.to_string());
        }
        User {
            name: name.into(),
            uid: uid.into(),
            groups,
            extra: BTreeMap::new(),
        }
    }

    /// `system:anonymous`.
    pub fn anonymous() -> User {
        User {
            name: ANONYMOUS.into(),
            groups: vec![UNAUTHENTICATED.into()],
            ..User::default()
        }
    }
}

/// The authenticators configured.
#[derive(Debug, Default)]
pub struct Authenticator {
    tokens: Option<TokenFile>,
    anonymous: bool,
}

/// The 401 kube answers when nothing authenticates a request.
pub fn unauthorized() -> ApiError {
    ApiError::new(401, "Unauthorized", "Unauthorized")
}

fn from_certificate(der: &[u8]) -> Option<User> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(String::from))
        .collect();
    Some(User::authenticated(name, "", groups))
}

impl Authenticator {
    /// From the flags: `--token-auth-file`, `--anonymous-auth`.
    pub fn new(token_file: Option<&Path>, anonymous: bool) -> Result<Authenticator, String> {
        Ok(Authenticator {
            tokens: token_file.map(TokenFile::load).transpose()?,
            anonymous,
        })
    }

    /// The user of a request.
    pub fn authenticate(&self, headers: &HeaderMap, peer: &Peer) -> ApiResult<User> {
        if let Some(value) = headers.get(http::header::AUTHORIZATION) {
            let token = value
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .ok_or_else(unauthorized)?;
            return self
                .tokens
                .as_ref()
                .and_then(|tokens| tokens.user(token))
                .ok_or_else(unauthorized);
        }
        if let Some(user) = peer.certificate.as_deref().and_then(from_certificate) {
            return Ok(user);
        }
        if self.anonymous {
            Ok(User::anonymous())
        } else {
            Err(unauthorized())
        }
    }
}
