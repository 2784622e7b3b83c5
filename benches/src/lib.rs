//! Benchmarks and measurement tools. The criterion benches (`benches/`) time the store's
//! hot paths; the binaries (`src/bin/`) drive real servers, Ballast or etcd, the same way.
