//! `grpc_server_started_total` and `grpc_server_handled_total` as go-grpc-prometheus
//! counts them for etcd: per service and method, with the call's type and, once it
//! ends, its status code as Go names it.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use http::HeaderMap;
use http_body::Frame;
use prometheus::IntCounter;
use tonic::Code;

use super::status::go_code_name;
use crate::metrics::metrics;

/// The labels of one call: type, service, method.
type Labels = [String; 3];

/// go-grpc-prometheus's call type of an etcd method.
fn grpc_type(service: &str, method: &str) -> &'static str {
    match (service, method) {
        ("etcdserverpb.Watch", "Watch") | ("etcdserverpb.Lease", "LeaseKeepAlive") => "bidi_stream",
        ("etcdserverpb.Maintenance", "Snapshot") | ("v3electionpb.Election", "Observe") => {
            "server_stream"
        }
        _ => "unary",
    }
}

/// The call's code from a `grpc-status` header or trailer.
fn code_of(headers: &HeaderMap) -> Option<String> {
    let status = headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .parse::<i32>()
        .ok()?;
    Some(go_code_name(Code::from_i32(status)))
}

fn handled(labels: &Labels, code: &str) {
    let [kind, service, method] = labels;
    metrics()
        .grpc_handled
        .with_label_values(&[kind.as_str(), service, method, code])
        .inc();
}

/// Middleware over the gRPC routes: counts each call when it starts and when it ends.
pub(crate) async fn count_grpc(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let Some((service, method)) = path.strip_prefix('/').and_then(|p| p.split_once('/')) else {
        return next.run(request).await;
    };
    let labels: Labels = [
        grpc_type(service, method).to_string(),
        service.to_string(),
        method.to_string(),
    ];
    let [kind, service, method] = &labels;
    metrics()
        .grpc_started
        .with_label_values(&[kind.as_str(), service, method])
        .inc();
    let request = request.map(|body| {
        Body::new(Metered {
            inner: body,
            bytes: &metrics().client_received,
            labels: None,
        })
    });
    let response = next.run(request).await;
    // A call refused before any message ends in its headers (trailers-only).
    if let Some(code) = code_of(response.headers()) {
        handled(&labels, &code);
        return response;
    }
    response.map(|body| {
        Body::new(Metered {
            inner: body,
            bytes: &metrics().client_sent,
            labels: Some(labels),
        })
    })
}

/// A request or response body that counts the bytes it carries (into `bytes`:
/// `etcd_network_client_grpc_{received,sent}_bytes_total`); a response's also counts its
/// call as handled when its trailers pass, or as canceled if it is dropped before (the
/// client went away).
struct Metered {
    inner: Body,
    bytes: &'static IntCounter,
    /// A response's call labels; taken once the call is counted.
    labels: Option<Labels>,
}

impl http_body::Body for Metered {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        let code = match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.bytes.inc_by(data.len() as u64);
                }
                frame
                    .trailers_ref()
                    .map(|trailers| code_of(trailers).unwrap_or_else(|| "Unknown".into()))
            }
            Poll::Ready(Some(Err(_))) | Poll::Ready(None) => Some("Unknown".into()),
            Poll::Pending => None,
        };
        if let Some(code) = code {
            if let Some(labels) = this.labels.take() {
                handled(&labels, &code);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Metered {
    fn drop(&mut self) {
        if let Some(labels) = self.labels.take() {
            handled(&labels, &go_code_name(Code::Cancelled));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_types_as_go_names_them() {
        let mut headers = HeaderMap::new();
        headers.insert("grpc-status", "1".parse().unwrap());
        assert_eq!(code_of(&headers).as_deref(), Some("Canceled"));
        headers.insert("grpc-status", "0".parse().unwrap());
        assert_eq!(code_of(&headers).as_deref(), Some("OK"));
        headers.insert("grpc-status", "8".parse().unwrap());
        assert_eq!(code_of(&headers).as_deref(), Some("ResourceExhausted"));
        assert_eq!(grpc_type("etcdserverpb.Watch", "Watch"), "bidi_stream");
        assert_eq!(grpc_type("etcdserverpb.KV", "Range"), "unary");
    }
}
