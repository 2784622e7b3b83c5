//! `ballast`: parse the flags, set up logging, bind (or inherit) the listeners, run the
//! node until SIGINT or SIGTERM.

use ballast_server::config::LogLevel;
use ballast_server::{Config, Listeners};
use clap::Parser;
use tokio_util::sync::CancellationToken;
use tracing::level_filters::LevelFilter;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let config = Config::parse();
    let level = match config.log_level {
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Error | LogLevel::Panic | LogLevel::Fatal => LevelFilter::ERROR,
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // Flags that contradict each other are refused before any port is bound, as etcd
    // checks its configuration first: a taken port must not hide the real mistake.
    if let Err(err) = config.validate() {
        tracing::error!(%err, "invalid configuration");
        return std::process::ExitCode::FAILURE;
    }
    let runtime = match ballast_server::runtime::build() {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!(%err, "cannot start the async runtime");
            return std::process::ExitCode::FAILURE;
        }
    };
    // Bound before the node starts: a port that is taken fails the start at once.
    let listeners = match Listeners::from_env(&config) {
        Ok(listeners) => listeners,
        Err(err) => {
            tracing::error!(%err, "cannot listen");
            return std::process::ExitCode::FAILURE;
        }
    };
    let shutdown = CancellationToken::new();
    let result = runtime.block_on(async {
        tokio::spawn(stop_on_signal(shutdown.clone()));
        ballast_server::run(config, listeners, shutdown).await
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(%err, "ballast failed");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Cancels `shutdown` on the first SIGINT or SIGTERM.
async fn stop_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("received SIGTERM; shutting down"),
        _ = int.recv() => tracing::info!("received SIGINT; shutting down"),
    }
    shutdown.cancel();
}
