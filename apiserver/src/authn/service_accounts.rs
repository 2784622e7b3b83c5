//! Service account tokens: JWTs signed with --service-account-signing-key-file (a
//! generated key under --cert-dir when none is given), issued by the TokenRequest
//! subresource (`serviceaccounts/<name>/token`) with an audience, an expiry and
//! optionally a Pod or Secret they are bound to; verified against the public keys, the
//! issuer and the API audiences, then against the store: a token dies with its service
//! account, and a bound one with its pod or secret (the uid must still match).
//!
//! Legacy tokens (the ones the tokens controller writes into Secrets of type
//! `kubernetes.io/service-account-token`) are signed with the same key under the issuer
//! `kubernetes/serviceaccount`, never expire, and live as long as their Secret holds them.

use std::path::Path;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// The group of every service account, and the prefix of each namespace's group.
pub const SERVICE_ACCOUNTS_GROUP: &str = "system:serviceaccounts";

/// A name and uid in the `kubernetes.io` claim.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Named {
    /// The object's name.
    pub name: String,
    /// The object's uid.
    pub uid: String,
}

/// The `kubernetes.io` claim.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct KubeClaims {
    /// The service account's namespace.
    pub namespace: String,
    /// The service account.
    pub serviceaccount: Named,
    /// The pod the token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<Named>,
    /// The secret the token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Named>,
}

/// A bound token's claims, as kube-apiserver writes them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// `system:serviceaccount:<namespace>:<name>`.
    pub sub: String,
    /// Audiences.
    pub aud: Vec<String>,
    /// Expiry (Unix seconds).
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Token id.
    pub jti: String,
    /// Who the token is for.
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubeClaims,
}

/// The issuer of legacy (secret-based) tokens, whatever --service-account-issuer says.
pub const LEGACY_ISSUER: &str = "kubernetes/serviceaccount";

/// A legacy token's claims, as kube's tokens controller writes them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LegacyClaims {
    /// Always [`LEGACY_ISSUER`].
    pub iss: String,
    /// `system:serviceaccount:<namespace>:<name>`.
    pub sub: String,
    /// The service account's namespace.
    #[serde(rename = "kubernetes.io/serviceaccount/namespace")]
    pub namespace: String,
    /// The Secret holding the token.
    #[serde(rename = "kubernetes.io/serviceaccount/secret.name")]
    pub secret_name: String,
    /// The service account.
    #[serde(rename = "kubernetes.io/serviceaccount/service-account.name")]
    pub service_account_name: String,
    /// The service account's uid.
    #[serde(rename = "kubernetes.io/serviceaccount/service-account.uid")]
    pub service_account_uid: String,
}

/// The signer and verifier of service account tokens.
pub struct ServiceAccountTokens {
    issuer: String,
    audiences: Vec<String>,
    algorithm: Algorithm,
    signing: EncodingKey,
    verifying: Vec<DecodingKey>,
}

impl std::fmt::Debug for ServiceAccountTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountTokens")
            .field("issuer", &self.issuer)
            .finish()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

impl ServiceAccountTokens {
    /// From the flags. Without a signing key one is made under `cert_dir` (sa.key).
    pub fn new(
        signing_key: Option<&Path>,
        public_keys: &[std::path::PathBuf],
        issuer: &str,
        audiences: &[String],
        cert_dir: &Path,
    ) -> Result<ServiceAccountTokens, String> {
        let private_pem = match signing_key {
            Some(path) => String::from_utf8(read(path)?)
                .map_err(|_| format!("{}: not PEM", path.display()))?,
            None => {
                let path = cert_dir.join("sa.key");
                match std::fs::read_to_string(&path) {
                    Ok(pem) => pem,
                    Err(_) => {
                        let pair = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
                        std::fs::create_dir_all(cert_dir)
                            .map_err(|e| format!("{}: {e}", cert_dir.display()))?;
                        std::fs::write(&path, pair.serialize_pem())
                            .map_err(|e| format!("{}: {e}", path.display()))?;
                        pair.serialize_pem()
                    }
                }
            }
        };
        let pair = rcgen::KeyPair::from_pem(&private_pem)
            .map_err(|e| format!("the service account signing key: {e}"))?;
        let (algorithm, signing) = if pair.is_compatible(&rcgen::PKCS_RSA_SHA256) {
            (
                Algorithm::RS256,
                EncodingKey::from_rsa_pem(private_pem.as_bytes()),
            )
        } else {
            (
                Algorithm::ES256,
                EncodingKey::from_ec_pem(private_pem.as_bytes()),
            )
        };
        let signing = signing.map_err(|e| format!("the service account signing key: {e}"))?;
        let decode = |pem: &[u8]| match algorithm {
            Algorithm::RS256 => DecodingKey::from_rsa_pem(pem),
            _ => DecodingKey::from_ec_pem(pem),
        };
        let mut verifying =
            vec![decode(pair.public_key_pem().as_bytes()).map_err(|e| e.to_string())?];
        for path in public_keys {
            verifying.push(decode(&read(path)?).map_err(|e| format!("{}: {e}", path.display()))?);
        }
        let audiences = if audiences.is_empty() {
            vec![issuer.to_string()]
        } else {
            audiences.to_vec()
        };
        Ok(ServiceAccountTokens {
            issuer: issuer.to_string(),
            audiences,
            algorithm,
            signing,
            verifying,
        })
    }

    /// The API's audiences (a TokenRequest without audiences gets these).
    pub fn audiences(&self) -> &[String] {
        &self.audiences
    }

    /// Signs a token.
    pub fn issue(
        &self,
        audiences: Vec<String>,
        lifetime_seconds: i64,
        kubernetes: KubeClaims,
    ) -> Result<(String, i64), String> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: format!(
                "system:serviceaccount:{}:{}",
                kubernetes.namespace, kubernetes.serviceaccount.name
            ),
            aud: audiences,
            exp: now + lifetime_seconds,
            iat: now,
            nbf: now,
            jti: uuid::Uuid::new_v4().to_string(),
            kubernetes,
        };
        let token = jsonwebtoken::encode(&Header::new(self.algorithm), &claims, &self.signing)
            .map_err(|e| e.to_string())?;
        Ok((token, claims.exp))
    }

    /// The claims of a token this API accepts (signature, issuer, audience, expiry); the
    /// objects it names are checked by the caller.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        let mut validation = Validation::new(self.algorithm);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&self.audiences);
        validation.leeway = 0;
        self.verifying
            .iter()
            .find_map(|key| jsonwebtoken::decode::<Claims>(token, key, &validation).ok())
            .map(|data| data.claims)
    }
}

impl ServiceAccountTokens {
    /// Signs a legacy token for the account `account` of `namespace`, held by the Secret
    /// `secret_name`.
    pub fn issue_legacy(
        &self,
        namespace: &str,
        account: &Named,
        secret_name: &str,
    ) -> Result<String, String> {
        let claims = LegacyClaims {
            iss: LEGACY_ISSUER.to_string(),
            sub: format!("system:serviceaccount:{namespace}:{}", account.name),
            namespace: namespace.to_string(),
            secret_name: secret_name.to_string(),
            service_account_name: account.name.clone(),
            service_account_uid: account.uid.clone(),
        };
        jsonwebtoken::encode(&Header::new(self.algorithm), &claims, &self.signing)
            .map_err(|e| e.to_string())
    }

    /// The claims of a legacy token signed by one of our keys; whether its Secret and
    /// account still hold it is the caller's check.
    pub fn verify_legacy(&self, token: &str) -> Option<LegacyClaims> {
        let mut validation = Validation::new(self.algorithm);
        validation.set_issuer(&[LEGACY_ISSUER]);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_aud = false;
        self.verifying
            .iter()
            .find_map(|key| jsonwebtoken::decode::<LegacyClaims>(token, key, &validation).ok())
            .map(|data| data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> KubeClaims {
        KubeClaims {
            namespace: "ns".into(),
            serviceaccount: Named {
                name: "robot".into(),
                uid: "u1".into(),
            },
            pod: None,
            secret: None,
        }
    }

    /// Tokens of a server with a key of its own.
    fn with_another_key() -> ServiceAccountTokens {
        let dir = tempfile::tempdir().unwrap();
        ServiceAccountTokens::new(None, &[], "https://issuer", &[], dir.path()).unwrap()
    }

    #[test]
    fn issued_tokens_verify_for_their_audience_only() {
        let dir = tempfile::tempdir().unwrap();
        let tokens =
            ServiceAccountTokens::new(None, &[], "https://issuer", &[], dir.path()).unwrap();
        let (token, exp) = tokens
            .issue(vec!["https://issuer".into()], 3600, claims())
            .unwrap();
        let verified = tokens.verify(&token).expect("verifies");
        assert_eq!(verified.sub, "system:serviceaccount:ns:robot");
        assert_eq!(verified.exp, exp);
        let (other, _) = tokens.issue(vec!["vault".into()], 3600, claims()).unwrap();
        assert!(tokens.verify(&other).is_none(), "another audience");
        let (expired, _) = tokens
            .issue(vec!["https://issuer".into()], -10, claims())
            .unwrap();
        assert!(tokens.verify(&expired).is_none(), "expired");
        // Another server with another key does not accept it; the same key file does.
        let elsewhere = with_another_key();
        assert!(elsewhere.verify(&token).is_none());
        let again =
            ServiceAccountTokens::new(None, &[], "https://issuer", &[], dir.path()).unwrap();
        assert!(again.verify(&token).is_some());
    }

    #[test]
    fn legacy_tokens_are_told_apart_from_bound_ones() {
        let dir = tempfile::tempdir().unwrap();
        let tokens =
            ServiceAccountTokens::new(None, &[], "https://issuer", &[], dir.path()).unwrap();
        let account = claims().serviceaccount;
        let legacy = tokens.issue_legacy("ns", &account, "robot-token").unwrap();
        let claims_of = tokens.verify_legacy(&legacy).expect("verifies");
        assert_eq!(claims_of.sub, "system:serviceaccount:ns:robot");
        assert_eq!(claims_of.secret_name, "robot-token");
        assert_eq!(claims_of.service_account_uid, "u1");
        // Neither kind passes for the other.
        assert!(tokens.verify(&legacy).is_none());
        let (bound, _) = tokens
            .issue(vec!["https://issuer".into()], 3600, claims())
            .unwrap();
        assert!(tokens.verify_legacy(&bound).is_none());
        // Another key does not sign for us.
        let elsewhere = with_another_key();
        assert!(elsewhere.verify_legacy(&legacy).is_none());
    }
}
