//! SQLite's catalog: `sqlite_master` and `pragma_table_info` for columns
//! (their family from SQLite's affinity rules), the primary key (else rows
//! are located by `rowid`), what each index leads with (`pragma_index_xinfo`,
//! the `CREATE INDEX` text for an expression), and `pragma_foreign_key_list` of every table
//! for the foreign keys referencing a mapped table.
//!
//! Invariants: table names are bound (`pragma_table_info($1)`), never
//! spliced; names compare case-insensitively, as SQLite's do.

use std::collections::BTreeMap;

use super::{key_columns, Column, Family, Fk, Lead, Table};
use crate::sql::dialect::quote;
use crate::sql::pool::{Cells, Tx};
use crate::sql::SqlConnector;
use crate::ConnectorError;

impl SqlConnector {
    pub(super) async fn lite_table(
        &self,
        tx: &mut Tx,
        name: &str,
    ) -> Result<Option<Table>, ConnectorError> {
        let found = self
            .catalog_rows(
                tx,
                "SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view') \
                 AND name = $1 COLLATE NOCASE ORDER BY type",
                &[name.to_owned()],
            )
            .await?;
        let Some([Some(real), kind]) = found.first().map(Vec::as_slice) else {
            return Ok(None);
        };
        if kind.as_deref() == Some("view") {
            return Err(self.mismatch(format!(
                "{name} is a view, not a table: map the table that holds the rows"
            )));
        }
        let real = real.clone();
        let cols = self
            .catalog_rows(
                tx,
                "SELECT name, CAST(type AS TEXT), CAST(\"notnull\" AS TEXT), CAST(pk AS TEXT) \
                 FROM pragma_table_info($1) ORDER BY cid",
                std::slice::from_ref(&real),
            )
            .await?;
        let mut columns = Vec::new();
        let mut pk: Vec<(u32, String)> = Vec::new();
        for r in cols {
            let [Some(cname), ty, Some(nn), Some(pkn)] = r.as_slice() else {
                continue;
            };
            let ty = ty.clone().unwrap_or_default().to_ascii_uppercase();
            // SQLite's affinity rules, in their order.
            let family = if ty.contains("INT") {
                Family::Int(64)
            } else if ty.contains("CHAR") || ty.contains("CLOB") || ty.contains("TEXT") {
                Family::Text
            } else if ty.contains("BLOB") || ty.is_empty() {
                Family::Other
            } else if ty.contains("DATE") || ty.contains("TIME") {
                // NUMERIC affinity, but dates are written as text: what the
                // other engines call a date, not a number.
                Family::Other
            } else {
                Family::Numeric
            };
            if let Ok(n) = pkn.parse::<u32>() {
                if n > 0 {
                    pk.push((n, cname.clone()));
                }
            }
            columns.push(Column {
                name: cname.clone(),
                q: quote(cname),
                cast: None,
                family,
                not_null: nn == "1",
                max_chars: if family == Family::Text {
                    declared_length(&ty)
                } else {
                    None
                },
                date: ty.contains("DATE") || ty.contains("TIMESTAMP"),
                my_type: String::new(),
                my_collation: None,
            });
        }
        pk.sort();
        let pk: Vec<String> = pk.into_iter().map(|(_, n)| n).collect();
        let mut leads = Vec::new();
        // An INTEGER PRIMARY KEY is the rowid itself: indexed, listed nowhere.
        if let [one] = pk.as_slice() {
            if columns
                .iter()
                .any(|c| &c.name == one && c.family == Family::Int(64))
            {
                leads.push(Lead::Column(one.clone()));
            }
        }
        // A unique index of one column also forbids shared placeholders.
        let mut unique = Vec::new();
        let indexes = self
            .catalog_rows(
                tx,
                "SELECT x.name, CAST(il.partial AS TEXT), m.sql, CAST(il.\"unique\" AS TEXT), \
                 CAST((SELECT count(*) FROM pragma_index_info(il.name)) AS TEXT) \
                 FROM pragma_index_list($1) il JOIN pragma_index_xinfo(il.name) x \
                 LEFT JOIN sqlite_master m ON m.type = 'index' AND m.name = il.name \
                 WHERE x.seqno = 0",
                std::slice::from_ref(&real),
            )
            .await?;
        for r in indexes {
            match r.as_slice() {
                [_, Some(partial), ..] if partial != "0" => {}
                [Some(col), _, _, uniq, keys] => {
                    if uniq.as_deref() == Some("1") && keys.as_deref() == Some("1") {
                        unique.push(col.clone());
                    }
                    leads.push(Lead::Column(col.clone()));
                }
                [None, _, Some(sql), uniq, keys] => {
                    let lead = first_key(sql).and_then(Lead::parse);
                    if let (Some(Lead::Lower(c)), Some("1"), Some("1")) =
                        (&lead, uniq.as_deref(), keys.as_deref())
                    {
                        unique.push(c.clone());
                    }
                    leads.extend(lead);
                }
                _ => {}
            }
        }
        let loc = if pk.is_empty() {
            vec![Column::row_id("rowid", None, Family::Int(64))]
        } else {
            key_columns(&pk, &columns)
        };
        Ok(Some(Table {
            name: real.clone(),
            q: quote(&real),
            columns,
            pk,
            loc,
            by_value: false,
            leads,
            unique,
        }))
    }

    pub(super) async fn lite_fks(&mut self, tx: &mut Tx) -> Result<(), ConnectorError> {
        let rows = self
            .catalog_rows(
                tx,
                "SELECT m.name, CAST(f.id AS TEXT), f.\"table\", f.\"from\", f.\"to\", f.on_delete \
                 FROM sqlite_master m, pragma_foreign_key_list(m.name) f \
                 WHERE m.type = 'table' ORDER BY m.name, f.id, f.seq",
                &[],
            )
            .await?;
        // Group the columns of each constraint.
        let mut groups: BTreeMap<(String, String), Vec<Cells>> = BTreeMap::new();
        for r in rows {
            let key = match r.as_slice() {
                [Some(t), Some(id), ..] => (t.clone(), id.clone()),
                _ => continue,
            };
            groups.entry(key).or_default().push(r);
        }
        for ((child_name, id), cols) in groups {
            let name = format!("{child_name} foreign key {id}");
            let [r] = cols.as_slice() else {
                tracing::warn!(system = %self.system.id, constraint = %name, "multi-column foreign key not followed");
                continue;
            };
            let [_, _, Some(parent_name), Some(from), to, del] = r.as_slice() else {
                continue;
            };
            let find = |n: &str, tables: &[Table]| {
                tables.iter().position(|t| {
                    t.name.eq_ignore_ascii_case(n) || unquote(&t.q).eq_ignore_ascii_case(n)
                })
            };
            let n_mapped = self.system.datasets.len();
            let Some(p) = find(parent_name, self.tables.get(..n_mapped).unwrap_or(&[])) else {
                continue;
            };
            let pcol = match to {
                Some(t) => t.clone(),
                None => match self.tables.get(p).map(|t| t.pk.as_slice()) {
                    Some([one]) => one.clone(),
                    _ => continue,
                },
            };
            let c = match find(&child_name, &self.tables) {
                Some(c) => c,
                None => {
                    let Some(t) = self.lite_table(tx, &child_name).await? else {
                        continue;
                    };
                    self.tables.push(t);
                    self.tables.len() - 1
                }
            };
            self.fks.push(Fk {
                name,
                child: c,
                child_col: from.clone(),
                parent: p,
                parent_col: pcol,
                on_delete: del.clone().unwrap_or_default().to_ascii_lowercase(),
            });
        }
        Ok(())
    }
}

fn unquote(q: &str) -> String {
    q.trim_matches('"').replace("\"\"", "\"")
}

/// The first key of a `CREATE INDEX … ON t (key, …)` statement, without
/// its `COLLATE`/`ASC`/`DESC`.
fn first_key(sql: &str) -> Option<&str> {
    let open = sql.find('(')?;
    let rest = sql.get(open + 1..)?;
    let mut depth = 0usize;
    let mut end = rest.len();
    for (i, c) in rest.char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth == 0 => {
                end = i;
                break;
            }
            ')' => depth -= 1,
            ',' if depth == 0 => {
                end = i;
                break;
            }
            _ => {}
        }
    }
    let mut key = rest.get(..end)?.trim();
    for suffix in [" ASC", " DESC", " asc", " desc"] {
        key = key.strip_suffix(suffix).unwrap_or(key).trim();
    }
    if let Some(at) = key.to_ascii_uppercase().rfind(" COLLATE ") {
        key = key.get(..at)?.trim();
    }
    Some(key)
}

/// The length a declared type names (`VARCHAR(20)` → 20), which SQLite
/// does not enforce but the application's other engines would.
fn declared_length(ty: &str) -> Option<u32> {
    let (_, rest) = ty.split_once('(')?;
    let (n, _) = rest.split_once(')')?;
    n.trim().parse().ok()
}
