//! Generates the etcd v3 and internal protocol code with tonic/prost.
//! `protox` parses the .proto files in Rust, so no system `protoc` is needed.
//!
//! Also writes the descriptors the JSON gateway transcodes with (`GATEWAY_DESCRIPTORS`):
//! etcd's gateway names each field as etcd's .proto spells it, and our copies spell the
//! camelCase ones (`dbSize`, `ID`) in snake case with a `json_name` saying etcd's. So in
//! those descriptors a field with an explicit `json_name` is renamed to it, and the
//! gateway prints proto field names.

use std::collections::HashMap;
use std::path::PathBuf;

use prost::Message;
use prost_types::DescriptorProto;

const FILES: [&str; 7] = [
    "etcd/kv.proto",
    "etcd/auth.proto",
    "etcd/rpc.proto",
    "etcd/v3lock.proto",
    "etcd/v3election.proto",
    "ballast/internal.proto",
    "ballast/transport.proto",
];

/// (message path, field name) -> the `json_name` written in the source.
type ExplicitNames = HashMap<(String, String), String>;

fn collect_explicit(prefix: &str, messages: &[DescriptorProto], out: &mut ExplicitNames) {
    for message in messages {
        let path = format!("{prefix}.{}", message.name());
        for field in &message.field {
            if let Some(json) = &field.json_name {
                out.insert((path.clone(), field.name().to_string()), json.clone());
            }
        }
        collect_explicit(&path, &message.nested_type, out);
    }
}

fn rename(prefix: &str, messages: &mut [DescriptorProto], explicit: &ExplicitNames) {
    for message in messages {
        let path = format!("{prefix}.{}", message.name());
        for field in &mut message.field {
            if let Some(json) = explicit.get(&(path.clone(), field.name().to_string())) {
                field.name = Some(json.clone());
                field.json_name = Some(json.clone());
            }
        }
        rename(&path, &mut message.nested_type, explicit);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let fds = protox::compile(FILES, ["etcd", "ballast"])?;

    let mut explicit = ExplicitNames::new();
    for file in FILES {
        let source = std::fs::read_to_string(file)?;
        let parsed = protox_parse::parse(file, &source)?;
        collect_explicit(
            &format!(".{}", parsed.package()),
            &parsed.message_type,
            &mut explicit,
        );
    }
    let mut gateway = fds.clone();
    for file in &mut gateway.file {
        let package = format!(".{}", file.package());
        rename(&package, &mut file.message_type, &explicit);
    }
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("gateway_descriptors.bin"), gateway.encode_to_vec())?;

    tonic_prost_build::configure()
        // Keys and values as `Bytes`: decoding slices the request buffer instead of copying.
        .bytes(".")
        // Services we do not serve yet answer Unimplemented instead of failing to build.
        .generate_default_stubs(true)
        .compile_fds(fds)?;
    for file in FILES {
        println!("cargo:rerun-if-changed={file}");
    }
    Ok(())
}
