//! From YAML text to a [`DataMap`], with a position for every problem.
//!
//! The YAML is first read into a tree whose every node carries its line and
//! column (`crate::tree`: a fast reader for the plain YAML maps are written
//! in, `marked-yaml` for anything else), then converted by hand rather than
//! through serde:
//! serde stops at the first error, and we want every structural error of the
//! file at once, each with the path of its node and a way to fix it.
//! Semantic rules live in [`crate::validate`]; they need the [`SourceIndex`]
//! returned here to point back into the file.

//!
//! Layout: [`SourceIndex`] (in `source`) finds a node's position by its
//! path; `yaml_error` turns the full parser's errors into diagnostics;
//! `reader` has the `Parser`'s primitives (typed values with their
//! diagnostics); `document` and `systems` read the parts of the map.

mod document;
mod reader;
mod source;
mod systems;
mod yaml_error;

use marked_yaml::LoaderOptions;

use crate::diagnostic::Diagnostic;
use crate::model::*;
use crate::tree::{self, Doc};

pub use source::SourceIndex;
use yaml_error::load_error;

/// The YAML tree of map text: by the fast reader when the text is in the
/// plain subset it handles, otherwise by the full parser (which also
/// reports YAML errors).
pub(crate) fn read_tree(src: &str, file: &str) -> Result<Doc, Vec<Diagnostic>> {
    if let Some(doc) = tree::fast(src) {
        return Ok(doc);
    }
    match marked_yaml::parse_yaml_with_options(
        0,
        src,
        LoaderOptions::default().error_on_duplicate_keys(true),
    ) {
        Ok(root) => Ok(tree::from_marked(&root)),
        Err(e) => Err(vec![load_error(&e, file)]),
    }
}

/// Parse map text. `Ok` holds the map and the index for validation; `Err`
/// holds every structural error found (and any warnings met on the way).
pub fn parse(src: &str, file: &str) -> Result<(DataMap, SourceIndex), Vec<Diagnostic>> {
    let doc = read_tree(src, file)?;
    let map = build(&doc, file)?;
    Ok((map, SourceIndex::from_doc(file, doc)))
}

/// Build the map from its YAML tree; `Err` holds every structural error.
pub(crate) fn build(doc: &Doc, file: &str) -> Result<DataMap, Vec<Diagnostic>> {
    let mut p = Parser {
        file,
        diags: Vec::new(),
        identity_kinds: IdentityKind::ALL.iter().map(|k| (k.key(), *k)).collect(),
    };
    let map = doc.root().and_then(|root| p.data_map(root));
    if p.diags.iter().any(Diagnostic::is_error) {
        return Err(p.diags);
    }
    map.ok_or(p.diags)
}

/// The state of one conversion: the diagnostics found so far. Its methods
/// are spread over the submodules by the part of the map they read.
struct Parser<'f> {
    file: &'f str,
    diags: Vec<Diagnostic>,
    identity_kinds: Vec<(&'static str, IdentityKind)>,
}

/// Maps with at least this many YAML nodes read their top-level lists on
/// two threads.
const PARALLEL_NODES: usize = 100_000;

fn is_null(s: &str) -> bool {
    matches!(s, "" | "~" | "null" | "Null" | "NULL")
}

fn as_bool(s: &str) -> Option<bool> {
    match s {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

/// Identifiers: letters, digits, `_` and `-`, so that they fit in paths.
pub(crate) fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// `YYYY-MM-DD` with plausible month and day.
pub(crate) fn valid_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return false;
    }
    let num = |r: std::ops::Range<usize>| {
        s.get(r)
            .filter(|x| x.bytes().all(|c| c.is_ascii_digit()))
            .and_then(|x| x.parse::<u32>().ok())
    };
    matches!((num(0..4), num(5..7), num(8..10)), (Some(_), Some(m), Some(d)) if (1..=12).contains(&m) && (1..=31).contains(&d))
}

/// Environment variable names: `A-Z`, digits and `_`, not starting with a digit.
pub(crate) fn is_env_name(s: &str) -> bool {
    s.chars()
        .next()
        .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

fn sanitize(s: &str) -> String {
    let out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() {
        "id".into()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert!(valid_date("2024-03-01"));
        assert!(!valid_date("2024-13-01"));
        assert!(!valid_date("24-03-01"));
    }

    /// A map big enough to be read on two threads reports the same
    /// diagnostics, in the same order, as when read on one.
    #[test]
    fn big_map_read_in_two_halves() {
        use std::fmt::Write as _;
        let mut src = String::from(
            "organisation:\n  controller: X\n  contact: x@x.example\npurposes:\n  - id: s\n    title: S\n    legal_basis: contract\n    subjects: [customer]\nsystems:\n",
        );
        for s in 0..300 {
            let kind = if s == 10 { "postgress" } else { "postgres" };
            let _ = writeln!(src, "  - id: sys{s}\n    kind: {kind}\n    datasets:");
            for d in 0..8 {
                let _ = writeln!(src, "      - id: t{d}\n        table: t{d}\n        purposes: [s]\n        retention: {{ period: 3y, from_column: f0 }}\n        fields:");
                for f in 0..12 {
                    let extra = if (s, d, f) == (250, 3, 4) {
                        ", colour: red"
                    } else {
                        ""
                    };
                    let _ = writeln!(
                        src,
                        "          - {{ name: f{f}, category: user.name, identity: email{extra} }}"
                    );
                }
            }
        }
        let doc = tree::fast(&src).unwrap();
        assert!(doc.root().unwrap().doc_nodes() >= PARALLEL_NODES);
        let diags = build(&doc, "big.yaml").unwrap_err();
        let got: Vec<String> = diags
            .iter()
            .map(|d| format!("{}:{}", d.code, d.path))
            .collect();
        assert_eq!(
            got,
            [
                "invalid-value:systems.sys10.kind",
                "unknown-key:systems.sys250.datasets.t3.fields.f4.colour",
            ]
        );
        assert!(diags[0].position < diags[1].position);
    }

    #[test]
    fn env_names() {
        assert!(is_env_name("DATABASE_URL"));
        assert!(!is_env_name("postgres://u:p@h/db"));
        assert!(!is_env_name("1X"));
    }
}
