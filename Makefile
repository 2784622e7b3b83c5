# The README's commands. Each target installs the Debian packages it needs when they
# are missing, so it works on a fresh machine (as root, or with sudo).

CARGO ?= cargo
# Ballast links Debian's RocksDB (see .cargo/config.toml); bindgen needs libclang.
BUILD_PACKAGES := librocksdb-dev libclang-dev
# etcdctl, the client nobody here wrote, drives the end-to-end tests; a real etcd holds
# the client library to the reference server and runs beside Ballast in benchmarks.
TEST_PACKAGES := etcd-client etcd-server curl python3-pip protobuf-compiler libprotobuf-dev openssl
DATA_DIR ?= ./data

# kubectl's certificates for `make kube` are made with openssl.
KUBE_PACKAGES := openssl curl

.PHONY: run kube test build cluster bench bench-compare bench-scale bench-api deps-build deps-test deps-kube check-toolchain

## run: a single node on 127.0.0.1:2379 with its data under ./data
run: deps-build
	$(CARGO) build --release --bin ballast
	./target/release/ballast --name default --data-dir $(DATA_DIR) \
		--listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379

## kube: one node plus ballast-apiserver on https://127.0.0.1:6443, an admin kubeconfig
## at ./data/kubeconfig (KUBECONFIG=./data/kubeconfig kubectl get ns in another shell)
kube: deps-build deps-kube
	$(CARGO) build --release --bin ballast --bin ballast-apiserver
	DATA_DIR=$(DATA_DIR) ./scripts/kube

## cluster: three members on 127.0.0.1 (clients 2379, 22379, 32379), data under ./data/cluster
cluster: deps-build
	$(CARGO) build --release --bin ballast
	./scripts/cluster

## test: formatting, lints, every unit, integration and end-to-end test
test: deps-build deps-test
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace

## bench: criterion micro-benchmarks of the store's hot paths
bench: deps-build
	$(CARGO) bench -p ballast-benches --bench store

## bench-compare: 3-member Ballast and 3-member etcd 3.5.1 on loopback, same workloads, one
## table (BALLAST_ETCD=debian for Debian's etcd 3.4, or a path to another etcd binary)
BENCH_DURATION ?= 20s
BENCH_ROUNDS ?= 3
bench-compare: deps-build deps-test
	$(CARGO) build --release --workspace --bins
	./target/release/compare --duration $(BENCH_DURATION) --rounds $(BENCH_ROUNDS)

## bench-scale: RSS and restart time after loading BENCH_KEYS keys, Ballast then etcd
## 3.5.1 (BALLAST_ETCD=debian for Debian's etcd 3.4, or a path to another etcd binary)
BENCH_KEYS ?= 1000000
bench-scale: deps-build deps-test
	$(CARGO) build --release --workspace --bins
	./target/release/scale --server ballast --keys $(BENCH_KEYS)
	./target/release/scale --server etcd --etcd "$${BALLAST_ETCD:-3.5.1}" --keys $(BENCH_KEYS)

## bench-api: ballast-apiserver over 3 members: creates and gets at 32 clients, LISTs of
## 10,000 configmaps, one change fanned out to 1,000 watchers; p50/p99 against the targets
bench-api: deps-build deps-test
	$(CARGO) build --release --workspace --bins
	./target/release/api

build: deps-build
	$(CARGO) build --workspace

deps-build: check-toolchain
	@./scripts/ensure-packages $(BUILD_PACKAGES)

deps-kube:
	@./scripts/ensure-packages $(KUBE_PACKAGES)

deps-test:
	@./scripts/ensure-packages $(TEST_PACKAGES)
	@./scripts/ensure-etcd-3.5
	@./scripts/ensure-python-clients
	@./scripts/no-etcd-service

check-toolchain:
	@command -v $(CARGO) >/dev/null 2>&1 || { \
		echo "cargo not found: install Rust from https://rustup.rs (stable)"; exit 1; }
