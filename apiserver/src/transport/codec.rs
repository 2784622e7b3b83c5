//! Bodies in and out: JSON and YAML requests (protobuf where kubectl's typed commands
//! send it), and answers in the form the client accepts (JSON, YAML, or a Table).

use std::collections::HashMap;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use serde_json::Value;

use super::Body;
use crate::status::{ApiError, ApiResult};
use crate::table::Include;

/// The largest request body (kube-apiserver's `MaxRequestBodyBytes`, 3 MiB).
pub const REQUEST_BODY_BYTES_MAX: usize = 3 * 1024 * 1024;

/// The content type of aggregated discovery, as kubectl checks it.
pub const AGGREGATED_DISCOVERY: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// The decoded query string.
#[derive(Debug, Clone, Default)]
pub struct Query(HashMap<String, String>);

impl Query {
    /// Parses `a=b&c=d` (percent-decoded; `+` is a space).
    pub fn parse(query: Option<&str>) -> Query {
        let mut map = HashMap::new();
        for pair in query
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            map.insert(decode(k), decode(v));
        }
        Query(map)
    }

    /// One parameter.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// A boolean parameter (`true`, `1`).
    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }

    /// An integer parameter; a malformed one is a 400.
    pub fn int(&self, key: &str) -> ApiResult<Option<i64>> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| ApiError::bad_request(format!("invalid value for {key}: {v:?}"))),
        }
    }
}

/// How an answer is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// application/json.
    Json,
    /// application/yaml.
    Yaml,
    /// A `meta.k8s.io/v1 Table` (for gets, lists and watches).
    Table(Include),
}

impl Output {
    /// What the Accept header asks for.
    pub fn negotiate(headers: &HeaderMap, query: &Query) -> Output {
        let accept = headers
            .get(http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let first = accept
            .split(',')
            .map(str::trim)
            .find(|a| !a.is_empty())
            .unwrap_or("");
        if first.contains("as=Table") && first.contains("g=meta.k8s.io") {
            Output::Table(Include::parse(query.get("includeObject")))
        } else if first.starts_with("application/yaml") {
            Output::Yaml
        } else {
            Output::Json
        }
    }
}

/// The body's media type, without parameters; JSON when the client sent none (the
/// Python client sends bodies without a Content-Type).
pub fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "application/json".into())
}

/// Reads the whole body, refusing one past the limit.
pub async fn read_body(body: hyper::body::Incoming) -> ApiResult<Bytes> {
    let limited = http_body_util::Limited::new(body, REQUEST_BODY_BYTES_MAX);
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => Err(ApiError::new(
            413,
            "RequestEntityTooLarge",
            "the server has received too large of a request body",
        )),
        Err(error) => Err(ApiError::bad_request(format!(
            "reading the request body: {error}"
        ))),
    }
}

/// Decodes an object body: JSON or YAML.
pub fn decode(media: &str, body: &[u8]) -> ApiResult<Value> {
    let value: Value = match media {
        "application/json" | "*/*" => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding request body: {e}")))?,
        "application/yaml" | "application/x-yaml" | "text/yaml" => serde_yaml::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML request body: {e}")))?,
        "application/vnd.kubernetes.protobuf" => super::protobuf::decode(body)?,
        other => return Err(ApiError::unsupported_media_type(other)),
    };
    if !value.is_object() {
        return Err(ApiError::bad_request("the request body must be an object"));
    }
    Ok(value)
}

/// A whole response.
pub fn respond(code: u16, value: &Value, output: Output) -> Response<Body> {
    let (media, bytes) = match output {
        Output::Yaml => (
            "application/yaml",
            serde_yaml::to_string(value)
                .unwrap_or_default()
                .into_bytes(),
        ),
        _ => (
            "application/json",
            serde_json::to_vec(value).unwrap_or_default(),
        ),
    };
    bytes_response(code, media, Bytes::from(bytes))
}

/// A response of raw bytes.
pub fn bytes_response(code: u16, media: &str, bytes: Bytes) -> Response<Body> {
    let mut response = Response::new(Full::new(bytes).boxed_unsync());
    *response.status_mut() =
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        CONTENT_TYPE,
        http::HeaderValue::from_str(media).expect("a media type is a header value"),
    );
    response.headers_mut().insert(
        CACHE_CONTROL,
        http::HeaderValue::from_static("no-cache, private"),
    );
    response
}

/// A `Status` answer.
pub fn error(error: &ApiError, output: Output) -> Response<Body> {
    let output = if output == Output::Yaml {
        Output::Yaml
    } else {
        Output::Json
    };
    respond(error.code, &error.to_status(), output)
}
