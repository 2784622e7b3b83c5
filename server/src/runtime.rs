//! The member's tokio runtime, and why its scheduler runs woken tasks in order.
//!
//! tokio's multi-threaded scheduler keeps a LIFO slot: a task woken or spawned by the
//! task running on a worker runs next, ahead of the worker's queue. For a served
//! connection that defeats batching. When a Ready's apply answers a dozen waiting
//! handlers, or a socket read brings a handful of requests, each handler sends its
//! response and wakes its connection task. That task then takes the LIFO slot, runs at
//! once, and flushes that one response in a socket write of its own, before the next
//! handler has run. So every response costs a `sendto` of its own, and on loopback a
//! receive on the peer, and the wake-ups in between.
//!
//! Without the LIFO slot the woken connection task queues behind the handlers already
//! queued, and it writes all their responses in one flush. Measured on three members
//! under `load` (docs/performance.md): `sendto` per serializable read fell from 0.95 to
//! 0.22, and members' CPU per operation fell about a fifth for reads and a tenth for
//! puts.
//!
//! tokio offers the switch only as an unstable API, so the workspace builds with
//! `--cfg tokio_unstable` (`.cargo/config.toml`). A build without that flag still runs,
//! with the LIFO slot; the test below then fails.

use std::io;

use tokio::runtime::{Builder, Runtime};

/// The runtime a member runs on: tokio's multi-threaded scheduler (a worker per core,
/// or `TOKIO_WORKER_THREADS`), without the LIFO slot.
pub fn build() -> io::Result<Runtime> {
    configure(&mut Builder::new_multi_thread()).build()
}

/// Everything but the number of workers, so the test can pin that.
fn configure(builder: &mut Builder) -> &mut Builder {
    builder
        .enable_all()
        .on_thread_start(ballast_store::backend::perf_counters_off);
    #[cfg(tokio_unstable)]
    builder.disable_lifo_slot();
    builder
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// With the LIFO slot, the task spawned last would run first: each spawn takes the
    /// slot and pushes the one before it to the queue.
    #[test]
    fn tasks_woken_on_a_worker_run_in_the_order_they_were_woken() {
        let runtime = configure(Builder::new_multi_thread().worker_threads(1))
            .build()
            .expect("runtime");
        let order = Arc::new(Mutex::new(Vec::new()));
        let seen = order.clone();
        // Spawned from a task, so on the worker (a spawn from `block_on` is queued
        // from outside and never takes the slot).
        runtime.block_on(async move {
            tokio::spawn(async move {
                let handles: Vec<_> = ["first", "second"]
                    .into_iter()
                    .map(|name| {
                        let order = order.clone();
                        tokio::spawn(async move { order.lock().unwrap().push(name) })
                    })
                    .collect();
                for handle in handles {
                    handle.await.unwrap();
                }
            })
            .await
            .unwrap();
        });
        assert_eq!(*seen.lock().unwrap(), ["first", "second"]);
    }
}
