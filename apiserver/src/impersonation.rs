//! Impersonation (`Impersonate-User`, `-Group`, `-Uid`, `-Extra-<key>`): after
//! authentication, each requested identity is authorized as the `impersonate` verb on
//! users, groups, service accounts, uids and user extras; the request then runs as the
//! user asked for.

use std::collections::BTreeMap;

use http::HeaderMap;

use crate::authn::{User, ANONYMOUS, AUTHENTICATED};
use crate::authz::{Attributes, Authorizer};
use crate::status::{ApiError, ApiResult};

const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";

fn impersonate(
    group: &str,
    resource: &str,
    subresource: &str,
    namespace: &str,
    name: &str,
) -> Attributes {
    Attributes {
        verb: "impersonate".into(),
        resource_request: true,
        namespace: namespace.into(),
        group: group.into(),
        resource: resource.into(),
        subresource: subresource.into(),
        name: name.into(),
        path: String::new(),
    }
}

/// The user a request runs as: `user` itself, or the one it may impersonate.
pub async fn apply(authorizer: &Authorizer, user: User, headers: &HeaderMap) -> ApiResult<User> {
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(String::from)
            .collect()
    };
    let name = values("impersonate-user").into_iter().next();
    let groups = values("impersonate-group");
    let uid = values("impersonate-uid").into_iter().next();
    let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (header, value) in headers {
        if let Some(key) = header.as_str().strip_prefix("impersonate-extra-") {
            let key = percent_encoding::percent_decode_str(key)
                .decode_utf8_lossy()
                .into_owned();
            extra
                .entry(key)
                .or_default()
                .extend(value.to_str().ok().map(String::from));
        }
    }
    let Some(name) = name else {
        if !groups.is_empty() || uid.is_some() || !extra.is_empty() {
            return Err(ApiError::bad_request(
                "requested impersonation of groups, uid or extra without impersonating a user",
            ));
        }
        return Ok(user);
    };
    let mut checks = Vec::new();
    match name
        .strip_prefix(SERVICE_ACCOUNT_PREFIX)
        .and_then(|rest| rest.split_once(':'))
    {
        Some((ns, sa)) => checks.push(impersonate("", "serviceaccounts", "", ns, sa)),
        None => checks.push(impersonate("", "users", "", "", &name)),
    }
    checks.extend(groups.iter().map(|g| impersonate("", "groups", "", "", g)));
    if let Some(uid) = &uid {
        checks.push(impersonate("authentication.k8s.io", "uids", "", "", uid));
    }
    for (key, values) in &extra {
        for value in values {
            checks.push(impersonate(
                "authentication.k8s.io",
                "userextras",
                key,
                "",
                value,
            ));
        }
    }
    for attributes in &checks {
        authorizer.authorize(&user, attributes).await?;
    }
    let mut groups = groups;
    if let Some((ns, _)) = name
        .strip_prefix(SERVICE_ACCOUNT_PREFIX)
        .and_then(|rest| rest.split_once(':'))
    {
        for g in [
            "system:serviceaccounts".to_string(),
            format!("system:serviceaccounts:{ns}"),
        ] {
            if !groups.contains(&g) {
                groups.push(g);
            }
        }
    }
    if name != ANONYMOUS && !groups.iter().any(|g| g == AUTHENTICATED) {
        groups.push(AUTHENTICATED.into());
    }
    Ok(User {
        name,
        uid: uid.unwrap_or_default(),
        groups,
        extra,
    })
}
