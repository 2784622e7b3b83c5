//! Watch a prefix from now on and print the events of three writes.
//!
//! `cargo run -p ballast-client --example watch`

use ballast_client::{Client, ConnectOptions, DeleteOptions, PutOptions, WatchOptions};

#[tokio::main]
async fn main() -> ballast_client::Result<()> {
    let endpoints = std::env::var("BALLAST_ENDPOINTS").unwrap_or_else(|_| "127.0.0.1:2379".into());
    let client = Client::connect(endpoints.split(','), ConnectOptions::default()).await?;

    let (watcher, mut events) = client
        .watch(
            "example/watched/",
            WatchOptions::new().with_prefix().with_prev_kv(),
        )
        .await?;
    println!("watching from revision {}", watcher.header().revision + 1);

    client
        .put("example/watched/a", "1", PutOptions::new())
        .await?;
    client
        .put("example/watched/a", "2", PutOptions::new())
        .await?;
    client
        .delete("example/watched/a", DeleteOptions::new())
        .await?;

    let mut seen = 0;
    while seen < 3 {
        let Some(response) = events.message().await? else {
            break;
        };
        for event in response.events {
            seen += 1;
            println!(
                "{:?} {} at revision {} (before: {:?})",
                event.kind,
                event.kv.key_str().unwrap_or("?"),
                event.kv.mod_revision,
                event
                    .prev_kv
                    .as_ref()
                    .map(|kv| kv.value_str().unwrap_or("?").to_string()),
            );
        }
    }
    watcher.cancel().await?;
    Ok(())
}
