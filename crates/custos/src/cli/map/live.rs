//! `custos map check --connect`: the map against the live databases of its
//! SQL systems, read-only (the connector reads the catalog in a transaction
//! it rolls back; no row is read or changed).
//!
//! Codes: `db-unreachable` (a setting is missing or the server refused;
//! error), `db-mismatch` (a table or column the map names does not exist, a
//! reference that cannot be followed; error), `erasure-refused` (a column
//! no placeholder fits; error), `placeholder-unfit` (a placeholder NULL
//! replaces; warning), `lookup-scans` (a lookup no index serves; warning,
//! the index to add in the hint), `undeclared-reference` (a foreign key the
//! map does not declare, or declares otherwise; warning).

use custos_connectors::sql::{Finding, SqlConnector};
use custos_connectors::ConnectorError;
use custos_map::{DataMap, Diagnostic, Severity, SourceIndex};

fn diag(
    index: &SourceIndex,
    severity: Severity,
    code: &str,
    path: String,
    message: String,
    hint: Option<String>,
) -> Diagnostic {
    Diagnostic {
        severity,
        code: code.to_owned(),
        file: index.file().to_owned(),
        position: index.position(&path),
        path,
        message,
        hint,
    }
}

/// The node of the map a mismatch is about: the field of `(dataset D,
/// field F)`, the dataset of `table T does not exist` or `T is a view`,
/// else the system.
fn mismatch_path(sys: &custos_map::System, at: &str, message: &str) -> String {
    if let Some(rest) = message.split("(dataset ").nth(1) {
        if let Some((d, f)) = rest.trim_end_matches(')').split_once(", field ") {
            return format!("{at}.datasets.{d}.fields.{f}");
        }
    }
    // `table T does not exist …`, `T is a view, not a table …`.
    let dataset = sys.datasets.iter().find(|d| {
        let t = d.location.value();
        message.starts_with(&format!("table {t} does not exist"))
            || message.starts_with(&format!("{t} is "))
    });
    match dataset {
        Some(d) => format!("{at}.datasets.{}.table", d.id),
        None => at.to_owned(),
    }
}

/// Connects to every SQL system of `map` (settings from this process's
/// environment) and says what the catalog shows.
pub(super) fn check(map: &DataMap, index: &SourceIndex) -> anyhow::Result<Vec<Diagnostic>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let env = |name: &str| std::env::var(name).ok();
    let mut out = Vec::new();
    for sys in map.systems.iter().filter(|s| s.kind.is_sql()) {
        let at = format!("systems.{}", sys.id);
        // The hash key only shapes placeholders, which are checked, never written.
        let connected = rt.block_on(SqlConnector::connect(map, sys, &env, [0u8; 32]));
        let c = match connected {
            Ok(c) => c,
            Err(ConnectorError::Mismatch { message, .. }) => {
                for m in message.lines() {
                    out.push(diag(
                        index,
                        Severity::Error,
                        "db-mismatch",
                        mismatch_path(sys, &at, m),
                        m.to_owned(),
                        Some("make the map say what the database has".into()),
                    ));
                }
                continue;
            }
            Err(e) => {
                out.push(diag(
                    index,
                    Severity::Error,
                    "db-unreachable",
                    at.clone(),
                    e.to_string(),
                    None,
                ));
                continue;
            }
        };
        let found = c.inspect();
        let node = |f: &Finding| match (&f.dataset, &f.field) {
            (Some(d), Some(x)) => format!("{at}.datasets.{d}.fields.{x}"),
            (Some(d), None) => format!("{at}.datasets.{d}"),
            _ => at.clone(),
        };
        for (code, severity, list) in [
            ("erasure-refused", Severity::Error, &found.refusals),
            ("placeholder-unfit", Severity::Warning, &found.unfit),
            ("undeclared-reference", Severity::Warning, &found.undeclared),
        ] {
            for f in list {
                out.push(diag(
                    index,
                    severity,
                    code,
                    node(f),
                    f.message.clone(),
                    None,
                ));
            }
        }
        for s in found.scans {
            let path = match &s.dataset {
                Some(d) => format!("{at}.datasets.{d}.fields.{}", s.column),
                None => at.clone(),
            };
            out.push(diag(
                index,
                Severity::Warning,
                "lookup-scans",
                path,
                format!(
                    "{}.{} is looked up without an index ({}): every request reads the whole table",
                    s.table, s.column, s.lookup
                ),
                Some(s.fix),
            ));
        }
    }
    Ok(out)
}
