//! PostgreSQL's catalog: `pg_class`/`pg_attribute` for columns and their
//! types (a domain is read as its base type), `pg_index` for the primary
//! key (else rows are located by `ctid`) and what each index leads with, `pg_constraint` for the foreign
//! keys that reference a mapped table, whose child tables join the known
//! tables even when the map does not name them.
//!
//! Invariants: tables are looked up by `to_regclass` of the quoted name and
//! then by oid, so a name is never spliced into SQL; every catalog value is
//! read as text.

use std::collections::HashMap;

use super::{key_columns, Column, Family, Fk, Lead, Table};
use crate::sql::dialect::quote;
use crate::sql::pool::Tx;
use crate::sql::SqlConnector;
use crate::ConnectorError;

/// How a table is looked up: by the map's name, or by the oid a foreign key
/// names.
#[derive(Clone, Copy)]
pub(super) enum PgWhere<'a> {
    Name(&'a str),
    Oid(&'a str),
}

impl SqlConnector {
    pub(super) async fn pg_table(
        &self,
        tx: &mut Tx,
        at: PgWhere<'_>,
    ) -> Result<(Option<Table>, String), ConnectorError> {
        let (cond, bind) = match at {
            PgWhere::Name(name) => {
                let parts: Vec<&str> = name.split('.').collect();
                if parts.len() > 2 || parts.iter().any(|p| p.is_empty()) {
                    return Err(self.mismatch(format!(
                        "table name {name} is not `table` or `schema.table`"
                    )));
                }
                let reg = parts.iter().map(|p| quote(p)).collect::<Vec<_>>().join(".");
                ("c.oid = to_regclass($1)", reg)
            }
            PgWhere::Oid(oid) => ("c.oid = CAST(CAST($1 AS int8) AS oid)", oid.to_owned()),
        };
        let sql = format!(
            "SELECT CAST(CAST(c.oid AS int8) AS text), CAST(n.nspname AS text), CAST(c.relname AS text), \
             CAST(c.relkind AS text) \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {cond}"
        );
        let found = self.catalog_rows(tx, &sql, &[bind]).await?;
        let Some([Some(oid), Some(nsp), Some(rel), Some(kind)]) = found.first().map(Vec::as_slice)
        else {
            return Ok((None, String::new()));
        };
        // Rows are changed in tables only (plain, partitioned, foreign).
        if let (PgWhere::Name(name), false) = (at, matches!(kind.as_str(), "r" | "p" | "f")) {
            let what = match kind.as_str() {
                "v" => "a view",
                "m" => "a materialized view",
                "i" | "I" => "an index",
                "S" => "a sequence",
                _ => "not a table",
            };
            return Err(self.mismatch(format!(
                "{name} is {what}, not a table: map the table that holds the rows"
            )));
        }
        let (oid, nsp, rel) = (oid.clone(), nsp.clone(), rel.clone());
        let cols = self
            .catalog_rows(
                tx,
                "SELECT CAST(a.attname AS text), format_type(a.atttypid, NULL), \
                 CAST(COALESCE(b.typname, t.typname) AS text), CAST(t.typcategory AS text), \
                 CAST(a.attnotnull AS text), \
                 CAST(CASE WHEN t.typcategory = 'S' AND a.atttypmod > 4 THEN a.atttypmod - 4 END AS text) \
                 FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
                 LEFT JOIN pg_type b ON b.oid = t.typbasetype \
                 WHERE a.attrelid = CAST(CAST($1 AS int8) AS oid) AND a.attnum > 0 AND NOT a.attisdropped \
                 ORDER BY a.attnum",
                std::slice::from_ref(&oid),
            )
            .await?;
        let mut columns = Vec::new();
        for r in cols {
            let [Some(name), Some(ty), Some(typname), Some(cat), Some(nn), max] = r.as_slice()
            else {
                continue;
            };
            let family = match typname.as_str() {
                "int2" => Family::Int(16),
                "int4" => Family::Int(32),
                "int8" => Family::Int(64),
                "uuid" => Family::Uuid,
                "bool" => Family::Bool,
                _ if cat == "S" => Family::Text,
                _ if cat == "N" => Family::Numeric,
                _ => Family::Other,
            };
            columns.push(Column {
                name: name.clone(),
                q: quote(name),
                cast: (family != Family::Text).then(|| ty.clone()),
                family,
                not_null: nn == "true",
                max_chars: max.as_deref().and_then(|m| m.parse().ok()),
                date: matches!(typname.as_str(), "date" | "timestamp" | "timestamptz"),
                my_type: String::new(),
                my_collation: None,
            });
        }
        let pk: Vec<String> = self
            .catalog_rows(
                tx,
                "SELECT CAST(a.attname AS text) FROM pg_index i \
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
                 WHERE i.indrelid = CAST(CAST($1 AS int8) AS oid) AND i.indisprimary \
                 ORDER BY array_position(CAST(i.indkey AS int2[]), a.attnum)",
                std::slice::from_ref(&oid),
            )
            .await?
            .into_iter()
            .filter_map(|r| r.into_iter().next().flatten())
            .collect();
        // Indexes that can answer `=`/`IN`: valid, not partial, B-tree or
        // hash; a unique one of one column also forbids shared placeholders.
        let mut leads = Vec::new();
        let mut unique = Vec::new();
        for r in self
            .catalog_rows(
                tx,
                "SELECT pg_get_indexdef(i.indexrelid, 1, true), CAST(i.indisunique AS text), \
                 CAST(i.indnkeyatts AS text) FROM pg_index i \
                 JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam \
                 WHERE i.indrelid = CAST(CAST($1 AS int8) AS oid) AND i.indisvalid \
                 AND i.indpred IS NULL AND am.amname IN ('btree', 'hash')",
                std::slice::from_ref(&oid),
            )
            .await?
        {
            let [Some(def), Some(uniq), Some(keys)] = r.as_slice() else {
                continue;
            };
            let Some(lead) = Lead::parse(def) else {
                continue;
            };
            // `lower(col)` unique is as unique for one placeholder.
            if let (Lead::Column(c) | Lead::Lower(c), "true", "1") =
                (&lead, uniq.as_str(), keys.as_str())
            {
                unique.push(c.clone());
            }
            leads.push(lead);
        }
        let loc = if pk.is_empty() {
            vec![Column::row_id("ctid", Some("tid"), Family::Other)]
        } else {
            key_columns(&pk, &columns)
        };
        let name = if nsp == "public" {
            rel.clone()
        } else {
            format!("{nsp}.{rel}")
        };
        Ok((
            Some(Table {
                name,
                q: format!("{}.{}", quote(&nsp), quote(&rel)),
                columns,
                pk,
                loc,
                by_value: false,
                leads,
                unique,
            }),
            oid,
        ))
    }

    pub(super) async fn pg_fks(
        &mut self,
        tx: &mut Tx,
        oids: &[String],
    ) -> Result<(), ConnectorError> {
        let list = format!("{{{}}}", oids.join(","));
        let rows = self
            .catalog_rows(
                tx,
                "SELECT CAST(c.conname AS text), CAST(CAST(c.conrelid AS int8) AS text), \
                 CAST(CAST(c.confrelid AS int8) AS text), CAST(c.confdeltype AS text), \
                 CAST(array_length(c.conkey, 1) AS text), \
                 (SELECT CAST(a.attname AS text) FROM pg_attribute a WHERE a.attrelid = c.conrelid AND a.attnum = c.conkey[1]), \
                 (SELECT CAST(a.attname AS text) FROM pg_attribute a WHERE a.attrelid = c.confrelid AND a.attnum = c.confkey[1]) \
                 FROM pg_constraint c \
                 WHERE c.contype = 'f' AND CAST(c.confrelid AS int8) = ANY(CAST($1 AS int8[])) \
                 ORDER BY c.conname",
                &[list],
            )
            .await?;
        let mut oid_index: HashMap<String, usize> = oids
            .iter()
            .enumerate()
            .map(|(i, o)| (o.clone(), i))
            .collect();
        for r in rows {
            let [Some(name), Some(child), Some(parent), Some(del), Some(len), Some(ccol), Some(pcol)] =
                r.as_slice()
            else {
                continue;
            };
            if len != "1" {
                tracing::warn!(system = %self.system.id, constraint = %name, "multi-column foreign key not followed");
                continue;
            }
            let Some(&p) = oid_index.get(parent) else {
                continue;
            };
            let c = match oid_index.get(child) {
                Some(&c) => c,
                None => {
                    let (t, _) = self.pg_table(tx, PgWhere::Oid(child)).await?;
                    let Some(t) = t else { continue };
                    self.tables.push(t);
                    let i = self.tables.len() - 1;
                    oid_index.insert(child.clone(), i);
                    i
                }
            };
            let on_delete = match del.as_str() {
                "c" => "cascade",
                "n" => "set null",
                "d" => "set default",
                "r" => "restrict",
                _ => "no action",
            };
            self.fks.push(Fk {
                name: name.clone(),
                child: c,
                child_col: ccol.clone(),
                parent: p,
                parent_col: pcol.clone(),
                on_delete: on_delete.to_owned(),
            });
        }
        Ok(())
    }
}
