//! A key that lives as long as this program keeps its lease alive.
//!
//! `cargo run -p ballast-client --example lease_keep_alive`

use std::time::Duration;

use ballast_client::{Client, ConnectOptions, GetOptions, PutOptions};

#[tokio::main]
async fn main() -> ballast_client::Result<()> {
    let endpoints = std::env::var("BALLAST_ENDPOINTS").unwrap_or_else(|_| "127.0.0.1:2379".into());
    let client = Client::connect(endpoints.split(','), ConnectOptions::default()).await?;

    let lease = client.lease_grant(2, 0).await?;
    client
        .put(
            "example/alive",
            "while I run",
            PutOptions::new().with_lease(lease.id),
        )
        .await?;
    let keep_alive = client.lease_keep_alive(lease.id).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let still = client.get("example/alive", GetOptions::new()).await?;
    println!(
        "after 3 s with a 2 s TTL the key is {}",
        if still.kvs.is_empty() {
            "gone"
        } else {
            "still there"
        }
    );
    println!("lease state: {:?}", keep_alive.state());

    client.lease_revoke(lease.id).await?;
    let gone = client.get("example/alive", GetOptions::new()).await?;
    println!(
        "after revoking, the key is {}",
        if gone.kvs.is_empty() {
            "gone"
        } else {
            "still there"
        }
    );
    Ok(())
}
