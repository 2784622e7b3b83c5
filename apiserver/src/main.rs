//! The `ballast-apiserver` binary.

use clap::Parser as _;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let config = ballast_apiserver::Config::parse();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("ballast-apiserver: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(ballast_apiserver::run(config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ballast-apiserver: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
