//! Generates the etcd v3 and internal protocol code with tonic/prost.
//! `protox` parses the .proto files in Rust, so no system `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "etcd/kv.proto",
        "etcd/auth.proto",
        "etcd/rpc.proto",
        "etcd/v3lock.proto",
        "etcd/v3election.proto",
        "ballast/internal.proto",
        "ballast/transport.proto",
    ];
    let fds = protox::compile(files, ["etcd", "ballast"])?;
    tonic_prost_build::configure()
        // Keys and values as `Bytes`: decoding slices the request buffer instead of copying.
        .bytes(".")
        // Services we do not serve yet answer Unimplemented instead of failing to build.
        .generate_default_stubs(true)
        .compile_fds(fds)?;
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    Ok(())
}
