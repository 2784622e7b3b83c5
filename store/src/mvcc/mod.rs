//! Multi-version concurrency control over the `kv` and `rev` column families.

pub mod compact;
pub(crate) mod latest;
pub mod query;
pub mod read;
pub mod txn;
pub mod write;
