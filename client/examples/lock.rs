//! A distributed lock, compatible with `etcdctl lock example-lock`.
//!
//! `cargo run -p ballast-client --example lock`

use ballast_client::{Client, ConnectOptions, Mutex, PutOptions, Session, Txn, TxnOp};

#[tokio::main]
async fn main() -> ballast_client::Result<()> {
    let endpoints = std::env::var("BALLAST_ENDPOINTS").unwrap_or_else(|_| "127.0.0.1:2379".into());
    let client = Client::connect(endpoints.split(','), ConnectOptions::default()).await?;

    let session = Session::new(&client, 10).await?;
    let mut lock = Mutex::new(&session, "example-lock");
    lock.lock().await?;
    println!(
        "holding {:?} (fencing revision {})",
        lock.key(),
        lock.revision()
    );

    // Writes guarded by the lock: they fail if we lost it meanwhile.
    let guarded = Txn::new().when([lock.is_owner()]).and_then([TxnOp::put(
        "example/protected",
        "written under the lock",
        PutOptions::new(),
    )]);
    println!(
        "guarded write applied: {}",
        client.txn(guarded).await?.succeeded
    );

    lock.unlock().await?;
    session.close().await?;
    println!("released");
    Ok(())
}
