//! Protobuf request bodies (`application/vnd.kubernetes.protobuf`), which client-go's
//! typed clients send since 1.31: the `k8s\0` envelope (a `runtime.Unknown` holding the
//! type and the raw message), decoded into the JSON object the rest of the server works
//! on, by the shapes in [`schema`]. A field the schema does not know is refused, never
//! dropped.

mod schema;

use std::collections::HashMap;
use std::sync::OnceLock;

use base64::Engine as _;
use bytes::Buf as _;
use prost::encoding::{decode_key, decode_varint, WireType};
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use crate::status::{ApiError, ApiResult};

/// The envelope's magic bytes.
const MAGIC: &[u8] = b"k8s\0";
/// Nesting deeper than this is refused (the kinds here nest about ten deep; none is
/// recursive, so this guards the schema more than the input).
const DEPTH_MAX: usize = 32;

#[derive(Debug, Clone)]
enum Ty {
    Str,
    Int,
    Bool,
    Bytes,
    Time,
    Quantity,
    IntOrString,
    Message(&'static str),
}

#[derive(Debug, Clone)]
enum Shape {
    One(Ty),
    Repeated(Ty),
    Map(Ty),
}

#[derive(Debug, Clone)]
struct Field {
    name: &'static str,
    shape: Shape,
    keep_zero: bool,
}

type Schema = HashMap<&'static str, HashMap<u32, Field>>;

fn ty(text: &'static str) -> Ty {
    match text {
        "s" => Ty::Str,
        "i" => Ty::Int,
        "b" => Ty::Bool,
        "y" => Ty::Bytes,
        "t" => Ty::Time,
        "q" => Ty::Quantity,
        "x" => Ty::IntOrString,
        message => Ty::Message(message),
    }
}

fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let mut messages = HashMap::new();
        for line in schema::SCHEMA
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
        {
            let (name, fields) = line.split_once(':').expect("`Name: fields`");
            let mut table = HashMap::new();
            for field in fields.split(',').map(str::trim).filter(|f| !f.is_empty()) {
                let parts: Vec<&'static str> = field.split_whitespace().collect();
                let [number, json_name, kind] = parts[..] else {
                    panic!("bad schema field {field:?} in {name}");
                };
                let keep_zero = kind.ends_with('!');
                let kind = kind.trim_end_matches('!');
                let shape = if let Some(inner) = kind.strip_prefix("[]") {
                    Shape::Repeated(ty(inner))
                } else if let Some(inner) = kind.strip_prefix("{}") {
                    Shape::Map(ty(inner))
                } else {
                    Shape::One(ty(kind))
                };
                table.insert(
                    number.parse().expect("a field number"),
                    Field {
                        name: json_name,
                        shape,
                        keep_zero,
                    },
                );
            }
            messages.insert(name.trim(), table);
        }
        messages
    })
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(format!("error decoding protobuf body: {}", message.into()))
}

/// One field as it came off the wire.
enum Raw<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

/// The fields of one message, in wire order.
fn fields(mut buf: &[u8]) -> ApiResult<Vec<(u32, Raw<'_>)>> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let (number, wire) = decode_key(&mut buf).map_err(|e| bad(e.to_string()))?;
        let raw = match wire {
            WireType::Varint => {
                Raw::Varint(decode_varint(&mut buf).map_err(|e| bad(e.to_string()))?)
            }
            WireType::LengthDelimited => {
                let len = decode_varint(&mut buf).map_err(|e| bad(e.to_string()))? as usize;
                if len > buf.len() {
                    return Err(bad("a field runs past the end of the body"));
                }
                let (field, rest) = buf.split_at(len);
                buf = rest;
                Raw::Bytes(field)
            }
            WireType::SixtyFourBit if buf.len() >= 8 => Raw::Varint(buf.get_u64_le()),
            WireType::ThirtyTwoBit if buf.len() >= 4 => Raw::Varint(u64::from(buf.get_u32_le())),
            other => return Err(bad(format!("unexpected wire type {other:?}"))),
        };
        out.push((number, raw));
    }
    Ok(out)
}

fn text(raw: &Raw<'_>) -> ApiResult<String> {
    match raw {
        Raw::Bytes(b) => String::from_utf8(b.to_vec()).map_err(|_| bad("a string is not UTF-8")),
        Raw::Varint(_) => Err(bad("a string field holds a number")),
    }
}

fn number(raw: &Raw<'_>) -> ApiResult<i64> {
    match raw {
        // int32 and int64 negatives are ten-byte varints of the two's complement.
        Raw::Varint(v) => Ok(*v as i64),
        Raw::Bytes(_) => Err(bad("a number field holds bytes")),
    }
}

fn scalar(ty: &Ty, raw: &Raw<'_>, depth: usize) -> ApiResult<Value> {
    Ok(match ty {
        Ty::Str => json!(text(raw)?),
        Ty::Int => json!(number(raw)?),
        Ty::Bool => json!(number(raw)? != 0),
        Ty::Bytes => match raw {
            Raw::Bytes(b) => json!(base64::engine::general_purpose::STANDARD.encode(b)),
            Raw::Varint(_) => return Err(bad("a bytes field holds a number")),
        },
        Ty::Time => {
            let (mut seconds, mut nanos) = (0i64, 0i64);
            for (n, f) in fields(bytes_of(raw)?)? {
                match n {
                    1 => seconds = number(&f)?,
                    2 => nanos = number(&f)?,
                    _ => return Err(bad("unknown field of a Time")),
                }
            }
            if seconds == 0 && nanos == 0 {
                Value::Null
            } else {
                let at = OffsetDateTime::from_unix_timestamp(seconds)
                    .map_err(|_| bad("a time out of range"))?;
                json!(at
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default())
            }
        }
        Ty::Quantity => {
            let mut quantity = String::new();
            for (n, f) in fields(bytes_of(raw)?)? {
                match n {
                    1 => quantity = text(&f)?,
                    _ => return Err(bad("unknown field of a Quantity")),
                }
            }
            json!(quantity)
        }
        Ty::IntOrString => {
            let (mut kind, mut int, mut string) = (0, 0, String::new());
            for (n, f) in fields(bytes_of(raw)?)? {
                match n {
                    1 => kind = number(&f)?,
                    2 => int = number(&f)? as i32,
                    3 => string = text(&f)?,
                    _ => return Err(bad("unknown field of an IntOrString")),
                }
            }
            if kind == 1 {
                json!(string)
            } else {
                json!(int)
            }
        }
        Ty::Message(name) => message(name, bytes_of(raw)?, depth + 1)?,
    })
}

fn bytes_of<'a>(raw: &Raw<'a>) -> ApiResult<&'a [u8]> {
    match raw {
        Raw::Bytes(b) => Ok(b),
        Raw::Varint(_) => Err(bad("a message field holds a number")),
    }
}

/// Go's `omitempty`: zero scalars and empty strings are left out unless the field keeps
/// zeros; messages stay, even empty (Go writes empty structs).
fn is_zero(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Number(n) => n.as_i64() == Some(0),
        Value::Bool(b) => !b,
        _ => false,
    }
}

fn message(name: &'static str, bytes: &[u8], depth: usize) -> ApiResult<Value> {
    if depth > DEPTH_MAX {
        return Err(bad("nested too deep"));
    }
    let table = schema()
        .get(name)
        .ok_or_else(|| bad(format!("no shape for {name}")))?;
    let mut out = Map::new();
    for (number, raw) in fields(bytes)? {
        let field = table.get(&number).ok_or_else(|| {
            ApiError::new(
                415,
                "UnsupportedMediaType",
                format!("field {number} of {name} is not decoded from protobuf here; send the object as JSON"),
            )
        })?;
        match &field.shape {
            Shape::One(ty) => {
                let value = scalar(ty, &raw, depth)?;
                if field.keep_zero || !is_zero(&value) {
                    out.insert(field.name.into(), value);
                }
            }
            Shape::Repeated(ty) => {
                let value = scalar(ty, &raw, depth)?;
                out.entry(field.name)
                    .or_insert_with(|| json!([]))
                    .as_array_mut()
                    .expect("a list")
                    .push(value);
            }
            Shape::Map(ty) => {
                let (mut key, mut value) = (String::new(), None);
                for (n, f) in fields(bytes_of(&raw)?)? {
                    match n {
                        1 => key = text(&f)?,
                        2 => value = Some(scalar(ty, &f, depth)?),
                        _ => return Err(bad("a map entry with a third field")),
                    }
                }
                let value = value.unwrap_or_else(|| match ty {
                    Ty::Str | Ty::Bytes | Ty::Quantity => json!(""),
                    _ => Value::Null,
                });
                out.entry(field.name)
                    .or_insert_with(|| json!({}))
                    .as_object_mut()
                    .expect("a map")
                    .insert(key, value);
            }
        }
    }
    Ok(Value::Object(out))
}

/// Decodes an enveloped protobuf body into a JSON object with its apiVersion and kind.
pub fn decode(body: &[u8]) -> ApiResult<Value> {
    let inner = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad("the body does not start with the k8s envelope"))?;
    let envelope = message("Unknown", inner, 0)?;
    if envelope.get("contentEncoding").is_some_and(|e| !is_zero(e)) {
        return Err(bad("encoded (compressed) bodies are not supported"));
    }
    let api_version = envelope
        .pointer("/typeMeta/apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = envelope
        .pointer("/typeMeta/kind")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !schema::KINDS.contains(&(api_version, kind)) {
        return Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!("{api_version} {kind} is not decoded from protobuf here; send it as JSON"),
        ));
    }
    let raw = envelope
        .get("raw")
        .and_then(Value::as_str)
        .map(|b| base64::engine::general_purpose::STANDARD.decode(b))
        .transpose()
        .map_err(|_| bad("the raw object"))?
        .unwrap_or_default();
    let name: &'static str = schema::KINDS
        .iter()
        .find(|(_, k)| *k == kind)
        .map(|(_, k)| *k)
        .expect("listed");
    let mut object = message(name, &raw, 1)?;
    object["apiVersion"] = json!(api_version);
    object["kind"] = json!(kind);
    Ok(object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::encoding::{encode_key, encode_varint};

    fn bytes_field(number: u32, bytes: &[u8], out: &mut Vec<u8>) {
        encode_key(number, WireType::LengthDelimited, out);
        encode_varint(bytes.len() as u64, out);
        out.extend_from_slice(bytes);
    }

    fn varint_field(number: u32, value: u64, out: &mut Vec<u8>) {
        encode_key(number, WireType::Varint, out);
        encode_varint(value, out);
    }

    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let mut type_meta = Vec::new();
        bytes_field(1, api_version.as_bytes(), &mut type_meta);
        bytes_field(2, kind.as_bytes(), &mut type_meta);
        let mut unknown = Vec::new();
        bytes_field(1, &type_meta, &mut unknown);
        bytes_field(2, raw, &mut unknown);
        bytes_field(3, b"", &mut unknown);
        bytes_field(4, b"", &mut unknown);
        [MAGIC, &unknown].concat()
    }

    fn entry(key: &str, value: &[u8]) -> Vec<u8> {
        let mut e = Vec::new();
        bytes_field(1, key.as_bytes(), &mut e);
        bytes_field(2, value, &mut e);
        e
    }

    #[test]
    fn a_secret_as_kubectl_sends_it() {
        // metadata: name, and the empty fields gogo writes anyway.
        let mut meta = Vec::new();
        bytes_field(1, b"creds", &mut meta);
        bytes_field(2, b"", &mut meta);
        varint_field(7, 0, &mut meta);
        bytes_field(8, b"", &mut meta);
        bytes_field(11, &entry("app", b"web"), &mut meta);
        let mut secret = Vec::new();
        bytes_field(1, &meta, &mut secret);
        bytes_field(2, &entry("password", b"s3cr\xffet"), &mut secret);
        bytes_field(3, b"Opaque", &mut secret);
        varint_field(5, 0, &mut secret);
        let object = decode(&envelope("v1", "Secret", &secret)).unwrap();
        assert_eq!(
            object,
            json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": { "name": "creds", "labels": { "app": "web" } },
                "data": { "password": base64::engine::general_purpose::STANDARD.encode(b"s3cr\xffet") },
                "type": "Opaque",
                "immutable": false,
            })
        );
    }

    #[test]
    fn deployments_keep_pointer_zeros_and_int_or_strings() {
        let mut surge = Vec::new();
        varint_field(1, 1, &mut surge);
        bytes_field(3, b"25%", &mut surge);
        let mut rolling = Vec::new();
        bytes_field(2, &surge, &mut rolling);
        let mut strategy = Vec::new();
        bytes_field(2, &rolling, &mut strategy);
        let mut spec = Vec::new();
        varint_field(1, 0, &mut spec);
        bytes_field(4, &strategy, &mut spec);
        let mut deployment = Vec::new();
        bytes_field(2, &spec, &mut deployment);
        bytes_field(3, b"", &mut deployment);
        let object = decode(&envelope("apps/v1", "Deployment", &deployment)).unwrap();
        assert_eq!(object["spec"]["replicas"], 0);
        assert_eq!(
            object["spec"]["strategy"]["rollingUpdate"]["maxSurge"],
            "25%"
        );
        assert_eq!(object["status"], json!({}));
    }

    #[test]
    fn unknown_fields_and_kinds_and_garbage_are_refused() {
        let mut cm = Vec::new();
        bytes_field(9, b"x", &mut cm);
        assert_eq!(
            decode(&envelope("v1", "ConfigMap", &cm)).unwrap_err().code,
            415
        );
        assert_eq!(decode(&envelope("v1", "Pod", b"")).unwrap_err().code, 415);
        assert_eq!(decode(b"{}").unwrap_err().code, 400);
        assert_eq!(
            decode(&[MAGIC, &[0x0a, 0xff, 0xff, 0x03]].concat())
                .unwrap_err()
                .code,
            400
        );
    }
}
