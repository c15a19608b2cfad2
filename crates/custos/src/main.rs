//! The `custos` binary.

mod cli;
mod logging;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc: the server and the map checker allocate many small objects;
/// it is measurably faster than the system allocator for both.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "custos", version, about = "Self-hosted data-protection engine")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log filter (tracing's `EnvFilter` syntax); log lines go to stderr
    /// through the scrubber.
    #[arg(long, env = "CUSTOS_LOG", default_value = logging::DEFAULT_FILTER, global = true)]
    log: String,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP server (embedded SQLite store unless told otherwise).
    Serve(Box<cli::serve::ServeArgs>),
    /// Run the server on a fresh store filled with a sample SaaS.
    Demo(cli::demo::DemoArgs),
    /// Verify the audit log.
    Audit(cli::audit::AuditArgs),
    /// Consent ledger: check, grant, withdraw, history, bulk import.
    Consent(cli::consent::ConsentArgs),
    /// Data-subject requests through a running server: create, plan, status, list, export.
    Dsr(cli::dsr::DsrArgs),
    /// Rotate root or tenant keys.
    Keys(cli::keys::KeysArgs),
    /// Bring a data store restored from an older copy back into service.
    Recover(cli::recover::RecoverArgs),
    /// Validate, show and import data maps.
    Map(cli::map::MapArgs),
    /// Generate the Art. 30 record of processing activities.
    Ropa(cli::ropa::RopaArgs),
    /// Redact personal data from text or logs.
    Scrub(cli::scrub::ScrubArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(&cli.log);
    let result = match cli.command {
        Command::Serve(args) => cli::serve::run(*args).map(|()| ExitCode::SUCCESS),
        Command::Demo(args) => cli::demo::run(args).map(|()| ExitCode::SUCCESS),
        Command::Audit(args) => cli::audit::run(args),
        Command::Consent(args) => cli::consent::run(args),
        Command::Dsr(args) => cli::dsr::run(args),
        Command::Keys(args) => cli::keys::run(args).map(|()| ExitCode::SUCCESS),
        Command::Recover(args) => cli::recover::run(args).map(|()| ExitCode::SUCCESS),
        Command::Map(args) => cli::map::run(args).map(|()| ExitCode::SUCCESS),
        Command::Ropa(args) => cli::ropa::run(args).map(|()| ExitCode::SUCCESS),
        Command::Scrub(args) => cli::scrub::run(args).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
