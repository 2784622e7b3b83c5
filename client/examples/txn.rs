//! Compare-and-swap with a transaction: update a key only if nobody changed it since we
//! read it (what kube-apiserver does for every update).
//!
//! `cargo run -p ballast-client --example txn`

use ballast_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse,
};

#[tokio::main]
async fn main() -> ballast_client::Result<()> {
    let endpoints = std::env::var("BALLAST_ENDPOINTS").unwrap_or_else(|_| "127.0.0.1:2379".into());
    let client = Client::connect(endpoints.split(','), ConnectOptions::default()).await?;

    client
        .put("example/counter", "1", PutOptions::new())
        .await?;
    let read = client.get("example/counter", GetOptions::new()).await?;
    let seen = read.kvs[0].mod_revision;

    let update = Txn::new()
        .when([Compare::mod_revision(
            "example/counter",
            CompareOp::Equal,
            seen,
        )])
        .and_then([TxnOp::put("example/counter", "2", PutOptions::new())])
        .or_else([TxnOp::get("example/counter", GetOptions::new())]);
    let result = client.txn(update).await?;
    if result.succeeded {
        println!("updated at revision {}", result.header.revision);
    } else if let Some(TxnOpResponse::Get(current)) = result.responses.first() {
        println!(
            "lost the race; current value {:?}",
            current.kvs[0].value_str()
        );
    }
    Ok(())
}
