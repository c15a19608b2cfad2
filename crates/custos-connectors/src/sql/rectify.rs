//! Rectification (Art. 16): the changed fields set on every row found of
//! the person, in one transaction.
//!
//! Invariants: primary keys are never rectified; a tenant column, a
//! map `references:` or a foreign key of the catalog is refused (a
//! `Mismatch`) before anything changes; a value the column's type
//! cannot hold (or holding NUL) is a `Mismatch` naming the dataset and
//! field, never the value; only rows whose value really differs are
//! updated and counted (on MySQL byte for byte, so a change of case counts
//! under a `_ci` collation too); only a missing value (JSON `null`) clears
//! the field: the text `"null"` is written as that text.

use super::catalog::{fits, Family};
use super::pool::Engine;
use super::{SqlConnector, CHUNK};
use crate::{ConnectorError, DatasetOutcome, FieldChange, Person};

impl SqlConnector {
    /// Sets the changed fields on every row of the person found; the body
    /// of [`Connector::rectify`](crate::Connector::rectify).
    pub(super) async fn rectify_rows(
        &self,
        person: &Person,
        changes: &[FieldChange],
    ) -> Result<Vec<DatasetOutcome>, ConnectorError> {
        // Keys and tenant columns are refused before anything changes.
        for (di, ds) in self.datasets.iter().enumerate() {
            let Some(d) = self.map_dataset(ds) else {
                continue;
            };
            for change in changes {
                let why = d.rectification_refusal(&change.field).or_else(|| {
                    self.fks
                        .iter()
                        .any(|k| k.child == di && k.child_col == change.field)
                        .then(|| {
                            format!(
                                "{} of dataset {} is a foreign key: a key is never rectified",
                                change.field, d.id
                            )
                        })
                });
                if let Some(why) = why {
                    return Err(self.mismatch(format!("rectifying: {why}")));
                }
            }
        }
        let mut tx = self.begin(true).await?;
        let found = self.resolve(&mut tx, person, true).await?;
        let mut out = Vec::new();
        for (di, rows) in found.iter().enumerate() {
            let (Some(ds), Some(t)) = (self.datasets.get(di), self.tables.get(di)) else {
                continue;
            };
            let Some(d) = self.map_dataset(ds) else {
                continue;
            };
            let mut o = DatasetOutcome::new(d.id.clone());
            o.found = rows.len() as u64;
            for change in changes {
                let Some(f) = d.field(&change.field) else {
                    continue;
                };
                if f.primary_key || t.pk.contains(&f.name) || rows.is_empty() {
                    continue;
                }
                let Some(col) = t.col(&f.name) else { continue };
                let value = change.value.as_ref().map(|v| v.expose().clone());
                if let Some(v) = &value {
                    if v.contains('\0') || !fits(col.family, v) {
                        return Err(self.mismatch(format!(
                            "rectifying {}.{}: the value does not fit the column's type",
                            d.id, f.name
                        )));
                    }
                }
                let locs: Vec<&Vec<String>> = rows.iter().map(|r| &r.loc).collect();
                for chunk in locs.chunks(CHUNK) {
                    let mut binds = Vec::new();
                    let (set, differs) = match &value {
                        None => (
                            format!("{} = NULL", col.q),
                            format!("{} IS NOT NULL", col.q),
                        ),
                        Some(v) => {
                            binds.push(v.clone());
                            let e = self.value_expr(col, &self.ph(1));
                            let differs = match self.engine {
                                Engine::Pg => format!("{} IS DISTINCT FROM {e}", col.q),
                                Engine::Lite => format!("{} IS NOT {e}", col.q),
                                // Byte for byte: a `_ci` collation would
                                // call a change of case no change.
                                Engine::My if col.family == Family::Text => format!(
                                    "NOT (CAST(CONVERT({} USING utf8mb4) AS BINARY) <=> CAST(? AS BINARY))",
                                    col.q
                                ),
                                Engine::My => format!("NOT ({} <=> {e})", col.q),
                            };
                            (format!("{} = {e}", col.q), differs)
                        }
                    };
                    let (cond, lb) = self.loc_cond(t, chunk, binds.len());
                    binds.extend(lb);
                    // MySQL binds in order of appearance: the value again.
                    if let (Engine::My, Some(v)) = (self.engine, &value) {
                        binds.push(v.clone());
                    }
                    let sql = format!("UPDATE {} SET {set} WHERE ({cond}) AND {differs}", t.q);
                    o.rectified += tx.exec(&sql, &binds).await.map_err(|e| {
                        self.write_err(&format!("rectifying {}", t.name), &[&col.name], &e)
                    })?;
                }
            }
            out.push(o);
        }
        tx.commit()
            .await
            .map_err(|e| self.db_err("committing the rectification", &e))?;
        Ok(out)
    }
}
