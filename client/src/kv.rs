//! KV: get, put, delete and compact, with option builders, and their responses.

use ballast_proto::etcdserverpb as pb;
use ballast_proto::etcdserverpb::range_request::{
    SortOrder as PbSortOrder, SortTarget as PbSortTarget,
};
use bytes::Bytes;

use crate::types::{prefix_end, Header, KeyValue};

/// The builder methods that choose an operation's [`Span`], for an options type with a
/// `span` field: one definition for get, delete and watch.
macro_rules! span_options {
    ($options:ty) => {
        impl $options {
            /// Every key starting with the given key.
            pub fn with_prefix(mut self) -> Self {
                self.span = $crate::kv::Span::Prefix;
                self
            }
            /// Every key >= the given key.
            pub fn with_from_key(mut self) -> Self {
                self.span = $crate::kv::Span::FromKey;
                self
            }
            /// Keys in [key, end).
            pub fn with_range(mut self, end: impl AsRef<[u8]>) -> Self {
                self.span = $crate::kv::Span::End(bytes::Bytes::copy_from_slice(end.as_ref()));
                self
            }
            /// Every key in the store.
            pub fn with_all_keys(mut self) -> Self {
                self.span = $crate::kv::Span::All;
                self
            }
        }
    };
}
pub(crate) use span_options;

/// Which keys an operation covers, relative to its key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum Span {
    /// Just the key.
    #[default]
    Key,
    /// Every key starting with the key.
    Prefix,
    /// Every key >= the key.
    FromKey,
    /// Keys in [key, end).
    End(Bytes),
    /// Every key (the key is ignored).
    All,
}

impl Span {
    /// The (key, range_end) pair etcd expects.
    pub(crate) fn resolve(&self, key: Bytes) -> (Bytes, Bytes) {
        match self {
            Span::Key => (key, Bytes::new()),
            Span::Prefix if key.is_empty() => {
                (Bytes::from_static(b"\0"), Bytes::from_static(b"\0"))
            }
            Span::Prefix => {
                let end = prefix_end(&key);
                (key, end)
            }
            Span::FromKey if key.is_empty() => {
                (Bytes::from_static(b"\0"), Bytes::from_static(b"\0"))
            }
            Span::FromKey => (key, Bytes::from_static(b"\0")),
            Span::End(end) => (key, end.clone()),
            Span::All => (Bytes::from_static(b"\0"), Bytes::from_static(b"\0")),
        }
    }
}

/// The field results are sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortTarget {
    /// The key.
    Key,
    /// The number of writes since creation.
    Version,
    /// The create revision.
    Create,
    /// The last modification revision.
    Mod,
    /// The value.
    Value,
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortOrder {
    /// Smallest first.
    Ascend,
    /// Largest first.
    Descend,
}

span_options!(GetOptions);
span_options!(DeleteOptions);

/// Options of [`crate::Client::get`].
#[derive(Debug, Clone, Default)]
pub struct GetOptions {
    pub(crate) span: Span,
    req: pb::RangeRequest,
}

impl GetOptions {
    /// Default options.
    pub fn new() -> Self {
        Self::default()
    }
    /// At most this many keys (0 = no limit).
    pub fn with_limit(mut self, limit: i64) -> Self {
        self.req.limit = limit;
        self
    }
    /// Read the store as of this revision.
    pub fn with_revision(mut self, revision: i64) -> Self {
        self.req.revision = revision;
        self
    }
    /// Sorts the results (etcd reads everything, then sorts and cuts).
    pub fn with_sort(mut self, target: SortTarget, order: SortOrder) -> Self {
        let target = match target {
            SortTarget::Key => PbSortTarget::Key,
            SortTarget::Version => PbSortTarget::Version,
            SortTarget::Create => PbSortTarget::Create,
            SortTarget::Mod => PbSortTarget::Mod,
            SortTarget::Value => PbSortTarget::Value,
        };
        let order = match order {
            SortOrder::Ascend => PbSortOrder::Ascend,
            SortOrder::Descend => PbSortOrder::Descend,
        };
        self.req.sort_target = target as i32;
        self.req.sort_order = order as i32;
        self
    }
    /// Serve from the contacted member without a consensus round (may be stale).
    pub fn with_serializable(mut self) -> Self {
        self.req.serializable = true;
        self
    }
    /// Returns keys without values.
    pub fn with_keys_only(mut self) -> Self {
        self.req.keys_only = true;
        self
    }
    /// Returns only the number of matching keys.
    pub fn with_count_only(mut self) -> Self {
        self.req.count_only = true;
        self
    }
    /// Leaves out keys last modified below `revision`.
    pub fn with_min_mod_revision(mut self, revision: i64) -> Self {
        self.req.min_mod_revision = revision;
        self
    }
    /// Leaves out keys last modified above `revision`.
    pub fn with_max_mod_revision(mut self, revision: i64) -> Self {
        self.req.max_mod_revision = revision;
        self
    }
    /// Leaves out keys created below `revision`.
    pub fn with_min_create_revision(mut self, revision: i64) -> Self {
        self.req.min_create_revision = revision;
        self
    }
    /// Leaves out keys created above `revision`.
    pub fn with_max_create_revision(mut self, revision: i64) -> Self {
        self.req.max_create_revision = revision;
        self
    }

    pub(crate) fn request(self, key: Bytes) -> pb::RangeRequest {
        let (key, range_end) = self.span.resolve(key);
        pb::RangeRequest {
            key,
            range_end,
            ..self.req
        }
    }
}

/// Options of [`crate::Client::put`].
#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    req: pb::PutRequest,
}

impl PutOptions {
    /// Default options.
    pub fn new() -> Self {
        Self::default()
    }
    /// Attach the key to a lease.
    pub fn with_lease(mut self, lease: i64) -> Self {
        self.req.lease = lease;
        self
    }
    /// Return the previous key-value.
    pub fn with_prev_kv(mut self) -> Self {
        self.req.prev_kv = true;
        self
    }
    /// Keep the current value (the key must exist; pass an empty value).
    pub fn with_ignore_value(mut self) -> Self {
        self.req.ignore_value = true;
        self
    }
    /// Keep the current lease (the key must exist).
    pub fn with_ignore_lease(mut self) -> Self {
        self.req.ignore_lease = true;
        self
    }

    pub(crate) fn request(self, key: Bytes, value: Bytes) -> pb::PutRequest {
        pb::PutRequest {
            key,
            value,
            ..self.req
        }
    }
}

/// Options of [`crate::Client::delete`].
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    span: Span,
    prev_kv: bool,
}

impl DeleteOptions {
    /// Default options.
    pub fn new() -> Self {
        Self::default()
    }
    /// Return the deleted key-values.
    pub fn with_prev_kv(mut self) -> Self {
        self.prev_kv = true;
        self
    }

    pub(crate) fn request(self, key: Bytes) -> pb::DeleteRangeRequest {
        let (key, range_end) = self.span.resolve(key);
        pb::DeleteRangeRequest {
            key,
            range_end,
            prev_kv: self.prev_kv,
        }
    }
}

/// Answer to a get.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GetResponse {
    /// The responding member and the store revision.
    pub header: Header,
    /// The keys found, in the requested order.
    pub kvs: Vec<KeyValue>,
    /// More keys matched than `limit` let through.
    pub more: bool,
    /// How many keys matched, regardless of limit.
    pub count: i64,
}

impl From<pb::RangeResponse> for GetResponse {
    fn from(r: pb::RangeResponse) -> Self {
        GetResponse {
            header: r.header.into(),
            kvs: r.kvs.into_iter().map(KeyValue::from).collect(),
            more: r.more,
            count: r.count,
        }
    }
}

/// Answer to a put.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutResponse {
    /// The responding member and the store revision.
    pub header: Header,
    /// The previous key-value, if asked for and the key existed.
    pub prev_kv: Option<KeyValue>,
}

impl From<pb::PutResponse> for PutResponse {
    fn from(r: pb::PutResponse) -> Self {
        PutResponse {
            header: r.header.into(),
            prev_kv: r.prev_kv.map(KeyValue::from),
        }
    }
}

/// Answer to a delete.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteResponse {
    /// The responding member and the store revision.
    pub header: Header,
    /// How many keys were deleted.
    pub deleted: i64,
    /// The deleted key-values, if asked for.
    pub prev_kvs: Vec<KeyValue>,
}

impl From<pb::DeleteRangeResponse> for DeleteResponse {
    fn from(r: pb::DeleteRangeResponse) -> Self {
        DeleteResponse {
            header: r.header.into(),
            deleted: r.deleted,
            prev_kvs: r.prev_kvs.into_iter().map(KeyValue::from).collect(),
        }
    }
}
