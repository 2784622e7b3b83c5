//! Auth tokens, as etcd issues them (`--auth-token`): simple tokens, random strings every
//! member learns when the Authenticate entry is applied, or JWTs, signed by the member
//! that authenticated the user and verified by every member with the public key.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ballast_store::auth::Authenticated;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::parse_duration;

/// Random characters of a simple token (etcd's length).
const SIMPLE_TOKEN_CHARS: usize = 16;
/// Simple tokens held before expired ones are swept out on the next issue.
const SIMPLE_TOKENS_SWEEP_AT: usize = 4096;
/// etcd's default life of a JWT.
const JWT_TTL_DEFAULT: Duration = Duration::from_secs(300);

/// Who a token names, and the auth revision it vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenInfo {
    pub(crate) user: String,
    /// For a JWT, the auth revision it was issued at; None for a simple token (valid at
    /// whatever revision is current, until revoked).
    pub(crate) revision: Option<u64>,
}

/// The token kind `--auth-token` chose.
#[derive(Debug)]
pub(crate) enum Tokens {
    Simple(SimpleTokens),
    Jwt(JwtTokens),
}

impl Tokens {
    /// Parses etcd's `--auth-token` value.
    pub(crate) fn from_flag(flag: &str, simple_ttl: Duration) -> Result<Tokens, String> {
        let mut parts = flag.split(',');
        match parts.next().unwrap_or_default() {
            "simple" => Ok(Tokens::Simple(SimpleTokens::new(simple_ttl))),
            "jwt" => {
                let mut options = HashMap::new();
                for part in parts {
                    let (key, value) = part
                        .split_once('=')
                        .ok_or_else(|| format!("invalid auth token option {part:?}"))?;
                    if options.insert(key, value).is_some() {
                        return Err(format!("auth token option {key:?} given twice"));
                    }
                }
                JwtTokens::from_options(&options).map(Tokens::Jwt)
            }
            other => Err(format!("unknown auth token type {other:?}")),
        }
    }

    /// The random part of a simple token, to travel in the Authenticate entry; None for
    /// JWTs, which the authenticating member signs after the apply.
    pub(crate) fn simple_prefix(&self) -> Option<String> {
        match self {
            Tokens::Simple(_) => Some(random_token()),
            Tokens::Jwt(_) => None,
        }
    }

    /// An applied Authenticate entry: every member learns the simple token.
    pub(crate) fn issued(&self, issued: &Authenticated) {
        if let Tokens::Simple(simple) = self {
            if !issued.token.is_empty() {
                simple.insert(&issued.token, &issued.user);
            }
        }
    }

    /// Voids simple tokens: one user's, or everyone's. A JWT lives until it expires or
    /// the auth revision moves past it.
    pub(crate) fn revoke(&self, user: Option<&str>) {
        if let Tokens::Simple(simple) = self {
            let mut tokens = simple.lock();
            match user {
                Some(user) => tokens.retain(|_, t| t.user != user),
                None => tokens.clear(),
            }
        }
    }

    /// The user a token names, if it is valid.
    pub(crate) fn lookup(&self, token: &str) -> Option<TokenInfo> {
        match self {
            Tokens::Simple(simple) => simple.lookup(token),
            Tokens::Jwt(jwt) => jwt.verify(token),
        }
    }
}

/// The raft index a simple token was issued at ("<random>.<index>"): a member that has
/// not applied that far yet waits before deciding the token is unknown.
pub(crate) fn simple_token_index(token: &str) -> Option<u64> {
    token.rsplit_once('.')?.1.parse().ok()
}

/// Letters drawn from the OS's random source.
fn random_token() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut bytes = [0u8; SIMPLE_TOKEN_CHARS];
    getrandom::fill(&mut bytes).expect("the OS random source failed");
    bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

#[derive(Debug)]
struct SimpleToken {
    user: String,
    expires: Instant,
}

/// Simple tokens this member learned, each alive for the TTL since its last use.
#[derive(Debug)]
pub(crate) struct SimpleTokens {
    ttl: Duration,
    tokens: Mutex<HashMap<String, SimpleToken>>,
}

impl SimpleTokens {
    fn new(ttl: Duration) -> SimpleTokens {
        SimpleTokens {
            ttl,
            tokens: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, SimpleToken>> {
        self.tokens.lock().expect("token table poisoned")
    }

    fn insert(&self, token: &str, user: &str) {
        let now = Instant::now();
        let mut tokens = self.lock();
        if tokens.len() >= SIMPLE_TOKENS_SWEEP_AT {
            tokens.retain(|_, t| t.expires > now);
        }
        tokens.insert(
            token.to_string(),
            SimpleToken {
                user: user.to_string(),
                expires: now + self.ttl,
            },
        );
    }

    fn lookup(&self, token: &str) -> Option<TokenInfo> {
        let now = Instant::now();
        let mut tokens = self.lock();
        let found = tokens.get_mut(token)?;
        if found.expires <= now {
            tokens.remove(token);
            return None;
        }
        found.expires = now + self.ttl;
        Some(TokenInfo {
            user: found.user.clone(),
            revision: None,
        })
    }
}

/// etcd's JWT claims.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    username: String,
    revision: u64,
    exp: u64,
}

/// JWTs: signed with the private key (when this member has it), checked with the public.
pub(crate) struct JwtTokens {
    algorithm: Algorithm,
    signing: Option<EncodingKey>,
    verifying: DecodingKey,
    ttl: Duration,
}

impl std::fmt::Debug for JwtTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtTokens")
            .field("algorithm", &self.algorithm)
            .field("signs", &self.signing.is_some())
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl JwtTokens {
    /// `pub-key` and `sign-method` are required; without `priv-key` this member only
    /// verifies; `ttl` defaults to 5 minutes.
    fn from_options(options: &HashMap<&str, &str>) -> Result<JwtTokens, String> {
        for key in options.keys() {
            if !["pub-key", "priv-key", "sign-method", "ttl"].contains(key) {
                return Err(format!("unknown jwt auth token option {key:?}"));
            }
        }
        let method = options
            .get("sign-method")
            .ok_or("jwt auth token needs sign-method")?;
        let algorithm: Algorithm = method
            .parse()
            .map_err(|_| format!("invalid jwt sign-method {method:?}"))?;
        let read = |key: &str| -> Result<Option<Vec<u8>>, String> {
            options
                .get(key)
                .map(|path| std::fs::read(path).map_err(|e| format!("reading {key} {path}: {e}")))
                .transpose()
        };
        let public = read("pub-key")?;
        let private = read("priv-key")?;
        let (verifying, signing) = keys(algorithm, public, private)?;
        let ttl = match options.get("ttl") {
            Some(ttl) => parse_duration(ttl)?,
            None => JWT_TTL_DEFAULT,
        };
        Ok(JwtTokens {
            algorithm,
            signing,
            verifying,
            ttl,
        })
    }

    /// A token for `user` at auth revision `revision`.
    pub(crate) fn sign(&self, user: &str, revision: u64) -> Result<String, String> {
        let key = self
            .signing
            .as_ref()
            .ok_or("this member has no jwt priv-key to sign with")?;
        let exp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .saturating_add(self.ttl)
            .as_secs();
        let claims = Claims {
            username: user.to_string(),
            revision,
            exp,
        };
        jsonwebtoken::encode(&Header::new(self.algorithm), &claims, key).map_err(|e| e.to_string())
    }

    fn verify(&self, token: &str) -> Option<TokenInfo> {
        let mut validation = Validation::new(self.algorithm);
        validation.set_required_spec_claims(&["exp"]);
        validation.leeway = 0;
        let claims = jsonwebtoken::decode::<Claims>(token, &self.verifying, &validation)
            .ok()?
            .claims;
        Some(TokenInfo {
            user: claims.username,
            revision: Some(claims.revision),
        })
    }
}

/// The verifying and signing keys of an algorithm, from PEM files (HMAC: the file's
/// bytes are the secret, in `priv-key` and `pub-key` alike).
fn keys(
    algorithm: Algorithm,
    public: Option<Vec<u8>>,
    private: Option<Vec<u8>>,
) -> Result<(DecodingKey, Option<EncodingKey>), String> {
    use Algorithm::*;
    let error = |e: jsonwebtoken::errors::Error| e.to_string();
    if matches!(algorithm, HS256 | HS384 | HS512) {
        let secret = private
            .or(public)
            .ok_or("jwt HMAC sign-method needs priv-key")?;
        return Ok((
            DecodingKey::from_secret(&secret),
            Some(EncodingKey::from_secret(&secret)),
        ));
    }
    let public = public.ok_or("jwt auth token needs pub-key")?;
    let (verifying, signing) = match algorithm {
        RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => (
            DecodingKey::from_rsa_pem(&public).map_err(error)?,
            private
                .map(|p| EncodingKey::from_rsa_pem(&p))
                .transpose()
                .map_err(error)?,
        ),
        ES256 | ES384 => (
            DecodingKey::from_ec_pem(&public).map_err(error)?,
            private
                .map(|p| EncodingKey::from_ec_pem(&p))
                .transpose()
                .map_err(error)?,
        ),
        EdDSA => (
            DecodingKey::from_ed_pem(&public).map_err(error)?,
            private
                .map(|p| EncodingKey::from_ed_pem(&p))
                .transpose()
                .map_err(error)?,
        ),
        HS256 | HS384 | HS512 => unreachable!("handled above"),
    };
    Ok((verifying, signing))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_tokens_expire_and_are_revoked() {
        let tokens = Tokens::from_flag("simple", Duration::from_secs(300)).unwrap();
        let prefix = tokens.simple_prefix().unwrap();
        assert_eq!(prefix.len(), SIMPLE_TOKEN_CHARS);
        assert_ne!(prefix, tokens.simple_prefix().unwrap());
        let token = format!("{prefix}.7");
        assert_eq!(simple_token_index(&token), Some(7));
        tokens.issued(&Authenticated {
            user: "alice".into(),
            token: token.clone(),
        });
        assert_eq!(tokens.lookup(&token).unwrap().user, "alice");
        assert!(tokens.lookup("nope.7").is_none());
        tokens.revoke(Some("bob"));
        assert!(tokens.lookup(&token).is_some());
        tokens.revoke(Some("alice"));
        assert!(tokens.lookup(&token).is_none());

        let short = Tokens::from_flag("simple", Duration::ZERO).unwrap();
        short.issued(&Authenticated {
            user: "alice".into(),
            token: token.clone(),
        });
        assert!(short.lookup(&token).is_none(), "expired at once");
    }

    #[test]
    fn jwt_signed_with_hmac_verifies_and_a_forged_one_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, b"0123456789abcdef0123456789abcdef").unwrap();
        let flag = format!("jwt,priv-key={},sign-method=HS256,ttl=1m", secret.display());
        let Tokens::Jwt(jwt) = Tokens::from_flag(&flag, Duration::ZERO).unwrap() else {
            panic!("not jwt");
        };
        let token = jwt.sign("alice", 9).unwrap();
        let info = jwt.verify(&token).unwrap();
        assert_eq!(info.user, "alice");
        assert_eq!(info.revision, Some(9));
        let mut forged = token.clone();
        forged.replace_range(forged.len() - 4.., "AAAA");
        assert!(jwt.verify(&forged).is_none());
    }

    #[test]
    fn bad_flags_are_refused() {
        for flag in ["paseto", "jwt,sign-method=RS256", "jwt,foo=bar", "jwt,ttl"] {
            assert!(Tokens::from_flag(flag, Duration::ZERO).is_err(), "{flag}");
        }
    }
}
