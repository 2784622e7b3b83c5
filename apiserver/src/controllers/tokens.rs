//! The tokens controller: a Secret of type `kubernetes.io/service-account-token` gets a
//! legacy token for the service account its annotation names (with `ca.crt` and
//! `namespace`, and the account's uid as an annotation), and goes when that account
//! does (or never existed), as kube-controller-manager's tokens controller does.

use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};

use crate::authn::service_accounts::Named;
use crate::object::{self, meta_str};
use crate::resources::{self, Resource};
use crate::rest::delete::{delete_named, DeleteOptions};
use crate::rest::Api;
use crate::validation::{
    SERVICE_ACCOUNT_NAME_ANNOTATION, SERVICE_ACCOUNT_TOKEN_TYPE, SERVICE_ACCOUNT_UID_ANNOTATION,
};
use crate::watch::Filter;

/// How often the secrets' and accounts' caches are checked for changes.
const POLL: Duration = Duration::from_millis(200);

fn annotation<'a>(secret: &'a Value, name: &str) -> Option<&'a str> {
    secret
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(name))
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
}

/// What a token Secret needs.
enum Work {
    Nothing,
    Fill(Named),
    Delete,
}

/// The account a Secret names, as the store has it now; None when unsure (the store did
/// not answer).
async fn decide(api: &Api, accounts: &'static Resource, secret: &Value) -> Option<Work> {
    let namespace = meta_str(secret, "namespace")?;
    let account = annotation(secret, SERVICE_ACCOUNT_NAME_ANNOTATION)?;
    let pinned = annotation(secret, SERVICE_ACCOUNT_UID_ANNOTATION);
    let filled = secret.pointer("/data/token").is_some();
    let fits = |a: &Value| pinned.is_none_or(|uid| meta_str(a, "uid") == Some(uid));
    // The cache answers the common case (a filled token of a live account) without a read.
    let cached = api
        .caches
        .of(accounts)
        .get(&format!("{namespace}/{account}"));
    if filled && cached.as_ref().is_some_and(fits) {
        return Some(Work::Nothing);
    }
    let key = api.storage.key(accounts, Some(namespace), account);
    let Some(stored) = api.storage.get(accounts, &key).await.ok()? else {
        return Some(Work::Delete);
    };
    if !fits(&stored.object) {
        return Some(Work::Delete);
    }
    if filled
        || stored
            .object
            .pointer("/metadata/deletionTimestamp")
            .is_some()
    {
        return Some(Work::Nothing);
    }
    Some(Work::Fill(Named {
        name: account.to_string(),
        uid: meta_str(&stored.object, "uid")?.to_string(),
    }))
}

/// Writes the token, the CA and the namespace into the Secret, if it is still as read.
async fn fill(
    api: &Api,
    secrets: &'static Resource,
    secret: &Value,
    account: &Named,
    root_ca: &str,
) {
    let (Some(namespace), Some(name)) = (meta_str(secret, "namespace"), meta_str(secret, "name"))
    else {
        return;
    };
    let Ok(token) = api.tokens.issue_legacy(namespace, account, name) else {
        return;
    };
    let key = api.storage.key(secrets, Some(namespace), name);
    let Ok(Some(stored)) = api.storage.get(secrets, &key).await else {
        return;
    };
    if meta_str(&stored.object, "uid") != meta_str(secret, "uid") {
        return;
    }
    let mut updated = stored.object;
    let encode = |text: &str| json!(base64::engine::general_purpose::STANDARD.encode(text));
    let annotations = object::meta_mut(&mut updated)
        .entry("annotations")
        .or_insert_with(|| json!({}));
    annotations[SERVICE_ACCOUNT_UID_ANNOTATION] = json!(account.uid);
    if !updated.get("data").is_some_and(Value::is_object) {
        updated["data"] = json!({});
    }
    updated["data"]["token"] = encode(&token);
    updated["data"]["ca.crt"] = encode(root_ca);
    updated["data"]["namespace"] = encode(namespace);
    // A write meanwhile moves the revision: the next sweep looks again.
    let _ = api
        .storage
        .update(secrets, &key, stored.revision, &updated)
        .await;
}

/// The controller's loop.
pub async fn run(api: Api, root_ca: String) {
    let secrets = resources::find("", "v1", "secrets").expect("served");
    let accounts = resources::find("", "v1", "serviceaccounts").expect("served");
    api.caches.of(secrets).ready().await;
    api.caches.of(accounts).ready().await;
    let mut seen = None;
    loop {
        let now = (
            api.caches.of(secrets).changes(),
            api.caches.of(accounts).changes(),
        );
        if seen != Some(now) {
            seen = Some(now);
            let tokens = api
                .caches
                .of(secrets)
                .select(&Filter::default(), |s| {
                    s.get("type").and_then(Value::as_str) == Some(SERVICE_ACCOUNT_TOKEN_TYPE)
                        && s.pointer("/metadata/deletionTimestamp").is_none()
                })
                .await;
            for secret in &tokens {
                match decide(&api, accounts, secret).await {
                    Some(Work::Fill(account)) => {
                        fill(&api, secrets, secret, &account, &root_ca).await
                    }
                    Some(Work::Delete) => {
                        let uid = meta_str(secret, "uid").unwrap_or_default();
                        let _ = delete_named(
                            &api,
                            secrets,
                            meta_str(secret, "namespace"),
                            meta_str(secret, "name").unwrap_or_default(),
                            &DeleteOptions::of_uid(uid),
                            None,
                        )
                        .await;
                    }
                    // Unsure (the store did not answer): the next change looks again.
                    Some(Work::Nothing) | None => {}
                }
            }
        }
        tokio::time::sleep(POLL).await;
    }
}
