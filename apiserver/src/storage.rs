//! Storage: objects as JSON values under kube-apiserver's keys
//! (`<prefix>/<resource>/[<namespace>/]<name>`), reached only through ballast-client, so
//! any etcd v3 endpoint serves. `metadata.resourceVersion` is the key's mod_revision.
//! A create is a Txn on create_revision = 0; an update or a delete is a Txn on the
//! mod_revision read (kube's GuaranteedUpdate), so a stale write changes nothing.

use ballast_client::{
    prefix_end, Client, Compare, CompareOp, DeleteOptions, GetOptions, PutOptions, Txn, TxnOp,
    TxnOpResponse,
};
use base64::Engine as _;
use serde_json::{json, Value};

use crate::resources::Resource;
use crate::status::{ApiError, ApiResult};
use crate::{convert, object};

/// One stored object with the revision it was last written at.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The object, `metadata.resourceVersion` set.
    pub object: Value,
    /// The key's mod_revision.
    pub revision: i64,
}

/// A quota object's new state, written with the object it was charged for.
#[derive(Debug, Clone)]
pub struct Charge {
    /// The quota's resource (resourcequotas).
    pub resource: &'static Resource,
    /// Its key.
    pub key: String,
    /// The revision its usage was read at.
    pub revision: i64,
    /// The quota with the new usage.
    pub value: Value,
}

/// One page of a list.
#[derive(Debug)]
pub struct Page {
    /// Objects in key order.
    pub items: Vec<Stored>,
    /// The revision the page was read at.
    pub revision: i64,
    /// The last key read, when more keys follow it.
    pub more_after: Option<String>,
    /// Keys after this page.
    pub remaining: i64,
}

/// What a conditional write found instead of the revision it expected.
#[derive(Debug)]
pub enum Outcome {
    /// Written at this revision.
    Written(i64),
    /// The key is missing.
    Missing,
    /// The key holds another version, written at this revision (create: it exists).
    Changed(i64),
}

/// The store of objects, under one key prefix.
#[derive(Debug, Clone)]
pub struct Storage {
    client: Client,
    prefix: String,
}

/// The message etcd answers a read below its compaction point with.
const COMPACTED: &str = "required revision has been compacted";

impl Storage {
    /// Objects under `prefix` (kube's `--etcd-prefix`, `/registry`).
    pub fn new(client: Client, prefix: &str) -> Self {
        Storage {
            client,
            prefix: prefix.trim_end_matches('/').to_string(),
        }
    }

    /// The client, for watches.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The key of one object.
    pub fn key(&self, resource: &Resource, namespace: Option<&str>, name: &str) -> String {
        match namespace {
            Some(ns) if resource.namespaced => {
                format!("{}/{}/{ns}/{name}", self.prefix, resource.storage)
            }
            _ => format!("{}/{}/{name}", self.prefix, resource.storage),
        }
    }

    /// The key prefix of a collection: one namespace's, or all of the resource's.
    pub fn collection(&self, resource: &Resource, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if resource.namespaced => {
                format!("{}/{}/{ns}/", self.prefix, resource.storage)
            }
            _ => format!("{}/{}/", self.prefix, resource.storage),
        }
    }

    /// Reads one object of `resource` (a linearizable read).
    pub async fn get(&self, resource: &Resource, key: &str) -> ApiResult<Option<Stored>> {
        let response = self.client.get(key, GetOptions::new()).await?;
        Ok(response
            .kvs
            .first()
            .and_then(|kv| decode(resource, &kv.value, kv.mod_revision)))
    }

    /// Reads up to `limit` objects (0: all) of `prefix` from `start` on, at `revision`
    /// (0: the latest).
    pub async fn list(
        &self,
        resource: &Resource,
        prefix: &str,
        start: Option<&str>,
        revision: i64,
        limit: i64,
    ) -> ApiResult<Page> {
        let from = start.map_or_else(|| prefix.to_string(), |s| format!("{s}\0"));
        let mut options = GetOptions::new()
            .with_range(prefix_end(prefix.as_bytes()))
            .with_revision(revision);
        if limit > 0 {
            options = options.with_limit(limit);
        }
        let response = self
            .client
            .get(&from, options)
            .await
            .map_err(|e| compacted(e, revision))?;
        let items: Vec<Stored> = response
            .kvs
            .iter()
            .filter_map(|kv| decode(resource, &kv.value, kv.mod_revision))
            .collect();
        let more_after = match (response.more, response.kvs.last()) {
            (true, Some(last)) => Some(String::from_utf8_lossy(&last.key).into_owned()),
            _ => None,
        };
        Ok(Page {
            remaining: response.count - response.kvs.len() as i64,
            items,
            revision: response.header.revision,
            more_after,
        })
    }

    /// Writes a new object; `Changed` when the key exists.
    pub async fn create(
        &self,
        resource: &Resource,
        key: &str,
        value: &Value,
        lease: i64,
    ) -> ApiResult<Outcome> {
        let put = PutOptions::new().with_lease(lease);
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, encode(resource, value), put)])
            .or_else([TxnOp::get(key, GetOptions::new().with_keys_only())]);
        self.conditional(txn).await
    }

    /// Writes a new object together with quota objects' new usage, all or nothing: the
    /// object's key must be free and each quota still at the revision its usage was read
    /// at. `Changed` when the key exists; `Missing` when a quota moved (read it again).
    pub async fn create_charged(
        &self,
        resource: &Resource,
        key: &str,
        value: &Value,
        lease: i64,
        charges: &[Charge],
    ) -> ApiResult<Outcome> {
        let mut compares = vec![Compare::create_revision(key, CompareOp::Equal, 0)];
        let mut puts = vec![TxnOp::put(
            key,
            encode(resource, value),
            PutOptions::new().with_lease(lease),
        )];
        for charge in charges {
            compares.push(Compare::mod_revision(
                &charge.key,
                CompareOp::Equal,
                charge.revision,
            ));
            puts.push(TxnOp::put(
                &charge.key,
                encode(charge.resource, &charge.value),
                PutOptions::new(),
            ));
        }
        let txn = Txn::new()
            .when(compares)
            .and_then(puts)
            .or_else([TxnOp::get(key, GetOptions::new().with_keys_only())]);
        self.conditional(txn).await
    }

    /// Replaces the object if its key is still at `revision`.
    pub async fn update(
        &self,
        resource: &Resource,
        key: &str,
        revision: i64,
        value: &Value,
    ) -> ApiResult<Outcome> {
        let txn = Txn::new()
            .when([Compare::mod_revision(key, CompareOp::Equal, revision)])
            .and_then([TxnOp::put(key, encode(resource, value), PutOptions::new())])
            .or_else([TxnOp::get(key, GetOptions::new().with_keys_only())]);
        self.conditional(txn).await
    }

    /// Deletes the object if its key is still at `revision`.
    pub async fn delete(&self, key: &str, revision: i64) -> ApiResult<Outcome> {
        let txn = Txn::new()
            .when([Compare::mod_revision(key, CompareOp::Equal, revision)])
            .and_then([TxnOp::delete(key, DeleteOptions::new())])
            .or_else([TxnOp::get(key, GetOptions::new().with_keys_only())]);
        self.conditional(txn).await
    }

    async fn conditional(&self, txn: Txn) -> ApiResult<Outcome> {
        let response = self.client.txn(txn).await?;
        if response.succeeded {
            return Ok(Outcome::Written(response.header.revision));
        }
        let current = response.responses.into_iter().find_map(|r| match r {
            TxnOpResponse::Get(get) => get.kvs.into_iter().next(),
            _ => None,
        });
        Ok(match current {
            None => Outcome::Missing,
            Some(kv) => Outcome::Changed(kv.mod_revision),
        })
    }

    /// A lease for objects that expire (events, `--event-ttl`).
    pub async fn lease(&self, ttl_seconds: i64) -> ApiResult<i64> {
        Ok(self.client.lease_grant(ttl_seconds, 0).await?.id)
    }
}

/// The stored bytes of an object of `resource`.
fn encode(resource: &Resource, object: &Value) -> Vec<u8> {
    object::for_storage(&convert::to_stored(resource, object.clone()))
}

/// An object of `resource` from its stored bytes, stamped with the key's revision.
pub fn decode(resource: &Resource, value: &[u8], revision: i64) -> Option<Stored> {
    let object = object::from_storage(value, revision)?;
    Some(Stored {
        object: convert::from_stored(resource, object),
        revision,
    })
}

/// A read below the compaction point is kube's 410.
fn compacted(error: ballast_client::Error, revision: i64) -> ApiError {
    match &error {
        ballast_client::Error::Status { message, .. } if message.contains(COMPACTED) => {
            ApiError::expired(format!(
                "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list. (revision {revision})"
            ))
        }
        _ => error.into(),
    }
}

/// A continue token: the revision of the first page and the last key served, kube's
/// shape (base64 of `{"v":"meta.k8s.io/v1","rv":N,"start":"<key>"}`).
pub fn continue_token(revision: i64, last_key: &str, collection: &str) -> String {
    let start = last_key.strip_prefix(collection).unwrap_or(last_key);
    let token = json!({ "v": "meta.k8s.io/v1", "rv": revision, "start": format!("{start}\u{0}") });
    base64::engine::general_purpose::URL_SAFE.encode(token.to_string())
}

/// Reads a continue token back: (revision, the key to start after).
pub fn parse_continue(token: &str, collection: &str) -> ApiResult<(i64, String)> {
    let bad = || {
        ApiError::bad_request("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
    };
    let bytes = base64::engine::general_purpose::URL_SAFE
        .decode(token)
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(token))
        .map_err(|_| bad())?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let revision = value
        .get("rv")
        .and_then(Value::as_i64)
        .filter(|rv| *rv > 0)
        .ok_or_else(bad)?;
    let start = value.get("start").and_then(Value::as_str).ok_or_else(bad)?;
    let start = start.strip_suffix('\u{0}').unwrap_or(start);
    if start.contains("..") || start.starts_with('/') {
        return Err(bad());
    }
    Ok((revision, format!("{collection}{start}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_refuse_garbage() {
        let token = continue_token(
            42,
            "/registry/configmaps/ns/cm-7",
            "/registry/configmaps/ns/",
        );
        assert_eq!(
            parse_continue(&token, "/registry/configmaps/ns/").unwrap(),
            (42, "/registry/configmaps/ns/cm-7".to_string())
        );
        assert_eq!(parse_continue("!!", "/x/").unwrap_err().code, 400);
        let sneaky = base64::engine::general_purpose::URL_SAFE
            .encode(r#"{"v":"meta.k8s.io/v1","rv":3,"start":"../secrets/x"}"#);
        assert_eq!(parse_continue(&sneaky, "/x/").unwrap_err().code, 400);
    }
}
