//! `custos ropa`: the Art. 30 record of processing activities from a map.
//!
//! Exit codes: `0` written, `1` the map has errors (printed), `2` usage or
//! I/O error.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use custos_map::RopaFormat;

use super::map::{exit, print_diagnostics, read};

/// Arguments of `custos ropa`.
#[derive(Debug, clap::Args)]
pub(crate) struct RopaArgs {
    /// The map file (YAML).
    #[arg(long)]
    map: PathBuf,
    /// html (printable page with a data-flow diagram), csv, json or md.
    #[arg(long, default_value = "html")]
    format: RopaFormat,
    /// Write here instead of standard output.
    #[arg(short, long)]
    output: Option<PathBuf>,
}

/// Run `custos ropa`, exiting with the documented code.
pub(crate) fn run(args: RopaArgs) -> anyhow::Result<()> {
    let code = match run_inner(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    };
    if code != ExitCode::SUCCESS {
        exit(code);
    }
    Ok(())
}

fn run_inner(args: RopaArgs) -> anyhow::Result<ExitCode> {
    let src = read(&args.map)?;
    let map = match custos_map::load_str(&src, &args.map.display().to_string()) {
        Ok((map, warnings)) => {
            print_diagnostics(&warnings);
            map
        }
        Err(diags) => {
            print_diagnostics(&diags);
            eprintln!(
                "{}: the map has errors; no record written",
                args.map.display()
            );
            return Ok(ExitCode::from(1));
        }
    };
    let text = custos_map::ropa::render(
        &map,
        custos_map::ropa::Safeguards::this_version(),
        args.format,
    );
    match args.output {
        Some(p) => {
            std::fs::write(&p, text).with_context(|| format!("cannot write {}", p.display()))?
        }
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}
