//! Passwords: hashed with bcrypt before they are proposed, so only hashes are
//! replicated, stored and snapshotted; checked against the hash on the member that
//! receives Authenticate. Both are slow by design, so they run off the async workers.

use ballast_store::Error as StoreError;

use crate::error::{Error, Result};

/// The bcrypt hash of `password` at `cost`.
pub(crate) async fn hash(password: String, cost: u32) -> Result<String> {
    tokio::task::spawn_blocking(move || bcrypt::hash(password, cost))
        .await
        .map_err(|e| Error::Fatal(e.to_string()))?
        .map_err(|e| Error::Fatal(format!("bcrypt: {e}")))
}

/// Whether `password` matches the stored hash; a malformed hash never matches.
pub(crate) async fn verify(password: String, hash: Vec<u8>) -> Result<()> {
    let matches = tokio::task::spawn_blocking(move || {
        let hash = String::from_utf8(hash).ok()?;
        bcrypt::verify(password, &hash).ok()
    })
    .await
    .map_err(|e| Error::Fatal(e.to_string()))?;
    match matches {
        Some(true) => Ok(()),
        _ => Err(StoreError::AuthFailed.into()),
    }
}
