//! `/metrics`: the API server's own measurements in Prometheus' text format, under
//! kube-apiserver's names, so the cost of a stage can be read off a running server.
//! So far the stages whose cost is asked about: authorization decisions and admission
//! webhook calls.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A count of events and the time they took.
#[derive(Debug, Default)]
pub struct Timing {
    count: AtomicU64,
    nanos: AtomicU64,
}

impl Timing {
    /// One more event that took `took`.
    pub fn record(&self, took: Duration) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.nanos
            .fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
    }

    /// As a Prometheus histogram with the one bucket every histogram has.
    fn render(&self, out: &mut String, name: &str, help: &str) {
        let count = self.count.load(Ordering::Relaxed);
        let seconds = self.nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} histogram\n\
             {name}_bucket{{le=\"+Inf\"}} {count}\n{name}_sum {seconds}\n{name}_count {count}\n"
        );
    }
}

/// What the server measures.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Authorization decisions (the whole --authorization-mode chain).
    pub authorization: Timing,
    allowed: AtomicU64,
    denied: AtomicU64,
    /// Calls to admission webhooks, each from the request to the end of its answer.
    pub webhooks: Timing,
}

impl Metrics {
    /// One authorization decision.
    pub fn decided(&self, allowed: bool, took: Duration) {
        self.authorization.record(took);
        let counter = if allowed { &self.allowed } else { &self.denied };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The text of `/metrics`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let name = "apiserver_authorization_decisions_total";
        let _ = write!(
            out,
            "# HELP {name} Total number of terminal decisions made by an authorizer.\n\
             # TYPE {name} counter\n\
             {name}{{decision=\"allowed\"}} {}\n{name}{{decision=\"denied\"}} {}\n",
            self.allowed.load(Ordering::Relaxed),
            self.denied.load(Ordering::Relaxed)
        );
        self.authorization.render(
            &mut out,
            "apiserver_authorization_duration_seconds",
            "Authorization duration in seconds.",
        );
        self.webhooks.render(
            &mut out,
            "apiserver_admission_webhook_admission_duration_seconds",
            "Admission webhook latency in seconds.",
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_and_their_time_are_rendered() {
        let metrics = Metrics::default();
        metrics.decided(true, Duration::from_micros(3));
        metrics.decided(false, Duration::from_micros(5));
        metrics.webhooks.record(Duration::from_millis(2));
        let text = metrics.render();
        assert!(text.contains("apiserver_authorization_decisions_total{decision=\"allowed\"} 1\n"));
        assert!(text.contains("apiserver_authorization_decisions_total{decision=\"denied\"} 1\n"));
        assert!(text.contains("apiserver_authorization_duration_seconds_count 2\n"));
        assert!(text.contains("apiserver_authorization_duration_seconds_sum 0.000008\n"));
        assert!(text.contains("apiserver_admission_webhook_admission_duration_seconds_count 1\n"));
        assert!(text.contains("apiserver_admission_webhook_admission_duration_seconds_sum 0.002\n"));
    }
}
