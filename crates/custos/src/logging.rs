//! Logging of the binary: `tracing` to stderr, level from `CUSTOS_LOG`
//! (default `info`).

use tracing_subscriber::EnvFilter;

pub(crate) fn init() {
    let filter =
        EnvFilter::try_from_env("CUSTOS_LOG").unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
