//! Waiting on conditions, never on fixed sleeps.

use std::time::Duration;

/// How long a test waits for any condition (a node serving, a leader agreed, an event
/// arriving) before it fails. Only a failing test waits this long.
pub const WAIT: Duration = Duration::from_secs(30);

/// Polls `check` until it holds or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
