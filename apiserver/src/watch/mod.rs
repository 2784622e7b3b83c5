//! Watch: one store watch per resource feeds a cache (kube's cacher) that serves every
//! HTTP watcher of the resource and `resourceVersion=0` lists; the HTTP side encodes the
//! events each watcher selects.

pub mod cache;
pub mod stream;

pub use cache::{Caches, Delivery, EventKind, Filter};
