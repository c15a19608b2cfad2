//! `custos-bench`: benchmarks of custos that anyone can run and that print a
//! Markdown report.
//!
//! ```sh
//! cargo run --release -p custos-bench -- vault          # full (1M subjects)
//! cargo run --release -p custos-bench -- vault --quick  # quick (100k subjects)
//! cargo run --release -p custos-bench -- dsr            # requests on 6 × 1M rows
//! cargo run --release -p custos-bench -- dsr --quick    # 6 × 100k rows
//! cargo run --release -p custos-bench -- consent        # 1M consent events
//! cargo run --release -p custos-bench -- fides          # the Fides example, enlarged to 100k customers
//! ```
//!
//! See `bench/vault/README.md` for what each figure means.

mod consent;
mod dsr;
mod fides;
mod load;
mod util;
mod vault;

/// The allocator of the `custos` binary, whose server this measures.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;

use anyhow::{bail, Context};

const USAGE: &str = "usage: custos-bench vault|dsr|consent|fides [--quick] [--out <report.md>]

  vault     the vault over HTTP on the embedded SQLite store: record writes/s,
            reveals/s, blind-index lookup latency and speedup, erasure time,
            encryption cost
  dsr       data-subject requests end to end: access and erasure across an
            application database of 6 tables x 1M rows, 100 files and a
            processor; 1,000 concurrent requests with peak memory
  consent   the consent ledger: bulk import events/s, the check over HTTP
            against a bare handler (closed and open loop), suppression
            lists of 1M subjects (printed only; CONSENT_BENCH_* variables
            select parts, see crates/custos-bench/src/consent.rs)
  fides     access requests on the Fides example database (from
            ../shared/peers/fides beside the checkout) on PostgreSQL, as
            it is and enlarged to 100,000 customers
  --quick   100,000 subjects instead of 1,000,000 and 2 s rounds (< 2 min)
  --out     where to write the report (default: bench/out/<name>-report.md)";

fn default_out(suite: &str) -> PathBuf {
    PathBuf::from(format!(
        "{}/../../bench/out/{suite}-report.md",
        env!("CARGO_MANIFEST_DIR")
    ))
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut suite = None;
    let mut quick = false;
    let mut out = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--out" => {
                out = Some(PathBuf::from(args.next().context("--out needs a path")?));
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            s if !s.starts_with('-') && suite.is_none() => suite = Some(s.to_owned()),
            other => bail!("unknown argument {other:?}\n\n{USAGE}"),
        }
    }
    let suite = match suite.as_deref() {
        Some(s @ ("vault" | "dsr" | "consent" | "fides")) => s.to_owned(),
        Some(other) => bail!("unknown benchmark {other:?}\n\n{USAGE}"),
        None => bail!("name a benchmark\n\n{USAGE}"),
    };
    let out = out.unwrap_or_else(|| default_out(&suite));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    if suite == "consent" {
        // Prints its own report as it goes (parts can run alone).
        rt.block_on(consent::run(quick));
        return Ok(());
    }
    let report = if suite == "dsr" {
        dsr::render(&rt.block_on(dsr::run(dsr::Plan::new(quick)))?, quick)
    } else if suite == "fides" {
        fides::render(&rt.block_on(fides::run(fides::Plan::new(quick)))?, quick)
    } else {
        vault::render(&rt.block_on(vault::run(vault::Plan::new(quick)))?, quick)
    };
    println!("{report}");
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&out, &report).with_context(|| format!("writing {}", out.display()))?;
    eprintln!("report written to {}", out.display());
    Ok(())
}
