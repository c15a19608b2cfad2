//! Diagnostics: what is wrong in a map file, where, and how to fix it.
//!
//! Every problem found by the parser or the validator becomes one
//! [`Diagnostic`]; nothing stops at the first error. The `code` of a
//! diagnostic is stable so that scripts and tests can match on it; the
//! message and hint are for people and may be improved.

use std::fmt;

use serde::{Deserialize, Serialize};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth fixing; fails `custos map check` only with `--strict`.
    Warning,
    /// The map cannot be acted upon.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// A 1-based line and column in the map file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Position {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
}

/// One finding about a map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// Stable, grep-able code such as `unknown-category`.
    pub code: String,
    /// The file name as given by the caller.
    pub file: String,
    /// Where in the file; `None` for maps that did not come from YAML text.
    pub position: Option<Position>,
    /// Path of the offending node, e.g. `systems.app_db.datasets.users.fields.email.category`.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

impl Diagnostic {
    /// Whether this is an error (as opposed to a warning).
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    /// `file:line:col: severity[code] path: message` then `  = hint: ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(p) = self.position {
            write!(f, ":{}:{}", p.line, p.column)?;
        }
        write!(f, ": {}[{}] ", self.severity, self.code)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        write!(f, "{}", self.message)?;
        if let Some(h) = &self.hint {
            write!(f, "\n  = hint: {h}")?;
        }
        Ok(())
    }
}

/// Sort diagnostics by position (unknown positions last), then path and code,
/// so that output is stable and reads top to bottom.
pub fn sort(diags: &mut [Diagnostic]) {
    diags.sort_by(|a, b| {
        let ka = (a.position.is_none(), a.position, &a.path, &a.code);
        let kb = (b.position.is_none(), b.position, &b.path, &b.code);
        ka.cmp(&kb)
    });
}
