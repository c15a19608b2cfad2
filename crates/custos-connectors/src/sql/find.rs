//! Finding the person's rows: by the values of their identities in each
//! dataset's `identity:` columns (emails case-insensitively; an opaque id
//! only by the values of its own namespace), then through every `via` and
//! `referenced_by` link from rows already found, dataset by
//! dataset in the order the catalog worked out.
//!
//! Invariants: the person's values are only ever bound (`IN` lists cut into
//! chunks of `CHUNK`), and values that cannot be of a column's type are
//! dropped first; a row is found once per dataset however many values
//! match it (only rows equal in every column of a MySQL table without a
//! key, which share their locator, each count); with `lock`, rows are
//! locked for the erasure that follows in the same transaction.

use std::collections::{BTreeSet, HashSet};

use custos_map::IdentityKind;
use serde_json::Value;

use super::catalog::{Column, Table};
use super::dialect::Mode;
use super::pool::Tx;
use super::{SqlConnector, CHUNK};
use crate::{ConnectorError, Person, Record};

/// One row found: its JSON and its locator (text values). Personal data:
/// `Debug` shows how many fields, never a value or key.
#[derive(Clone)]
pub(super) struct Row {
    pub(super) data: Record,
    pub(super) loc: Vec<String>,
}

impl std::fmt::Debug for Row {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Row")
            .field("fields", &self.data.len())
            .finish_non_exhaustive()
    }
}

/// A JSON value as the text to bind for it: numbers in decimal, strings as
/// they are, NULL as nothing.
pub(super) fn json_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        other => Some(other.to_string()),
    }
}

/// The distinct non-null values of a column in rows, as bind texts.
fn key_values(rows: &[Row], col: &str) -> Vec<String> {
    rows.iter()
        .filter_map(|r| json_text(r.data.get(col)))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

impl SqlConnector {
    /// Rows of `t` whose `col` is among `values`, chunked; with `tenant`,
    /// only those whose tenant column holds the tenant's value.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn fetch_in(
        &self,
        tx: &mut Tx,
        t: &Table,
        col: &Column,
        values: &[String],
        mode: Mode,
        lock: bool,
        tenant: Option<(&Column, &str)>,
        out: &mut Vec<Row>,
        seen: &mut HashSet<Vec<String>>,
    ) -> Result<(), ConnectorError> {
        let values: Vec<String> = values
            .iter()
            .filter(|v| self.admissible(col, v, mode))
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        for chunk in values.chunks(CHUNK) {
            let (mut cond, mut binds) = self.in_cond(col, chunk, mode);
            if let Some((tcol, value)) = tenant {
                binds.push(value.to_owned());
                let p = self.value_expr(tcol, &self.ph(binds.len()));
                cond = format!("({cond}) AND {} = {p}", tcol.q);
            }
            let sql = self.select_sql(t, &cond, lock);
            let rows = tx
                .rows(&sql, &binds)
                .await
                .map_err(|e| self.db_err(&format!("reading {}", t.name), &e))?;
            // Rows seen by an earlier query are skipped; rows of this one
            // all count, even with equal locators (MySQL rows equal in every
            // column of a table without a key are distinct rows).
            let mut fresh = Vec::new();
            for cells in rows {
                let row = self.parse_row(t, cells)?;
                if !seen.contains(&row.loc) {
                    fresh.push(row);
                }
            }
            for row in fresh {
                seen.insert(row.loc.clone());
                out.push(row);
            }
        }
        Ok(())
    }

    /// The tenant column of dataset `di` and the tenant's value in it, when
    /// the connector is confined to one tenant and the dataset has one. A
    /// value the column's type cannot hold is a `Mismatch` naming the
    /// dataset and column (it would match nothing, or everything on MySQL).
    fn tenant_filter<'t>(
        &'t self,
        di: usize,
        t: &'t Table,
    ) -> Result<Option<(&'t Column, &'t str)>, ConnectorError> {
        let Some(value) = self.tenant_value.as_deref() else {
            return Ok(None);
        };
        let Some(name) = self
            .datasets
            .get(di)
            .and_then(|ds| self.map_dataset(ds))
            .and_then(|d| d.tenant_column.as_deref())
        else {
            return Ok(None);
        };
        let Some(col) = t.col(name) else {
            return Err(self.mismatch(format!(
                "tenant column {name} is not a column of table {}",
                t.name
            )));
        };
        if !self.admissible(col, value, Mode::Keys) {
            return Err(self.mismatch(format!(
                "the tenant's value does not fit tenant column {}.{name}",
                t.name
            )));
        }
        Ok(Some((col, value)))
    }

    /// The person's rows of every dataset (index = dataset index).
    pub(super) async fn resolve(
        &self,
        tx: &mut Tx,
        person: &Person,
        lock: bool,
    ) -> Result<Vec<Vec<Row>>, ConnectorError> {
        // A database shared by tenants is never read for no tenant: that
        // would look the person up in every tenant's rows.
        if !self.system.tenant_values.is_empty() && self.tenant_value.is_none() {
            return Err(ConnectorError::Config {
                system: self.system.id.clone(),
                message: "the database is shared by tenants (`tenant_values`): a request must \
                          be confined to its tenant's rows"
                    .to_owned(),
            });
        }
        let mut found: Vec<Vec<Row>> = self.datasets.iter().map(|_| Vec::new()).collect();
        for &di in &self.order {
            let (Some(ds), Some(t)) = (self.datasets.get(di), self.tables.get(di)) else {
                continue;
            };
            let mut rows = Vec::new();
            let mut seen = HashSet::new();
            let tenant = self.tenant_filter(di, t)?;
            // A dataset of a shared database without a tenant column is
            // reached only through links from rows already filtered.
            let by_identity = self.tenant_value.is_none() || tenant.is_some();
            for (name, kind, ns) in ds.idents.iter().filter(|_| by_identity) {
                let Some(col) = t.col(name) else { continue };
                let values: Vec<String> = person
                    .values_in(*kind, ns.as_deref())
                    .iter()
                    .map(|v| v.expose().clone())
                    .collect();
                let mode = Mode::Person {
                    fold_case: *kind == IdentityKind::Email,
                };
                self.fetch_in(
                    tx, t, col, &values, mode, lock, tenant, &mut rows, &mut seen,
                )
                .await?;
            }
            // Every path the map declares; a row found through several
            // counts once (`seen`).
            for link in &ds.links {
                let values = found
                    .get(link.from)
                    .map(|rs| key_values(rs, &link.from_col))
                    .unwrap_or_default();
                if let Some(col) = t.col(&link.col) {
                    self.fetch_in(
                        tx,
                        t,
                        col,
                        &values,
                        Mode::Keys,
                        lock,
                        tenant,
                        &mut rows,
                        &mut seen,
                    )
                    .await?;
                }
            }
            if let Some(slot) = found.get_mut(di) {
                *slot = rows;
            }
        }
        Ok(found)
    }
}
