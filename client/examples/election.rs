//! Leader election, compatible with `etcdctl elect example-election`.
//!
//! `cargo run -p ballast-client --example election`

use ballast_client::{Client, ConnectOptions, Election, Session};

#[tokio::main]
async fn main() -> ballast_client::Result<()> {
    let endpoints = std::env::var("BALLAST_ENDPOINTS").unwrap_or_else(|_| "127.0.0.1:2379".into());
    let client = Client::connect(endpoints.split(','), ConnectOptions::default()).await?;

    let session = Session::new(&client, 10).await?;
    let mut election = Election::new(&session, "example-election");
    let leader = election.campaign("candidate-1").await?;
    println!(
        "leading with key {:?} (revision {})",
        leader.key, leader.revision
    );

    election.proclaim("candidate-1, now with news").await?;
    if let Some(kv) = election.leader().await? {
        println!("the leader says: {}", kv.value_str().unwrap_or("?"));
    }
    election.resign().await?;
    session.close().await?;
    println!("resigned");
    Ok(())
}
