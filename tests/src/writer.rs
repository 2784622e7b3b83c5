//! A writer that keeps putting one key in the background and records when each write
//! completed: what shows that an operation running meanwhile (a defragment, a
//! snapshot) did not stall writes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ballast_client::{Client, PutOptions};

/// The background writer; see the module docs.
#[derive(Debug)]
pub struct BackgroundWriter {
    done: Arc<Mutex<Vec<(Instant, i64)>>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

/// What the writes did while an operation ran from `started` for `took`.
#[derive(Debug, Clone, Copy)]
pub struct Stalls {
    /// Writes that completed while it ran.
    pub during: usize,
    /// The longest wait between two writes around and within it.
    pub longest_gap: Duration,
}

impl BackgroundWriter {
    /// Starts putting `key` through `client`, one write after another.
    pub fn start(client: &Client, key: &str) -> BackgroundWriter {
        let done = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let task = {
            let (client, done, stop, key) =
                (client.clone(), done.clone(), stop.clone(), key.to_string());
            tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let put = client
                        .put(&key, n.to_string(), PutOptions::new())
                        .await
                        .expect("a background write");
                    done.lock()
                        .unwrap()
                        .push((Instant::now(), put.header.revision));
                    n += 1;
                }
            })
        };
        BackgroundWriter { done, stop, task }
    }

    /// Stops the writer; returns each write's completion time and revision, in order.
    pub async fn stop(self) -> Vec<(Instant, i64)> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("the writer ran to the end");
        self.done.lock().unwrap().clone()
    }
}

/// How `writes` fared while an operation ran from `started` for `took`.
pub fn stalls(writes: &[(Instant, i64)], started: Instant, took: Duration) -> Stalls {
    let ended = started + took;
    Stalls {
        during: writes
            .iter()
            .filter(|(t, _)| *t > started && *t < ended)
            .count(),
        longest_gap: writes
            .windows(2)
            .filter(|w| w[1].0 > started && w[0].0 < ended)
            .map(|w| w[1].0 - w[0].0)
            .max()
            .unwrap_or(took),
    }
}
