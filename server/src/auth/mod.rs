//! Who a request comes from and what it may do, decided once at the request's entry.
//!
//! A caller is named by a token (gRPC metadata `token`) or, with `--client-cert-auth` and
//! no token, by the common name of its client certificate, as etcd does. [`Authorized`]
//! holds the auth state the checks used; its `stamp` travels in the proposal, and the
//! apply refuses the entry if auth changed in between (`ballast_store::store::apply`),
//! so a revoked permission is never used after the revocation is applied.

mod checks;
pub(crate) mod password;

use std::sync::Arc;

use ballast_store::auth::Auth;
use ballast_store::Error as StoreError;
use tonic::metadata::MetadataMap;

use crate::error::{Error, Result};
use crate::node::Node;
use crate::tls::ConnInfo;
use crate::tokens::{simple_token_index, TokenInfo};

/// gRPC metadata carrying the token (etcd's `TokenFieldNameGRPC`), and the gateway's.
const TOKEN_METADATA: &str = "token";
const TOKEN_METADATA_GATEWAY: &str = "authorization";

/// A request's caller and the auth state its permissions are checked against.
#[derive(Debug)]
pub(crate) struct Authorized {
    pub(crate) auth: Arc<Auth>,
    /// Empty with auth off, or for a caller that named no one.
    pub(crate) user: String,
    /// The auth revision the checks are made at; the proposal carries it.
    pub(crate) stamp: u64,
    /// False when auth is on and no token or certificate named a user.
    named: bool,
}

impl Node {
    /// Resolves the caller of a request: its token, else its certificate's name.
    pub(crate) async fn authorize<T>(&self, request: &tonic::Request<T>) -> Result<Authorized> {
        self.authorize_parts(request.metadata(), request.extensions())
            .await
    }

    pub(crate) async fn authorize_parts(
        &self,
        metadata: &MetadataMap,
        extensions: &http::Extensions,
    ) -> Result<Authorized> {
        let auth = self.store.auth();
        let stamp = auth.revision();
        if !auth.enabled() {
            return Ok(Authorized {
                auth,
                user: String::new(),
                stamp,
                named: true,
            });
        }
        let token = metadata
            .get(TOKEN_METADATA)
            .or_else(|| metadata.get(TOKEN_METADATA_GATEWAY))
            .and_then(|v| v.to_str().ok());
        let user = match token {
            Some(token) => {
                let info = self.token_info(token).await?;
                if info.revision.is_some_and(|issued| issued < stamp) {
                    return Err(StoreError::AuthOldRevision.into());
                }
                Some(info.user)
            }
            None if self.config.client_cert_auth => extensions
                .get::<ConnInfo>()
                .and_then(|conn| conn.certificate.clone())
                .map(|name| name.0),
            None => None,
        };
        Ok(Authorized {
            auth,
            named: user.is_some(),
            user: user.unwrap_or_default(),
            stamp,
        })
    }

    /// A valid token's user. A simple token names the raft index that issued it: a member
    /// that has not applied it yet waits for it (within the request timeout).
    async fn token_info(&self, token: &str) -> Result<TokenInfo> {
        if let Some(info) = self.tokens.lookup(token) {
            return Ok(info);
        }
        let Some(index) = simple_token_index(token) else {
            return Err(Error::InvalidAuthToken);
        };
        if self.store.applied_index() >= index {
            return Err(Error::InvalidAuthToken);
        }
        let mut status = self.raft.watch_status();
        let applied = tokio::time::timeout(
            self.config.request_timeout(),
            status.wait_for(|s| s.applied >= index),
        )
        .await;
        if !matches!(applied, Ok(Ok(_))) {
            return Err(Error::InvalidAuthToken);
        }
        self.tokens.lookup(token).ok_or(Error::InvalidAuthToken)
    }
}
