//! The `custos` binary.

mod cli;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "custos", version, about = "Self-hosted data-protection engine")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate, show and import data maps.
    Map(cli::map::MapArgs),
    /// Generate the Art. 30 record of processing activities.
    Ropa(cli::ropa::RopaArgs),
    /// Redact personal data from text or logs.
    Scrub(cli::scrub::ScrubArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Map(args) => cli::map::run(args),
        Command::Ropa(args) => cli::ropa::run(args),
        Command::Scrub(args) => cli::scrub::run(args),
    }
}
