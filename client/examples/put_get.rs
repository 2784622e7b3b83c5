//! Put a key, read it back, read a prefix.
//!
//! `cargo run -p ballast-client --example put_get` (endpoint: $BALLAST_ENDPOINTS or
//! 127.0.0.1:2379).

use ballast_client::{Client, ConnectOptions, GetOptions, PutOptions};

#[tokio::main]
async fn main() -> ballast_client::Result<()> {
    let endpoints = std::env::var("BALLAST_ENDPOINTS").unwrap_or_else(|_| "127.0.0.1:2379".into());
    let client = Client::connect(endpoints.split(','), ConnectOptions::default()).await?;

    let put = client
        .put("example/greeting", "hello", PutOptions::new())
        .await?;
    println!("put at revision {}", put.header.revision);
    client
        .put("example/farewell", "bye", PutOptions::new())
        .await?;

    let one = client.get("example/greeting", GetOptions::new()).await?;
    println!(
        "greeting = {}",
        one.kvs[0].value_str().unwrap_or("<binary>")
    );

    let all = client
        .get("example/", GetOptions::new().with_prefix())
        .await?;
    for kv in &all.kvs {
        println!(
            "{} = {}",
            kv.key_str().unwrap_or("?"),
            kv.value_str().unwrap_or("?")
        );
    }
    Ok(())
}
