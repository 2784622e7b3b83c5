//! Defragment does not stop the world: a writer keeps completing writes while a member
//! rewrites all its files (etcd's defragment blocks every read and write meanwhile).

use std::time::{Duration, Instant};

use ballast_client::PutOptions;
use ballast_tests::{stalls, BackgroundWriter, Node, Stalls};

const VALUE_BYTES: usize = 100 << 10;
/// Values written per round: 32 MB, so the defragment has files to rewrite.
const VALUES_PER_ROUND: usize = 320;
/// A defragment shorter than this says too little about stalls; more data is added.
const DEFRAG_LONG_ENOUGH: Duration = Duration::from_millis(300);
const ROUNDS_MAX: usize = 4;

/// Incompressible bytes, so the files hold what was written.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_complete_while_a_defragment_runs() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("n"));
    let client = node.client().await;

    let mut round = 0;
    let (completions, started, took) = loop {
        round += 1;
        // Data, then overwrites of all of it and a compaction: garbage to drop.
        for pass in 0..2 {
            for i in 0..VALUES_PER_ROUND {
                let value = noise((round * 10_000 + i + pass) as u64, VALUE_BYTES);
                client
                    .put(format!("big/{round}/{i}"), value, PutOptions::new())
                    .await
                    .unwrap();
            }
        }
        let revision = client.status().await.unwrap().header.revision;
        client.compact(revision, true).await.unwrap();

        let writer = BackgroundWriter::start(&client, "writer");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = Instant::now();
        client.defragment().await.unwrap();
        let took = started.elapsed();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let writes = writer.stop().await;
        if took >= DEFRAG_LONG_ENOUGH || round == ROUNDS_MAX {
            break (writes, started, took);
        }
    };

    let Stalls {
        during,
        longest_gap,
    } = stalls(&completions, started, took);
    println!(
        "defragment took {took:?} after {round} round(s); {during} writes completed during it, \
         the longest gap between writes was {longest_gap:?}"
    );
    assert!(
        during > 0,
        "no write completed during a {took:?} defragment"
    );
    assert!(
        longest_gap < took,
        "writes stalled for {longest_gap:?} of a {took:?} defragment"
    );
}
