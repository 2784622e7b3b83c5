//! The store's side of auth: the current state for the permission checks, and applying
//! an auth change, written alone with its entry's applied index.

use std::sync::Arc;

use rocksdb::WriteBatch;

use super::Store;
use crate::auth::{Auth, AuthChange};
use crate::backend::Cf;
use crate::error::Result;

impl Store {
    /// The auth state as of the last applied entry: immutable, cheap to hold.
    pub fn auth(&self) -> Arc<Auth> {
        self.auth.read().expect("auth lock poisoned").clone()
    }

    pub(super) fn set_auth(&self, auth: Auth) {
        *self.auth.write().expect("auth lock poisoned") = Arc::new(auth);
    }

    /// Writes an applied auth change with the entry's applied index, then makes it the
    /// current state.
    pub(super) fn write_auth(&self, index: u64, term: u64, change: AuthChange) -> Result<()> {
        let mut batch = WriteBatch::default();
        let cf = self.backend.cf(Cf::Auth);
        for (key, value) in &change.writes {
            match value {
                Some(value) => batch.put_cf(cf, key, value),
                None => batch.delete_cf(cf, key),
            }
        }
        self.stamp_applied(&mut batch, index, term);
        self.backend.write(batch, false)?;
        self.set_auth(Auth::new(change.data));
        self.mark_applied(index, term);
        Ok(())
    }
}
