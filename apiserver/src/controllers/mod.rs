//! Control loops the API server runs beside the request path, as kube-controller-manager
//! would: clients of the same storage and rest layers, fed by queues the verbs fill and by
//! periodic sweeps (which also pick up what a restart left half done).

mod aggregation;
mod gc;
mod namespace;
mod quota;
mod serviceaccounts;
mod tokens;

use crate::rest::{Api, Queues};

/// Starts every controller.
pub fn start(api: &Api, queues: Queues, root_ca: String) {
    tokio::spawn(namespace::run(api.clone(), queues.terminating));
    tokio::spawn(gc::run(api.clone(), queues.gc));
    tokio::spawn(aggregation::run(api.clone()));
    tokio::spawn(quota::run(api.clone()));
    tokio::spawn(serviceaccounts::run(api.clone(), root_ca.clone()));
    tokio::spawn(tokens::run(api.clone(), root_ca));
}
