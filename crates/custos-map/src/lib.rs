//! The data map of custos (issue 3): one declarative file saying where every
//! piece of personal data lives and why, checked hard, and turned into the
//! records a regulator asks for.
//!
//! Everything later (requests, retention, scanning, anonymising) is planned
//! from a [`DataMap`], so this crate is part of the domain core: it parses,
//! validates and renders from `&str` to values and does no network I/O.
//! Reading a file happens only in the thin [`load`] helper. Invariant: no
//! result depends on the clock; the one clock read, in `check_str_timed`,
//! only times the phases of a check for the benchmark.
//!
//! Entry points:
//! - [`load_str`] — parse and validate map text; what the server and CLI call.
//! - [`ropa::render`] — the Art. 30 record in HTML, CSV, JSON or Markdown.
//! - [`fides::import`] — convert Fides dataset YAML into a map.
//! - [`yaml::to_yaml`] — write a map back as YAML.
//! - [`DEMO_MAP`] — the demo SaaS's map, valid and covering every system kind.

mod consent;
pub mod diagnostic;
pub mod duration;
pub mod fides;
pub mod html;
pub mod model;
pub mod parse;
pub mod ropa;
pub mod source;
mod suggest;
pub mod summary;
pub mod taxonomy;
mod tree;
pub mod validate;
pub mod yaml;

use std::path::Path;

pub use diagnostic::{Diagnostic, Position, Severity};
pub use duration::{Duration, DurationUnit};
pub use model::*;
pub use parse::SourceIndex;
pub use ropa::RopaFormat;
pub use source::{MapOrigin, MapSource, ReloadError};

/// The demo map (`examples/demo-map.yaml`): a small SaaS covering every
/// system kind, valid with zero errors, so that the demo's ROPA is complete.
pub const DEMO_MAP: &str = include_str!("../../../examples/demo-map.yaml");

/// Parse and validate map text. `file` is the name diagnostics carry.
///
/// `Ok` holds the map and its warnings (no errors); `Err` holds every
/// diagnostic, errors and warnings, sorted by position. Structural errors
/// (YAML syntax, unknown keys, wrong types) are all reported at once; the
/// semantic checks run once the structure is sound.
pub fn load_str(src: &str, file: &str) -> Result<(DataMap, Vec<Diagnostic>), Vec<Diagnostic>> {
    match parse::parse(src, file) {
        Err(mut diags) => {
            diagnostic::sort(&mut diags);
            Err(diags)
        }
        Ok((map, index)) => {
            let diags = validate::validate(&map, &index);
            if diags.iter().any(Diagnostic::is_error) {
                Err(diags)
            } else {
                Ok((map, diags))
            }
        }
    }
}

/// Every diagnostic of map text, whether or not it has errors.
pub fn check_str(src: &str, file: &str) -> Vec<Diagnostic> {
    match load_str(src, file) {
        Ok((_, d)) | Err(d) => d,
    }
}

/// How long each phase of [`check_str`] took, for the benchmark
/// (`examples/map_bench.rs`): reading the YAML tree, building the map,
/// validating it, and dropping the map and tree.
///
/// Profiling only: the one place this crate reads a clock (`Instant`, the
/// monotonic one). The diagnostics are those of [`check_str`]; the times
/// are reported and never decide anything. Hidden from the docs, since
/// nothing but the benchmark should call it.
#[doc(hidden)]
pub fn check_str_timed(
    src: &str,
    file: &str,
) -> (Vec<Diagnostic>, [(&'static str, std::time::Duration); 4]) {
    use std::time::Instant;
    let t0 = Instant::now();
    let doc = parse::read_tree(src, file);
    let t1 = Instant::now();
    let (diags, t2, t3) = match doc {
        Err(d) => (d, t1, t1),
        Ok(doc) => {
            let built = parse::build(&doc, file);
            let t2 = Instant::now();
            match built {
                Err(mut diags) => {
                    diagnostic::sort(&mut diags);
                    (diags, t2, Instant::now())
                }
                Ok(map) => {
                    let index = parse::SourceIndex::from_doc(file, doc);
                    let diags = validate::validate(&map, &index);
                    let t3 = Instant::now();
                    drop((map, index));
                    (diags, t2, t3)
                }
            }
        }
    };
    let t4 = Instant::now();
    (
        diags,
        [
            ("parse", t1 - t0),
            ("build", t2 - t1),
            ("validate", t3 - t2),
            ("drop", t4 - t3),
        ],
    )
}

/// Why [`load`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file could not be read (code `map.io`).
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The map has errors (code `map.invalid`); all diagnostics are kept.
    #[error("{path}: the data map has {} error(s)", .diagnostics.iter().filter(|d| d.is_error()).count())]
    Invalid {
        /// The file.
        path: String,
        /// Every diagnostic, errors and warnings.
        diagnostics: Vec<Diagnostic>,
    },
}

impl LoadError {
    /// Stable code of the variant.
    pub fn code(&self) -> &'static str {
        match self {
            LoadError::Io { .. } => "map.io",
            LoadError::Invalid { .. } => "map.invalid",
        }
    }
}

/// Read a map file and [`load_str`] it: the only function here that does I/O.
pub fn load(path: &Path) -> Result<(DataMap, Vec<Diagnostic>), LoadError> {
    let name = path.display().to_string();
    let src = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: name.clone(),
        source,
    })?;
    load_str(&src, &name).map_err(|diagnostics| LoadError::Invalid {
        path: name,
        diagnostics,
    })
}
