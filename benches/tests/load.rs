//! The load generator against a real `ballast` process: every workload runs, is named as
//! the comparison table expects, and measures what it did.

use ballast_benches::load::{run, Settings, Workload};

const OPS: u64 = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_workload_runs_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let node = ballast_tests::Node::start(dir.path());
    let settings = Settings {
        endpoints: vec![node.endpoint()],
        clients: 4,
        connections: 2,
        key_size: 32,
        value_size: 256,
        key_space: 100,
        total: Some(OPS),
        duration: None,
        progress: false,
        server_pids: vec![node.pid()],
        credentials: None,
    };
    let watchers = 5;
    let cases = [
        (Workload::Put { sequential: false }, "put", OPS),
        (Workload::Put { sequential: true }, "put-sequential", OPS),
        (
            Workload::Range {
                serializable: false,
            },
            "range-linearizable",
            OPS,
        ),
        (
            Workload::Range { serializable: true },
            "range-serializable",
            OPS,
        ),
        (Workload::TxnUpdate, "txn-update", OPS),
        (Workload::Lease, "lease", OPS),
        // Each put reaches every watcher: one measured event per watcher per put.
        (
            Workload::Watch {
                watchers,
                rate: 1_000,
                slow: 0,
            },
            "watch-5",
            OPS,
        ),
        (
            Workload::Watch {
                watchers,
                rate: 1_000,
                slow: 2,
            },
            "watch-5-with-2-slow",
            OPS,
        ),
    ];
    let mut server_cpu = 0.0;
    for (workload, name, least) in cases {
        assert_eq!(workload.name(), name);
        let report = run(workload, &settings).await.unwrap();
        assert_eq!(report.workload, name);
        assert_eq!(report.errors, 0, "{}", report.json());
        assert!(report.ops >= least, "{}", report.json());
        assert!(report.qps > 0.0, "{}", report.json());
        assert!(
            report.p50_ms > 0.0 && report.p50_ms <= report.p99_ms,
            "{}",
            report.json()
        );
        assert!(report
            .json()
            .starts_with(&format!("{{\"workload\":\"{name}\"")));
        let cpu = report.server_cpu_seconds.expect("a server pid was given");
        assert!(report.json().contains("\"server_cpu_seconds\":"));
        server_cpu += cpu;
    }
    // Each run may take less than a clock tick of the server's CPU; all of them do not.
    assert!(server_cpu > 0.0, "the server's CPU time was not measured");
}

/// The `-auth` workloads: the benchmark user works with auth on, a caller without
/// credentials does not, and auth turns off again for the plain workloads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_workloads_run_as_the_benchmark_user() {
    let dir = tempfile::tempdir().unwrap();
    let node = ballast_tests::Node::start(dir.path());
    let endpoints = vec![node.endpoint()];
    let plain = Settings {
        endpoints: endpoints.clone(),
        clients: 4,
        connections: 2,
        key_size: 32,
        value_size: 64,
        key_space: 100,
        total: Some(OPS),
        duration: None,
        progress: false,
        server_pids: vec![],
        credentials: None,
    };
    let authed = Settings {
        credentials: Some(ballast_benches::auth::credentials()),
        ..plain.clone()
    };
    ballast_benches::auth::create_users(&endpoints)
        .await
        .unwrap();
    ballast_benches::auth::set_enabled(&endpoints, true)
        .await
        .unwrap();
    let range = Workload::Range {
        serializable: false,
    };
    for (workload, name) in [
        (Workload::Put { sequential: false }, "put-auth"),
        (range, "range-linearizable-auth"),
    ] {
        let report = run(workload, &authed).await.unwrap();
        assert_eq!(report.workload, name);
        assert_eq!(report.errors, 0, "{}", report.json());
        assert!(report.ops >= OPS, "{}", report.json());
    }
    // Without a token every put is refused.
    let refused = run(Workload::Put { sequential: false }, &plain)
        .await
        .unwrap();
    assert_eq!(refused.ops, 0, "{}", refused.json());
    assert!(refused.errors > 0, "{}", refused.json());

    ballast_benches::auth::set_enabled(&endpoints, false)
        .await
        .unwrap();
    let report = run(Workload::Put { sequential: false }, &plain)
        .await
        .unwrap();
    assert_eq!(report.errors, 0, "{}", report.json());
}
