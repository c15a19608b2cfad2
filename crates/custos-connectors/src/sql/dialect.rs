//! The SQL text of each engine: quoting, parameters (`$n`, or `?` on
//! MySQL), how a bound value is cast to its column's type, the conditions
//! that select rows by values or by locators, and the SELECT that reads a
//! row as JSON with its locator (and the parsing of what it returns).
//!
//! Invariants: identifiers are quoted by [`quote`] and [`quote_my`] only;
//! values never appear in the SQL text — they are parameters, and a value
//! that cannot be of its column's type (or holds NUL) is dropped before the
//! query; MySQL compares the person's values byte for byte (see the module
//! doc of `sql`); the only literals spliced are column names of the
//! catalog, escaped as SQL strings (SQLite's `json_object` keys).

use serde_json::Value;

use super::catalog::{fits, Column, Family, Lead, Table};
use super::find::Row;
use super::pool::{Cells, Engine};
use super::SqlConnector;
use crate::{ConnectorError, Record};

/// Columns per SQLite `json_object` call (SQLite caps function arguments).
pub(super) const JSON_CHUNK: usize = 40;

/// The alias of the table in every SELECT (unlikely to be a column name,
/// which would shadow the whole-row reference of `row_to_json`).
pub(super) const ALIAS: &str = "custos_r";

/// A PostgreSQL or SQLite identifier: double quotes, doubled inside.
pub(super) fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// A MySQL identifier: backticks, doubled inside (whatever `sql_mode`).
pub(super) fn quote_my(ident: &str) -> String {
    format!("`{}`", ident.replace('`', "``"))
}

/// An SQL string literal, quotes doubled (for names of the catalog only).
fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// How values of a condition came to be, which decides how they are
/// compared.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// Values of the person: dropped if they cannot be of the column type;
    /// compared as text where the type is unknown.
    Person { fold_case: bool },
    /// Values read from the database (keys): cast to the column type.
    Keys,
}

/// Whether MySQL compares a column with values of the person as text:
/// text and types without a checked form, and any non-binary column when
/// case is folded.
fn my_as_text(col: &Column, fold_case: bool) -> bool {
    matches!(col.family, Family::Text | Family::Other) || (fold_case && col.family != Family::Bytes)
}

impl SqlConnector {
    /// The `n`th (from 1) parameter: `$n`, or `?` on MySQL, whose
    /// parameters are bound in the order they appear.
    pub(super) fn ph(&self, n: usize) -> String {
        match self.engine {
            Engine::My => "?".to_owned(),
            Engine::Pg | Engine::Lite => format!("${n}"),
        }
    }

    pub(super) fn value_expr(&self, col: &Column, param: &str) -> String {
        if self.engine == Engine::My && col.family == Family::Bytes {
            return format!("UNHEX({param})");
        }
        match &col.cast {
            Some(ty) => format!("CAST({param} AS {ty})"),
            None => param.to_owned(),
        }
    }

    pub(super) fn admissible(&self, col: &Column, v: &str, mode: Mode) -> bool {
        if v.contains('\0') {
            return false;
        }
        match (self.engine, mode) {
            // SQLite compares any value with any column without error.
            (Engine::Lite, _) => true,
            (Engine::Pg, Mode::Person { fold_case: true }) => true,
            (Engine::Pg, _) => fits(col.family, v),
            (Engine::My, Mode::Person { fold_case }) if my_as_text(col, fold_case) => true,
            (Engine::My, _) => fits(col.family, v),
        }
    }

    /// The index lead that lets the database answer [`Self::in_cond`] for
    /// `col` without reading the whole table, or `None` where no index can
    /// (the condition converts the column first). Kept beside `in_cond`:
    /// each arm mirrors the expression that method writes.
    pub(super) fn index_for(&self, col: &Column, mode: Mode) -> Option<Lead> {
        let name = col.name.clone();
        let utf8mb4 = col
            .my_collation
            .as_deref()
            .is_some_and(|c| c.starts_with("utf8mb4_"));
        match (self.engine, mode) {
            (Engine::Pg | Engine::Lite, Mode::Person { fold_case: true }) => {
                Some(Lead::Lower(name))
            }
            (Engine::Pg, Mode::Person { fold_case: false }) if col.family == Family::Other => None,
            (Engine::My, Mode::Person { fold_case }) if my_as_text(col, fold_case) => {
                let ci = col
                    .my_collation
                    .as_deref()
                    .is_some_and(|c| c.ends_with("_ci"));
                (col.family == Family::Text && utf8mb4 && (ci || !fold_case))
                    .then_some(Lead::Column(name))
            }
            (Engine::My, _) if col.family == Family::Text && !utf8mb4 => None,
            _ => Some(Lead::Column(name)),
        }
    }

    /// `col IN (...)` for one chunk, and the values to bind for it.
    pub(super) fn in_cond(
        &self,
        col: &Column,
        values: &[String],
        mode: Mode,
    ) -> (String, Vec<String>) {
        if self.engine == Engine::My {
            return self.my_in_cond(col, values, mode);
        }
        let params = (1..=values.len()).map(|i| self.ph(i));
        let sql = match mode {
            Mode::Person { fold_case: true } => {
                let lhs = if col.family == Family::Text || self.engine == Engine::Lite {
                    format!("lower({})", col.q)
                } else {
                    format!("lower(CAST({} AS text))", col.q)
                };
                let list: Vec<String> = params.map(|p| format!("lower({p})")).collect();
                format!("{lhs} IN ({})", list.join(", "))
            }
            Mode::Person { fold_case: false }
                if self.engine == Engine::Pg && col.family == Family::Other =>
            {
                let list: Vec<String> = params.collect();
                format!("CAST({} AS text) IN ({})", col.q, list.join(", "))
            }
            _ => {
                let list: Vec<String> = params.map(|p| self.value_expr(col, &p)).collect();
                format!("{} IN ({})", col.q, list.join(", "))
            }
        };
        (sql, values.to_vec())
    }

    /// MySQL's `col IN (...)`: the person's values exactly (see the module
    /// doc), keys by the column's collation.
    fn my_in_cond(&self, col: &Column, values: &[String], mode: Mode) -> (String, Vec<String>) {
        let list = |p: &str| vec![p; values.len()].join(", ");
        let utf8mb4 = col
            .my_collation
            .as_deref()
            .is_some_and(|c| c.starts_with("utf8mb4_"));
        match mode {
            Mode::Person { fold_case } if my_as_text(col, fold_case) => {
                let text = if col.family == Family::Text {
                    format!("CONVERT({} USING utf8mb4)", col.q)
                } else {
                    format!("CAST({} AS CHAR)", col.q)
                };
                let exact = if fold_case {
                    format!(
                        "CAST(LOWER({text}) AS BINARY) IN ({})",
                        list("CAST(LOWER(?) AS BINARY)")
                    )
                } else {
                    format!("CAST({text} AS BINARY) IN ({})", list("CAST(? AS BINARY)"))
                };
                // The column's collation finds a superset (case and accent
                // variants) through its index; the exact test filters it.
                let ci = col
                    .my_collation
                    .as_deref()
                    .is_some_and(|c| c.ends_with("_ci"));
                if col.family == Family::Text && utf8mb4 && (ci || !fold_case) {
                    let mut binds = values.to_vec();
                    binds.extend_from_slice(values);
                    (format!("{} IN ({}) AND {exact}", col.q, list("?")), binds)
                } else {
                    (exact, values.to_vec())
                }
            }
            _ => {
                // Text of another character set is converted: comparing it
                // with utf8mb4 values it cannot hold is an error.
                let lhs = if col.family == Family::Text && !utf8mb4 {
                    format!("CONVERT({} USING utf8mb4)", col.q)
                } else {
                    col.q.clone()
                };
                (
                    format!("{lhs} IN ({})", list(&self.value_expr(col, "?"))),
                    values.to_vec(),
                )
            }
        }
    }

    /// How MySQL reads a locator column: as text, hex for binary; with
    /// `by_value` NULL-safe (`N`, which hex never is).
    fn my_loc_expr(&self, t: &Table, c: &Column, qualified: bool) -> String {
        let x = if qualified {
            format!("{ALIAS}.{}", c.q)
        } else {
            c.q.clone()
        };
        let text = if c.family == Family::Bytes {
            format!("HEX({x})")
        } else if t.by_value {
            format!("HEX(CAST({x} AS CHAR))")
        } else {
            format!("CAST({x} AS CHAR)")
        };
        if t.by_value {
            format!("IFNULL({text}, 'N')")
        } else {
            text
        }
    }

    /// The condition selecting rows by their locators, parameters from
    /// `$offset+1`.
    pub(super) fn loc_cond(
        &self,
        t: &Table,
        locs: &[&Vec<String>],
        offset: usize,
    ) -> (String, Vec<String>) {
        let mut binds = Vec::new();
        if let ([one], false) = (t.loc.as_slice(), t.by_value) {
            let mut list = Vec::new();
            for l in locs {
                binds.push(l.first().cloned().unwrap_or_default());
                list.push(self.value_expr(one, &self.ph(offset + binds.len())));
            }
            return (format!("{} IN ({})", one.q, list.join(", ")), binds);
        }
        let mut ors = Vec::new();
        for l in locs {
            let mut ands = Vec::new();
            for (c, v) in t.loc.iter().zip(l.iter()) {
                binds.push(v.clone());
                let p = self.ph(offset + binds.len());
                if t.by_value {
                    ands.push(format!("{} = {p}", self.my_loc_expr(t, c, false)));
                } else {
                    ands.push(format!("{} = {}", c.q, self.value_expr(c, &p)));
                }
            }
            ors.push(format!("({})", ands.join(" AND ")));
        }
        (format!("({})", ors.join(" OR ")), binds)
    }

    pub(super) fn select_sql(&self, t: &Table, cond: &str, lock: bool) -> String {
        let mut cols = Vec::new();
        match self.engine {
            Engine::Pg => cols.push(format!("CAST(row_to_json({ALIAS}) AS text)")),
            Engine::Lite => {
                for chunk in t.columns.chunks(JSON_CHUNK) {
                    let args: Vec<String> = chunk
                        .iter()
                        .map(|c| {
                            format!(
                                "{}, CASE WHEN typeof({ALIAS}.{q}) = 'blob' THEN hex({ALIAS}.{q}) ELSE {ALIAS}.{q} END",
                                sql_string(&c.name),
                                q = c.q
                            )
                        })
                        .collect();
                    cols.push(format!("json_object({})", args.join(", ")));
                }
            }
            Engine::My => {
                // An array, named from the catalog: no column names in SQL
                // string literals (whose escaping depends on `sql_mode`).
                let args: Vec<String> = t
                    .columns
                    .iter()
                    .map(|c| {
                        let x = format!("{ALIAS}.{}", c.q);
                        match (c.family, c.my_type.as_str()) {
                            (Family::Bytes, _) => format!("HEX({x})"),
                            (_, "bit") => format!("({x} + 0)"),
                            (
                                _,
                                "geometry" | "point" | "linestring" | "polygon" | "multipoint"
                                | "multilinestring" | "multipolygon" | "geometrycollection",
                            ) => format!("ST_AsText({x})"),
                            _ => x,
                        }
                    })
                    .collect();
                cols.push(format!("JSON_ARRAY({})", args.join(", ")));
            }
        }
        for l in &t.loc {
            cols.push(match self.engine {
                Engine::My => self.my_loc_expr(t, l, true),
                Engine::Pg | Engine::Lite => format!("CAST({ALIAS}.{} AS text)", l.q),
            });
        }
        let lock = match self.engine {
            Engine::Pg if lock => format!(" FOR UPDATE OF {ALIAS}"),
            Engine::My if lock => " FOR UPDATE".to_owned(),
            _ => String::new(),
        };
        format!(
            "SELECT {} FROM {} AS {ALIAS} WHERE {cond}{lock}",
            cols.join(", "),
            t.q
        )
    }

    pub(super) fn parse_row(&self, t: &Table, cells: Cells) -> Result<Row, ConnectorError> {
        let n_json = match self.engine {
            Engine::Pg | Engine::My => 1,
            Engine::Lite => t.columns.chunks(JSON_CHUNK).count(),
        };
        let mut it = cells.into_iter();
        let mut data = Record::new();
        for _ in 0..n_json {
            if let Some(Some(s)) = it.next() {
                match serde_json::from_str::<Value>(&s) {
                    Ok(Value::Object(m)) => data.extend(m),
                    Ok(Value::Array(a)) if a.len() == t.columns.len() => {
                        data.extend(t.columns.iter().map(|c| c.name.clone()).zip(a));
                    }
                    _ => {
                        return Err(self.mismatch(format!(
                            "table {}: a row could not be read as JSON",
                            t.name
                        )))
                    }
                }
            }
        }
        let loc = it.map(Option::unwrap_or_default).collect();
        Ok(Row { data, loc })
    }
}
