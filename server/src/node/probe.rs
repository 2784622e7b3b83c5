//! `etcd_network_peer_round_trip_time_seconds`: each peer is probed over the peer port at
//! etcd's prober interval with a call it answers without work (Membership).

use std::sync::Arc;
use std::time::{Duration, Instant};

use ballast_proto::ballast::transport::MembershipRequest;

use super::Node;
use crate::metrics::metrics;

/// How often each peer is probed (etcd's prober: the peer read timeout less a second).
const PROBE_INTERVAL: Duration = Duration::from_secs(4);
/// A probe not answered within this is not counted.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Probes every other member until shutdown.
pub(crate) async fn probe_peers(node: Arc<Node>) -> Result<(), tonic::transport::Error> {
    let mut ticks = tokio::time::interval(PROBE_INTERVAL);
    loop {
        tokio::select! {
            _ = node.shutdown.cancelled() => return Ok(()),
            _ = ticks.tick() => {}
        }
        for member in node.cluster.members() {
            if member.id == node.cluster.local_id {
                continue;
            }
            let Some(mut client) = node.transport.client(member.id) else {
                continue;
            };
            let started = Instant::now();
            let probe = client.membership(MembershipRequest {});
            if let Ok(Ok(_)) = tokio::time::timeout(PROBE_TIMEOUT, probe).await {
                metrics()
                    .peer_round_trip
                    .with_label_values(&[format!("{:x}", member.id).as_str()])
                    .observe(started.elapsed().as_secs_f64());
            }
        }
    }
}
