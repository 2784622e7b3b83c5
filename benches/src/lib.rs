//! Benchmarks and measurement tools. The criterion benches (`benches/`) time the store's
//! hot paths; the binaries (`src/bin/`) drive real servers, Ballast or etcd, the same
//! way: `load` runs one workload, `compare` runs them all against a Ballast cluster and
//! an etcd cluster side by side, `scale` measures memory and restart time with many keys, `api` drives
//! ballast-apiserver (with admission webhooks served by `webhook`).

pub mod auth;
pub mod kube;
pub mod load;
pub mod webhook;
