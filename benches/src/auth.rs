//! Auth for the `-auth` workloads: a user whose one role grants read and write on the
//! prefixes the workloads use, as a cluster's tenant would be set up, and auth turned on
//! and off between runs so the same cluster and data serve both.

use ballast_client::{Client, ConnectOptions, Permission, PermissionKind, Result};

/// The benchmark's user, its password and role.
pub const USER: &str = "bench";
const PASSWORD: &str = "bench-password";
const ROLE: &str = "bench";
const ROOT_PASSWORD: &str = "root-password";
/// The key prefixes the workloads write and read (see `load::key` and the watch workload).
const PREFIXES: [&str; 2] = ["/bench/", "/watch-bench/"];

/// The credentials the workloads connect with when auth is on.
pub fn credentials() -> (String, String) {
    (USER.into(), PASSWORD.into())
}

/// Creates root (with role root) and the benchmark user with its prefix permissions.
/// Auth stays off; call it once, on a cluster whose auth is off.
pub async fn create_users(endpoints: &[String]) -> Result<()> {
    let client = Client::connect(endpoints.to_vec(), ConnectOptions::default()).await?;
    client.user_add("root", ROOT_PASSWORD).await?;
    client.role_add("root").await?;
    client.user_grant_role("root", "root").await?;
    client.user_add(USER, PASSWORD).await?;
    client.role_add(ROLE).await?;
    for prefix in PREFIXES {
        let permission = Permission::prefix(PermissionKind::ReadWrite, prefix);
        client.role_grant_permission(ROLE, permission).await?;
    }
    client.user_grant_role(USER, ROLE).await
}

/// Turns auth on or off; `create_users` must have run.
pub async fn set_enabled(endpoints: &[String], on: bool) -> Result<()> {
    if on {
        let client = Client::connect(endpoints.to_vec(), ConnectOptions::default()).await?;
        client.auth_enable().await
    } else {
        let root = ConnectOptions {
            credentials: Some(("root".into(), ROOT_PASSWORD.into())),
            ..ConnectOptions::default()
        };
        Client::connect(endpoints.to_vec(), root)
            .await?
            .auth_disable()
            .await
    }
}
