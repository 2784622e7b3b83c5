//! Authentication: who is asking, as kube-apiserver decides it. Each authenticator is
//! asked in turn: a client certificate verified against --client-ca-file (CN is the user,
//! O the groups), a bearer token from --token-auth-file; a request with neither is
//! `system:anonymous` when --anonymous-auth is on. A credential that is presented and
//! wrong is a 401 whatever the rest. Every authenticated user is in
//! `system:authenticated`.

pub mod service_accounts;
mod tokens;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use http::HeaderMap;
use x509_parser::prelude::{FromDer as _, X509Certificate};

use crate::resources;
use crate::status::{ApiError, ApiResult};
use crate::storage::Storage;
use crate::transport::Peer;
use crate::watch::Caches;
use service_accounts::{ServiceAccountTokens, SERVICE_ACCOUNTS_GROUP};

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
#[derive(Debug)]
pub struct Authenticator {
    tokens: Option<TokenFile>,
    anonymous: bool,
    service_accounts: Arc<ServiceAccountTokens>,
    /// Where service accounts, pods and secrets are looked up (cache first).
    storage: Storage,
    caches: Arc<Caches>,
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
    /// From the flags: `--token-auth-file`, `--anonymous-auth`, and the service account
    /// token keys.
    pub fn new(
        token_file: Option<&Path>,
        anonymous: bool,
        service_accounts: Arc<ServiceAccountTokens>,
        storage: Storage,
        caches: Arc<Caches>,
    ) -> Result<Authenticator, String> {
        Ok(Authenticator {
            tokens: token_file.map(TokenFile::load).transpose()?,
            anonymous,
            service_accounts,
            storage,
            caches,
        })
    }

    /// Whether the object still exists with this uid (the watch cache first, the store
    /// when the cache does not have it as named).
    async fn alive(&self, plural: &str, namespace: &str, name: &str, uid: &str) -> bool {
        let Some(resource) = resources::find("", "v1", plural) else {
            return false;
        };
        let cache = self.caches.of(resource);
        if cache
            .get(&format!("{namespace}/{name}"))
            .is_some_and(|o| crate::object::meta_str(&o, "uid") == Some(uid))
        {
            return true;
        }
        let key = self.storage.key(resource, Some(namespace), name);
        matches!(self.storage.get(resource, &key).await, Ok(Some(s)) if crate::object::meta_str(&s.object, "uid") == Some(uid))
    }

    /// The service account user of a token, if it is one this API issued for objects
    /// that still exist.
    async fn service_account(&self, token: &str) -> Option<User> {
        let claims = self.service_accounts.verify(token)?;
        let k = &claims.kubernetes;
        if !self
            .alive(
                "serviceaccounts",
                &k.namespace,
                &k.serviceaccount.name,
                &k.serviceaccount.uid,
            )
            .await
        {
            return None;
        }
        let mut extra = BTreeMap::new();
        if let Some(pod) = &k.pod {
            if !self.alive("pods", &k.namespace, &pod.name, &pod.uid).await {
                return None;
            }
            extra.insert(
                "authentication.kubernetes.io/pod-name".to_string(),
                vec![pod.name.clone()],
            );
            extra.insert(
                "authentication.kubernetes.io/pod-uid".to_string(),
                vec![pod.uid.clone()],
            );
        }
        if let Some(secret) = &k.secret {
            if !self
                .alive("secrets", &k.namespace, &secret.name, &secret.uid)
                .await
            {
                return None;
            }
        }
        extra.insert(
            "authentication.kubernetes.io/credential-id".to_string(),
            vec![format!("JTI={}", claims.jti)],
        );
        let groups = vec![
            SERVICE_ACCOUNTS_GROUP.to_string(),
            format!("{SERVICE_ACCOUNTS_GROUP}:{}", k.namespace),
        ];
        let mut user = User::authenticated(claims.sub, k.serviceaccount.uid.clone(), groups);
        user.extra = extra;
        Some(user)
    }

    /// The user of a request.
    pub async fn authenticate(&self, headers: &HeaderMap, peer: &Peer) -> ApiResult<User> {
        if let Some(value) = headers.get(http::header::AUTHORIZATION) {
            let token = value
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .ok_or_else(unauthorized)?;
            if let Some(user) = self.tokens.as_ref().and_then(|tokens| tokens.user(token)) {
                return Ok(user);
            }
            return self.service_account(token).await.ok_or_else(unauthorized);
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
