//! etcd's JSON gateway on the client port: `POST /v3/<service>/<call>` with a JSON body
//! in the protobuf JSON mapping (bytes in base64, 64-bit integers as strings, fields as
//! etcd's .proto names them), answered the same way. Like etcd's (grpc-gateway), it is a
//! transcoder in front of the gRPC services: each request becomes a gRPC call on this
//! member's own routes, so auth, limits and metrics apply alike. Streams (watch, lease
//! keep-alive, snapshot, observe) answer one JSON object per line, `{"result": ...}`.

mod codec;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use http::uri::PathAndQuery;
use prost::Message;
use prost_reflect::{DescriptorPool, DeserializeOptions, DynamicMessage, SerializeOptions};
use tonic::{Code, Status};

use codec::RawCodec;

/// A gateway path, the gRPC method behind it, its request and response message names
/// (in package `etcdserverpb` unless qualified), and whether it streams.
struct Endpoint {
    http: &'static str,
    grpc: &'static str,
    request: &'static str,
    response: &'static str,
    streams: bool,
}

macro_rules! endpoints {
    ($($http:literal => $grpc:literal, $req:literal, $resp:literal $(, $streams:ident)?;)*) => {
        &[$(Endpoint {
            http: $http,
            grpc: $grpc,
            request: $req,
            response: $resp,
            streams: endpoints!(@streams $($streams)?),
        },)*]
    };
    (@streams stream) => { true };
    (@streams) => { false };
}

/// Every path etcd 3.5's gateway serves.
const ENDPOINTS: &[Endpoint] = endpoints! {
    "/v3/kv/range" => "/etcdserverpb.KV/Range", "RangeRequest", "RangeResponse";
    "/v3/kv/put" => "/etcdserverpb.KV/Put", "PutRequest", "PutResponse";
    "/v3/kv/deleterange" => "/etcdserverpb.KV/DeleteRange", "DeleteRangeRequest", "DeleteRangeResponse";
    "/v3/kv/txn" => "/etcdserverpb.KV/Txn", "TxnRequest", "TxnResponse";
    "/v3/kv/compaction" => "/etcdserverpb.KV/Compact", "CompactionRequest", "CompactionResponse";
    "/v3/watch" => "/etcdserverpb.Watch/Watch", "WatchRequest", "WatchResponse", stream;
    "/v3/lease/grant" => "/etcdserverpb.Lease/LeaseGrant", "LeaseGrantRequest", "LeaseGrantResponse";
    "/v3/lease/revoke" => "/etcdserverpb.Lease/LeaseRevoke", "LeaseRevokeRequest", "LeaseRevokeResponse";
    "/v3/kv/lease/revoke" => "/etcdserverpb.Lease/LeaseRevoke", "LeaseRevokeRequest", "LeaseRevokeResponse";
    "/v3/lease/keepalive" => "/etcdserverpb.Lease/LeaseKeepAlive", "LeaseKeepAliveRequest", "LeaseKeepAliveResponse", stream;
    "/v3/lease/timetolive" => "/etcdserverpb.Lease/LeaseTimeToLive", "LeaseTimeToLiveRequest", "LeaseTimeToLiveResponse";
    "/v3/kv/lease/timetolive" => "/etcdserverpb.Lease/LeaseTimeToLive", "LeaseTimeToLiveRequest", "LeaseTimeToLiveResponse";
    "/v3/lease/leases" => "/etcdserverpb.Lease/LeaseLeases", "LeaseLeasesRequest", "LeaseLeasesResponse";
    "/v3/kv/lease/leases" => "/etcdserverpb.Lease/LeaseLeases", "LeaseLeasesRequest", "LeaseLeasesResponse";
    "/v3/cluster/member/add" => "/etcdserverpb.Cluster/MemberAdd", "MemberAddRequest", "MemberAddResponse";
    "/v3/cluster/member/remove" => "/etcdserverpb.Cluster/MemberRemove", "MemberRemoveRequest", "MemberRemoveResponse";
    "/v3/cluster/member/update" => "/etcdserverpb.Cluster/MemberUpdate", "MemberUpdateRequest", "MemberUpdateResponse";
    "/v3/cluster/member/list" => "/etcdserverpb.Cluster/MemberList", "MemberListRequest", "MemberListResponse";
    "/v3/cluster/member/promote" => "/etcdserverpb.Cluster/MemberPromote", "MemberPromoteRequest", "MemberPromoteResponse";
    "/v3/maintenance/alarm" => "/etcdserverpb.Maintenance/Alarm", "AlarmRequest", "AlarmResponse";
    "/v3/maintenance/status" => "/etcdserverpb.Maintenance/Status", "StatusRequest", "StatusResponse";
    "/v3/maintenance/defragment" => "/etcdserverpb.Maintenance/Defragment", "DefragmentRequest", "DefragmentResponse";
    "/v3/maintenance/hash" => "/etcdserverpb.Maintenance/Hash", "HashRequest", "HashResponse";
    "/v3/maintenance/hashkv" => "/etcdserverpb.Maintenance/HashKV", "HashKVRequest", "HashKVResponse";
    "/v3/maintenance/snapshot" => "/etcdserverpb.Maintenance/Snapshot", "SnapshotRequest", "SnapshotResponse", stream;
    "/v3/maintenance/transfer-leadership" => "/etcdserverpb.Maintenance/MoveLeader", "MoveLeaderRequest", "MoveLeaderResponse";
    "/v3/maintenance/downgrade" => "/etcdserverpb.Maintenance/Downgrade", "DowngradeRequest", "DowngradeResponse";
    "/v3/auth/enable" => "/etcdserverpb.Auth/AuthEnable", "AuthEnableRequest", "AuthEnableResponse";
    "/v3/auth/disable" => "/etcdserverpb.Auth/AuthDisable", "AuthDisableRequest", "AuthDisableResponse";
    "/v3/auth/status" => "/etcdserverpb.Auth/AuthStatus", "AuthStatusRequest", "AuthStatusResponse";
    "/v3/auth/authenticate" => "/etcdserverpb.Auth/Authenticate", "AuthenticateRequest", "AuthenticateResponse";
    "/v3/auth/user/add" => "/etcdserverpb.Auth/UserAdd", "AuthUserAddRequest", "AuthUserAddResponse";
    "/v3/auth/user/get" => "/etcdserverpb.Auth/UserGet", "AuthUserGetRequest", "AuthUserGetResponse";
    "/v3/auth/user/list" => "/etcdserverpb.Auth/UserList", "AuthUserListRequest", "AuthUserListResponse";
    "/v3/auth/user/delete" => "/etcdserverpb.Auth/UserDelete", "AuthUserDeleteRequest", "AuthUserDeleteResponse";
    "/v3/auth/user/changepw" => "/etcdserverpb.Auth/UserChangePassword", "AuthUserChangePasswordRequest", "AuthUserChangePasswordResponse";
    "/v3/auth/user/grant" => "/etcdserverpb.Auth/UserGrantRole", "AuthUserGrantRoleRequest", "AuthUserGrantRoleResponse";
    "/v3/auth/user/revoke" => "/etcdserverpb.Auth/UserRevokeRole", "AuthUserRevokeRoleRequest", "AuthUserRevokeRoleResponse";
    "/v3/auth/role/add" => "/etcdserverpb.Auth/RoleAdd", "AuthRoleAddRequest", "AuthRoleAddResponse";
    "/v3/auth/role/get" => "/etcdserverpb.Auth/RoleGet", "AuthRoleGetRequest", "AuthRoleGetResponse";
    "/v3/auth/role/list" => "/etcdserverpb.Auth/RoleList", "AuthRoleListRequest", "AuthRoleListResponse";
    "/v3/auth/role/delete" => "/etcdserverpb.Auth/RoleDelete", "AuthRoleDeleteRequest", "AuthRoleDeleteResponse";
    "/v3/auth/role/grant" => "/etcdserverpb.Auth/RoleGrantPermission", "AuthRoleGrantPermissionRequest", "AuthRoleGrantPermissionResponse";
    "/v3/auth/role/revoke" => "/etcdserverpb.Auth/RoleRevokePermission", "AuthRoleRevokePermissionRequest", "AuthRoleRevokePermissionResponse";
    "/v3/lock/lock" => "/v3lockpb.Lock/Lock", "v3lockpb.LockRequest", "v3lockpb.LockResponse";
    "/v3/lock/unlock" => "/v3lockpb.Lock/Unlock", "v3lockpb.UnlockRequest", "v3lockpb.UnlockResponse";
    "/v3/election/campaign" => "/v3electionpb.Election/Campaign", "v3electionpb.CampaignRequest", "v3electionpb.CampaignResponse";
    "/v3/election/proclaim" => "/v3electionpb.Election/Proclaim", "v3electionpb.ProclaimRequest", "v3electionpb.ProclaimResponse";
    "/v3/election/leader" => "/v3electionpb.Election/Leader", "v3electionpb.LeaderRequest", "v3electionpb.LeaderResponse";
    "/v3/election/observe" => "/v3electionpb.Election/Observe", "v3electionpb.LeaderRequest", "v3electionpb.LeaderResponse", stream;
    "/v3/election/resign" => "/v3electionpb.Election/Resign", "v3electionpb.ResignRequest", "v3electionpb.ResignResponse";
};

/// The gateway's state: the gRPC routes it calls, and the message descriptors.
#[derive(Clone)]
struct Gateway {
    grpc: Router,
    pool: DescriptorPool,
    endpoint: &'static Endpoint,
    /// Largest request body accepted (the gRPC limit on a request message).
    body_max: usize,
}

/// The gateway's routes, calling `grpc` (the member's gRPC routes).
pub(crate) fn routes(grpc: Router, body_max: usize) -> Router {
    let pool = DescriptorPool::decode(ballast_proto::GATEWAY_DESCRIPTORS)
        .expect("the gateway descriptors built with this crate decode");
    let mut router = Router::new();
    for endpoint in ENDPOINTS {
        let gateway = Arc::new(Gateway {
            grpc: grpc.clone(),
            pool: pool.clone(),
            endpoint,
            body_max,
        });
        router = router.route(endpoint.http, post(call).with_state(gateway));
    }
    router
}

/// A message name with etcd's package where none is given.
fn qualified(name: &str) -> String {
    if name.contains('.') {
        name.to_string()
    } else {
        format!("etcdserverpb.{name}")
    }
}

impl Gateway {
    /// JSON (`{}` when empty) to the request's protobuf bytes.
    fn request_bytes(&self, json: &[u8]) -> Result<Bytes, Status> {
        let name = qualified(self.endpoint.request);
        let descriptor = self
            .pool
            .get_message_by_name(&name)
            .ok_or_else(|| Status::internal(format!("no descriptor for {name}")))?;
        let json = if json.iter().all(u8::is_ascii_whitespace) {
            &b"{}"[..]
        } else {
            json
        };
        let mut input = serde_json::Deserializer::from_slice(json);
        let message = DynamicMessage::deserialize_with_options(
            descriptor,
            &mut input,
            &DeserializeOptions::new().deny_unknown_fields(false),
        )
        .and_then(|m| input.end().map(|()| m))
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
        Ok(message.encode_to_vec().into())
    }

    /// A response's protobuf bytes to JSON, named and shaped as etcd's gateway prints.
    fn response_json(&self, bytes: Bytes) -> Result<String, Status> {
        let name = qualified(self.endpoint.response);
        let descriptor = self
            .pool
            .get_message_by_name(&name)
            .ok_or_else(|| Status::internal(format!("no descriptor for {name}")))?;
        let message = DynamicMessage::decode(descriptor, bytes)
            .map_err(|e| Status::internal(e.to_string()))?;
        let mut out = Vec::new();
        let mut serializer = serde_json::Serializer::new(&mut out);
        message
            .serialize_with_options(
                &mut serializer,
                &SerializeOptions::new()
                    .use_proto_field_name(true)
                    .skip_default_fields(true),
            )
            .map_err(|e| Status::internal(e.to_string()))?;
        String::from_utf8(out).map_err(|e| Status::internal(e.to_string()))
    }

    /// A gRPC request carrying the caller's token (the gateway's `Authorization`).
    fn grpc_request<T>(&self, message: T, headers: &HeaderMap) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(token) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| tonic::metadata::MetadataValue::try_from(v.as_bytes()).ok())
        {
            request.metadata_mut().insert("authorization", token);
        }
        request
    }
}

async fn call(State(gateway): State<Arc<Gateway>>, request: Request) -> Response {
    let headers = request.headers().clone();
    let body = match axum::body::to_bytes(request.into_body(), gateway.body_max).await {
        Ok(body) => body,
        Err(_) => {
            return error(&Status::invalid_argument(
                "etcdserver: request is too large",
            ))
        }
    };
    if gateway.endpoint.streams {
        return stream_call(gateway, &headers, &body).await;
    }
    let message = match gateway.request_bytes(&body) {
        Ok(message) => message,
        Err(status) => return error(&status),
    };
    let mut grpc = tonic::client::Grpc::new(gateway.grpc.clone());
    let path = PathAndQuery::from_static(gateway.endpoint.grpc);
    let request = gateway.grpc_request(message, &headers);
    let answered = match grpc.ready().await {
        Ok(()) => grpc.unary(request, path, RawCodec).await,
        Err(e) => Err(Status::unavailable(e.to_string())),
    };
    match answered.and_then(|r| gateway.response_json(r.into_inner())) {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(status) => error(&status),
    }
}

/// A streaming call: every JSON object of the body is one request message, and the
/// body's end half-closes the call, as grpc-gateway does (a watch goes on, a keep-alive
/// ends); every response message is one line.
async fn stream_call(gateway: Arc<Gateway>, headers: &HeaderMap, body: &[u8]) -> Response {
    let mut messages = Vec::new();
    let objects = serde_json::Deserializer::from_slice(body).into_iter::<serde_json::Value>();
    for object in objects {
        let encoded = object
            .map_err(|e| Status::invalid_argument(e.to_string()))
            .and_then(|value| gateway.request_bytes(value.to_string().as_bytes()));
        match encoded {
            Ok(message) => messages.push(message),
            Err(status) => return stream_response(futures::stream::iter([stream_error(&status)])),
        }
    }
    if messages.is_empty() {
        messages.push(Bytes::new());
    }
    let outgoing = futures::stream::iter(messages);
    let mut grpc = tonic::client::Grpc::new(gateway.grpc.clone());
    let path = PathAndQuery::from_static(gateway.endpoint.grpc);
    let request = gateway.grpc_request(outgoing, headers);
    let opened = match grpc.ready().await {
        Ok(()) => grpc.streaming(request, path, RawCodec).await,
        Err(e) => Err(Status::unavailable(e.to_string())),
    };
    let incoming = match opened {
        Ok(response) => response.into_inner(),
        Err(status) => return stream_response(futures::stream::iter([stream_error(&status)])),
    };
    let lines = incoming
        .map(
            move |message| match message.and_then(|m| gateway.response_json(m)) {
                Ok(json) => Ok(format!("{{\"result\":{json}}}\n")),
                Err(status) => Err(stream_error(&status)),
            },
        )
        // The first error is the last line.
        .scan(false, |ended, line| {
            if *ended {
                return futures::future::ready(None);
            }
            *ended = line.is_err();
            futures::future::ready(Some(line.unwrap_or_else(|e| e)))
        });
    stream_response(lines)
}

fn stream_response(lines: impl Stream<Item = String> + Send + 'static) -> Response {
    let body = Body::from_stream(lines.map(Ok::<_, std::convert::Infallible>));
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// grpc-gateway's HTTP status for a gRPC code.
fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::REQUEST_TIMEOUT,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// etcd's gateway error body for a unary call, its fields in etcd's order.
fn error(status: &Status) -> Response {
    let message = serde_json::Value::from(status.message());
    let body = format!(
        r#"{{"error":{message},"code":{},"message":{message}}}"#,
        status.code() as i32
    );
    (
        http_status(status.code()),
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// etcd's gateway error line for a stream.
fn stream_error(status: &Status) -> String {
    let http = http_status(status.code());
    let body = serde_json::json!({
        "error": {
            "grpc_code": status.code() as i32,
            "http_code": http.as_u16(),
            "message": status.message(),
            "http_status": http.canonical_reason().unwrap_or_default(),
        }
    });
    format!("{body}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_endpoint_names_messages_the_descriptors_hold() {
        let pool = DescriptorPool::decode(ballast_proto::GATEWAY_DESCRIPTORS).unwrap();
        for endpoint in ENDPOINTS {
            for name in [endpoint.request, endpoint.response] {
                assert!(
                    pool.get_message_by_name(&qualified(name)).is_some(),
                    "{}: {name}",
                    endpoint.http
                );
            }
        }
    }

    #[test]
    fn fields_carry_etcds_names() {
        let pool = DescriptorPool::decode(ballast_proto::GATEWAY_DESCRIPTORS).unwrap();
        let status = pool
            .get_message_by_name("etcdserverpb.StatusResponse")
            .unwrap();
        assert!(status.get_field_by_name("dbSize").is_some());
        let header = pool
            .get_message_by_name("etcdserverpb.ResponseHeader")
            .unwrap();
        assert!(header.get_field_by_name("cluster_id").is_some());
        let grant = pool
            .get_message_by_name("etcdserverpb.LeaseGrantResponse")
            .unwrap();
        assert!(grant.get_field_by_name("ID").is_some());
    }
}
