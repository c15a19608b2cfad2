//! `custos map`: check, show and import data maps.
//!
//! Exit codes, for scripts: `0` the map is valid (warnings allowed unless
//! `--strict`), `1` the map has errors (or warnings with `--strict`), `2`
//! usage or I/O error (unreadable file, bad arguments — clap also exits 2).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use custos_map::{Diagnostic, SystemKind};

mod live;

/// Arguments of `custos map`.
#[derive(Debug, clap::Args)]
pub(crate) struct MapArgs {
    #[command(subcommand)]
    command: MapCommand,
}

#[derive(Debug, clap::Subcommand)]
enum MapCommand {
    /// Validate a map file; prints every error and warning with file:line:column.
    Check {
        /// The map file (YAML).
        file: PathBuf,
        /// Fail (exit 1) on warnings too.
        #[arg(long)]
        strict: bool,
        /// Output format of the diagnostics.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Also check the map against the live databases of its SQL
        /// systems, read-only: tables, columns, keys, the foreign keys it
        /// does not declare, erasures the database would refuse, and every
        /// lookup that would read a whole table, with the index to add.
        /// Connection settings come from the variables the map names.
        #[arg(long)]
        connect: bool,
    },
    /// Print a readable summary of a valid map.
    Show {
        /// The map file (YAML).
        file: PathBuf,
        /// `text` for people, `json` for the map itself.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Convert Fides dataset YAML files into a custos map.
    ImportFides {
        /// Fides dataset files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Write the map here instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// System kind of the imported datasets (Fides does not record it).
        #[arg(long, default_value = "postgres", value_parser = parse_kind)]
        kind: SystemKind,
    },
    /// List the fideslang data categories accepted in `category:`.
    Categories,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Text,
    Json,
}

fn parse_kind(s: &str) -> Result<SystemKind, String> {
    SystemKind::ALL
        .into_iter()
        .find(|k| k.key() == s)
        .ok_or_else(|| {
            let all: Vec<&str> = SystemKind::ALL.iter().map(|k| k.key()).collect();
            format!("unknown kind {s:?}; use one of {}", all.join(", "))
        })
}

/// Run `custos map`, exiting with the documented code.
pub(crate) fn run(args: MapArgs) -> anyhow::Result<()> {
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

/// Leave with `code`; `main` only knows success and failure.
pub(crate) fn exit(code: ExitCode) -> ! {
    let n = if code == ExitCode::from(1) { 1 } else { 2 };
    std::process::exit(n)
}

pub(crate) fn read(file: &PathBuf) -> anyhow::Result<String> {
    std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))
}

pub(crate) fn print_diagnostics(diags: &[Diagnostic]) {
    for d in diags {
        eprintln!("{d}");
    }
}

fn counts(diags: &[Diagnostic]) -> (usize, usize) {
    let errors = diags.iter().filter(|d| d.is_error()).count();
    (errors, diags.len() - errors)
}

fn run_inner(args: MapArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        MapCommand::Check {
            file,
            strict,
            format,
            connect,
        } => {
            let src = read(&file)?;
            let name = file.display().to_string();
            let mut diags = custos_map::check_str(&src, &name);
            if connect && !diags.iter().any(Diagnostic::is_error) {
                if let Ok((map, index)) = custos_map::parse::parse(&src, &name) {
                    diags.extend(live::check(&map, &index)?);
                }
            } else if connect {
                eprintln!("{name}: not checked against the databases: fix the map's errors first");
            }
            let (errors, warnings) = counts(&diags);
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&diags)?),
                Format::Text => {
                    for d in &diags {
                        println!("{d}");
                    }
                    println!(
                        "{}: {errors} error(s), {warnings} warning(s)",
                        file.display()
                    );
                }
            }
            Ok(if errors > 0 || (strict && warnings > 0) {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        MapCommand::Show { file, format } => {
            let src = read(&file)?;
            match custos_map::load_str(&src, &file.display().to_string()) {
                Ok((map, warnings)) => {
                    print_diagnostics(&warnings);
                    match format {
                        Format::Json => println!("{}", serde_json::to_string_pretty(&map)?),
                        Format::Text => print!("{}", custos_map::summary::summary(&map)),
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(diags) => {
                    print_diagnostics(&diags);
                    eprintln!(
                        "{}: the map has errors; run `custos map check` for details",
                        file.display()
                    );
                    Ok(ExitCode::from(1))
                }
            }
        }
        MapCommand::ImportFides {
            files,
            output,
            kind,
        } => {
            let texts: Vec<(String, String)> = files
                .iter()
                .map(|f| Ok((f.display().to_string(), read(f)?)))
                .collect::<anyhow::Result<_>>()?;
            let refs: Vec<(&str, &str)> = texts
                .iter()
                .map(|(n, t)| (n.as_str(), t.as_str()))
                .collect();
            match custos_map::fides::import(&refs, kind) {
                Ok(out) => {
                    let mut text = String::from("# Imported from Fides dataset YAML by `custos map import-fides`.\n# Not carried over or guessed:\n");
                    for n in &out.notes {
                        text.push_str(&format!("#   - {n}\n"));
                        eprintln!("note: {n}");
                    }
                    text.push_str(&custos_map::yaml::to_yaml(&out.map));
                    match output {
                        Some(p) => std::fs::write(&p, text)
                            .with_context(|| format!("cannot write {}", p.display()))?,
                        None => print!("{text}"),
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(diags) => {
                    print_diagnostics(&diags);
                    Ok(ExitCode::from(1))
                }
            }
        }
        MapCommand::Categories => {
            for c in custos_map::taxonomy::data_categories() {
                println!("{c}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
