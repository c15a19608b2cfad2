//! MySQL/MariaDB's catalog, from `information_schema`: columns with their
//! `DATA_TYPE`, `COLUMN_TYPE` (signedness) and collation, the `PRIMARY`
//! key (MySQL has no row id: a table without one is located by every
//! column's value), the columns indexes lead with, and the foreign keys referencing the mapped tables'
//! databases, whose child tables join the known tables.
//!
//! Invariants: schema and table names are bound, never spliced; names are
//! found case-insensitively only when exactly one table matches; the digits
//! of a `DECIMAL(p,s)` cast are parsed as numbers before they reach SQL.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{key_columns, Column, Family, Fk, Lead, Table};
use crate::sql::dialect::quote_my;
use crate::sql::pool::{Cells, Tx};
use crate::sql::SqlConnector;
use crate::ConnectorError;

impl SqlConnector {
    /// The real `(database, table)` of a map's `table` or `database.table`
    /// name: the exact spelling if it exists, else the one table matching
    /// regardless of case (`information_schema` compares case-insensitively).
    pub(super) async fn my_find(
        &self,
        tx: &mut Tx,
        name: &str,
    ) -> Result<Option<(String, String)>, ConnectorError> {
        let parts: Vec<&str> = name.split('.').collect();
        let (schema, table) = match parts.as_slice() {
            [t] if !t.is_empty() => match &self.my_schema {
                Some(s) => (s.clone(), (*t).to_owned()),
                None => return Ok(None),
            },
            [s, t] if !s.is_empty() && !t.is_empty() => ((*s).to_owned(), (*t).to_owned()),
            _ => {
                return Err(self.mismatch(format!(
                    "table name {name} is not `table` or `database.table`"
                )))
            }
        };
        let found: Vec<(String, String)> = self
            .catalog_rows(
                tx,
                "SELECT CAST(TABLE_SCHEMA AS CHAR), CAST(TABLE_NAME AS CHAR) \
                 FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND TABLE_TYPE = 'BASE TABLE'",
                &[schema.clone(), table.clone()],
            )
            .await?
            .into_iter()
            .filter_map(|r| match r.as_slice() {
                [Some(s), Some(t)] => Some((s.clone(), t.clone())),
                _ => None,
            })
            .collect();
        if let Some(exact) = found.iter().find(|(s, t)| *s == schema && *t == table) {
            return Ok(Some(exact.clone()));
        }
        Ok(match found.as_slice() {
            [one] => Some(one.clone()),
            _ => None,
        })
    }

    pub(super) async fn my_table(
        &self,
        tx: &mut Tx,
        key: &(String, String),
    ) -> Result<Option<Table>, ConnectorError> {
        let (schema, table) = key;
        let binds = [schema.clone(), table.clone()];
        let cols = self
            .catalog_rows(
                tx,
                "SELECT CAST(TABLE_SCHEMA AS CHAR), CAST(TABLE_NAME AS CHAR), \
                 CAST(COLUMN_NAME AS CHAR), CAST(DATA_TYPE AS CHAR), CAST(COLUMN_TYPE AS CHAR), \
                 CAST(IS_NULLABLE AS CHAR), CAST(COLLATION_NAME AS CHAR), \
                 CAST(NUMERIC_PRECISION AS CHAR), CAST(NUMERIC_SCALE AS CHAR), \
                 CAST(CHARACTER_MAXIMUM_LENGTH AS CHAR) \
                 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
                 ORDER BY ORDINAL_POSITION",
                &binds,
            )
            .await?;
        let mut columns = Vec::new();
        for r in cols {
            let [Some(s), Some(t), Some(name), Some(dt), Some(ct), Some(nullable), collation, prec, scale, max] =
                r.as_slice()
            else {
                continue;
            };
            if s != schema || t != table {
                continue;
            }
            let dt = dt.to_ascii_lowercase();
            let unsigned = ct.to_ascii_lowercase().contains("unsigned");
            let int = |bits: u32| {
                if unsigned {
                    (Family::UInt(bits), Some("UNSIGNED".to_owned()))
                } else {
                    (Family::Int(bits), Some("SIGNED".to_owned()))
                }
            };
            let (family, cast) = match dt.as_str() {
                "tinyint" => int(8),
                "smallint" => int(16),
                "mediumint" => int(24),
                "int" | "integer" => int(32),
                "bigint" => int(64),
                "decimal" | "numeric" => {
                    // Digits only: they are spliced into the CAST.
                    let digits =
                        |x: &Option<String>| x.as_deref().and_then(|v| v.parse::<u32>().ok());
                    let cast = match (digits(prec), digits(scale)) {
                        (Some(p), Some(s)) => Some(format!("DECIMAL({p},{s})")),
                        _ => None,
                    };
                    (Family::Numeric, cast)
                }
                "float" | "double" | "real" => (Family::Numeric, None),
                "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" => {
                    (Family::Text, None)
                }
                "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => {
                    (Family::Bytes, None)
                }
                "uuid" => (Family::Uuid, None),
                _ => (Family::Other, None),
            };
            columns.push(Column {
                name: name.clone(),
                q: quote_my(name),
                cast,
                family,
                not_null: nullable == "NO",
                max_chars: (family == Family::Text)
                    .then(|| max.as_deref().and_then(|m| m.parse().ok()))
                    .flatten(),
                date: matches!(dt.as_str(), "date" | "datetime" | "timestamp"),
                my_type: dt,
                my_collation: collation.clone(),
            });
        }
        if columns.is_empty() {
            return Ok(None);
        }
        let pk: Vec<String> = self
            .catalog_rows(
                tx,
                "SELECT CAST(TABLE_SCHEMA AS CHAR), CAST(TABLE_NAME AS CHAR), CAST(COLUMN_NAME AS CHAR) \
                 FROM information_schema.KEY_COLUMN_USAGE \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' \
                 ORDER BY ORDINAL_POSITION",
                &binds,
            )
            .await?
            .into_iter()
            .filter_map(|r| match r.as_slice() {
                [Some(s), Some(t), Some(c)] if s == schema && t == table => Some(c.clone()),
                _ => None,
            })
            .collect();
        // Functional indexes (MySQL 8) have no column: left out. A unique
        // index of one column also forbids shared placeholders.
        let mut leads = Vec::new();
        let mut unique = Vec::new();
        for r in self
            .catalog_rows(
                tx,
                "SELECT CAST(s.TABLE_SCHEMA AS CHAR), CAST(s.TABLE_NAME AS CHAR), \
                 CAST(s.COLUMN_NAME AS CHAR), CAST(s.NON_UNIQUE AS CHAR), \
                 CAST((SELECT COUNT(*) FROM information_schema.STATISTICS k \
                  WHERE k.TABLE_SCHEMA = s.TABLE_SCHEMA AND k.TABLE_NAME = s.TABLE_NAME \
                  AND k.INDEX_NAME = s.INDEX_NAME) AS CHAR) \
                 FROM information_schema.STATISTICS s \
                 WHERE s.TABLE_SCHEMA = ? AND s.TABLE_NAME = ? AND s.SEQ_IN_INDEX = 1 \
                 AND s.INDEX_TYPE IN ('BTREE', 'HASH')",
                &binds,
            )
            .await?
        {
            let [Some(s), Some(t), Some(c), Some(non_unique), Some(keys)] = r.as_slice() else {
                continue;
            };
            if s != schema || t != table {
                continue;
            }
            if non_unique == "0" && keys == "1" {
                unique.push(c.clone());
            }
            leads.push(Lead::Column(c.clone()));
        }
        // No row id in MySQL: without a primary key, every column's value.
        let by_value = pk.is_empty();
        let loc = if by_value {
            columns.clone()
        } else {
            key_columns(&pk, &columns)
        };
        let name = if self.my_schema.as_ref() == Some(schema) {
            table.clone()
        } else {
            format!("{schema}.{table}")
        };
        Ok(Some(Table {
            name,
            q: format!("{}.{}", quote_my(schema), quote_my(table)),
            columns,
            pk,
            loc,
            by_value,
            leads,
            unique,
        }))
    }

    /// Foreign keys referencing the mapped tables (`keys[i]` is table `i`),
    /// with the tables of their children.
    pub(super) async fn my_fks(
        &mut self,
        tx: &mut Tx,
        keys: Vec<(String, String)>,
    ) -> Result<(), ConnectorError> {
        let schemas: Vec<String> = keys
            .iter()
            .map(|(s, _)| s.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if schemas.is_empty() {
            return Ok(());
        }
        let list = vec!["?"; schemas.len()].join(", ");
        let rows = self
            .catalog_rows(
                tx,
                &format!(
                    "SELECT CAST(k.TABLE_SCHEMA AS CHAR), CAST(k.TABLE_NAME AS CHAR), \
                     CAST(k.CONSTRAINT_NAME AS CHAR), CAST(k.COLUMN_NAME AS CHAR), \
                     CAST(k.REFERENCED_TABLE_SCHEMA AS CHAR), CAST(k.REFERENCED_TABLE_NAME AS CHAR), \
                     CAST(k.REFERENCED_COLUMN_NAME AS CHAR), CAST(r.DELETE_RULE AS CHAR) \
                     FROM information_schema.KEY_COLUMN_USAGE k \
                     JOIN information_schema.REFERENTIAL_CONSTRAINTS r \
                     ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA \
                     AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME AND r.TABLE_NAME = k.TABLE_NAME \
                     WHERE k.REFERENCED_TABLE_SCHEMA IN ({list}) AND k.REFERENCED_TABLE_NAME IS NOT NULL \
                     ORDER BY k.TABLE_SCHEMA, k.TABLE_NAME, k.CONSTRAINT_NAME, k.ORDINAL_POSITION"
                ),
                &schemas,
            )
            .await?;
        // The columns of each constraint, in order.
        let mut groups: BTreeMap<(String, String, String), Vec<Cells>> = BTreeMap::new();
        for r in rows {
            let key = match r.as_slice() {
                [Some(s), Some(t), Some(c), ..] => (s.clone(), t.clone(), c.clone()),
                _ => continue,
            };
            groups.entry(key).or_default().push(r);
        }
        let mut index: HashMap<(String, String), usize> =
            keys.into_iter().enumerate().map(|(i, k)| (k, i)).collect();
        for ((cs, ct, name), cols) in groups {
            let [r] = cols.as_slice() else {
                tracing::warn!(system = %self.system.id, constraint = %name, "multi-column foreign key not followed");
                continue;
            };
            let [_, _, _, Some(ccol), Some(ps), Some(pt), Some(pcol), Some(rule)] = r.as_slice()
            else {
                continue;
            };
            // Parents are mapped tables only (unmapped children join later).
            let n_mapped = self.system.datasets.len();
            let Some(&p) = index
                .get(&(ps.clone(), pt.clone()))
                .filter(|&&p| p < n_mapped)
            else {
                continue;
            };
            let child = (cs, ct);
            let c = match index.get(&child) {
                Some(&c) => c,
                None => {
                    let Some(t) = self.my_table(tx, &child).await? else {
                        continue;
                    };
                    self.tables.push(t);
                    let i = self.tables.len() - 1;
                    index.insert(child, i);
                    i
                }
            };
            self.fks.push(Fk {
                name,
                child: c,
                child_col: ccol.clone(),
                parent: p,
                parent_col: pcol.clone(),
                on_delete: rule.to_ascii_lowercase(),
            });
        }
        Ok(())
    }
}
