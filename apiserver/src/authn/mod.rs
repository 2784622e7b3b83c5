//! Authentication: who is asking, as kube-apiserver decides it. Each authenticator is
//! asked in turn: a client certificate verified against --client-ca-file (CN is the user,
//! O the groups), a bearer token from --token-auth-file or a service account token
//! (bound, or legacy from a token Secret: see service_accounts); a request with neither is
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

    /// The core/v1 object of `plural` named so if `wanted` likes it (the watch cache
    /// first, the store when the cache does not have it as wanted: it may lag).
    async fn object(
        &self,
        plural: &str,
        namespace: &str,
        name: &str,
        wanted: impl Fn(&serde_json::Value) -> bool,
    ) -> Option<serde_json::Value> {
        let resource = resources::find("", "v1", plural)?;
        if let Some(object) = self
            .caches
            .of(resource)
            .get(&format!("{namespace}/{name}"))
            .filter(|o| wanted(o))
        {
            return Some(object);
        }
        let key = self.storage.key(resource, Some(namespace), name);
        let stored = self.storage.get(resource, &key).await.ok()??;
        wanted(&stored.object).then_some(stored.object)
    }

    /// Whether the object still exists with this uid.
    async fn alive(&self, plural: &str, namespace: &str, name: &str, uid: &str) -> bool {
        self.object(plural, namespace, name, |o| {
            crate::object::meta_str(o, "uid") == Some(uid)
        })
        .await
        .is_some()
    }

    /// The service account user of a legacy token, if its Secret still holds it (and is
    /// not being deleted) and its account is the one it was issued for.
    async fn legacy_service_account(&self, token: &str) -> Option<User> {
        use base64::Engine as _;
        let claims = self.service_accounts.verify_legacy(token)?;
        let holds_it = |secret: &serde_json::Value| {
            secret
                .pointer("/data/token")
                .and_then(serde_json::Value::as_str)
                .and_then(|t| base64::engine::general_purpose::STANDARD.decode(t).ok())
                .is_some_and(|t| t == token.as_bytes())
        };
        self.object("secrets", &claims.namespace, &claims.secret_name, |s| {
            s.pointer("/metadata/deletionTimestamp").is_none() && holds_it(s)
        })
        .await?;
        if !self
            .alive(
                "serviceaccounts",
                &claims.namespace,
                &claims.service_account_name,
                &claims.service_account_uid,
            )
            .await
        {
            return None;
        }
        let groups = vec![
            SERVICE_ACCOUNTS_GROUP.to_string(),
            format!("{SERVICE_ACCOUNTS_GROUP}:{}", claims.namespace),
        ];
        Some(User::authenticated(
            claims.sub,
            claims.service_account_uid,
            groups,
        ))
    }

    /// The service account user of a token, if it is one this API issued for objects
    /// that still exist.
    async fn service_account(&self, token: &str) -> Option<User> {
        let Some(claims) = self.service_accounts.verify(token) else {
            return self.legacy_service_account(token).await;
        };
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
