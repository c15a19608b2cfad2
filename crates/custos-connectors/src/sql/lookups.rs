//! Which lookups of a request the database answers from an index, and the
//! index to add for each one that would read its whole table; and what the
//! catalog shows an erasure would fail on. What `custos map check
//! --connect` and the dry-run plan report.
//!
//! Invariants: a lookup counts as indexed only when an index leads with
//! exactly what the condition compares (`lower(col)` for emails on
//! PostgreSQL and SQLite, the column otherwise; see `dialect`); the advice
//! names tables and columns, never a value; nothing here changes the
//! database.

use std::collections::{BTreeMap, BTreeSet};

use custos_map::{ErasureStrategy, IdentityKind};
use serde::Serialize;

use super::catalog::{Column, Lead, Table};
use super::dialect::{quote, quote_my, Mode};
use super::erase::row_strategy;
use super::find::Row;
use super::pool::Engine;
use super::SqlConnector;

/// A lookup that reads its whole table: on a large table every request
/// pays for it. Names what it is for and the index that serves it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Scan {
    /// The dataset of the map whose table it is; `None` for a table
    /// outside the map that references one of it.
    pub dataset: Option<String>,
    /// The table, as the map names it (or the catalog, for a table outside
    /// the map that references one of it).
    pub table: String,
    /// The column looked up.
    pub column: String,
    /// What the lookup is for: `identity email`, `via customer.id`,
    /// `foreign key fk_order_customer (erasure)`.
    pub lookup: String,
    /// The statement that adds a serving index, or why none can serve.
    pub fix: String,
}

/// One thing the catalog shows about a dataset (or field) of the map.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The dataset of the map, if it is about one.
    pub dataset: Option<String>,
    /// The field, if it is about one.
    pub field: Option<String>,
    /// What is wrong and how to fix it; names, never values.
    pub message: String,
}

/// What the catalog shows of a map, without touching a row.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Inspection {
    /// Every lookup that would scan.
    pub scans: Vec<Scan>,
    /// Erasures that would fail, each naming the column and fix (one per
    /// field).
    pub refusals: Vec<Finding>,
    /// Placeholders that do not fit their column: NULL (or, NOT NULL, a
    /// per-row token or keyed value) is written instead of what the map says.
    pub unfit: Vec<Finding>,
    /// Foreign keys of the database the map does not declare: between two
    /// of its datasets (a path to the person the map may be missing), or
    /// from a table outside the map (rows an erasure keeps as placeholders,
    /// perhaps personal data nobody mapped).
    pub undeclared: Vec<Finding>,
}

impl SqlConnector {
    /// Every lookup a request makes that no index serves: the person's
    /// identity columns, each `via`/`referenced_by` link, and (erasure) the
    /// columns of foreign keys that reference a mapped table.
    pub fn scans(&self) -> Vec<Scan> {
        let mut out = BTreeSet::new();
        for ds in &self.datasets {
            let (Some(t), Some(d)) = (self.tables.get(ds.map), self.map_dataset(ds)) else {
                continue;
            };
            for (name, kind, _) in &ds.idents {
                let mode = Mode::Person {
                    fold_case: *kind == IdentityKind::Email,
                };
                let lookup = format!("identity {}", kind.key());
                out.extend(self.scan_of(t, Some(d.id.as_str()), name, mode, lookup));
            }
            for link in &ds.links {
                let from = self
                    .system
                    .datasets
                    .get(link.from)
                    .map_or("?", |x| x.id.as_str());
                let lookup = format!("link from {from}.{} (dataset {})", link.from_col, d.id);
                out.extend(self.scan_of(t, Some(d.id.as_str()), &link.col, Mode::Keys, lookup));
            }
        }
        for fk in &self.fks {
            let Some(t) = self.tables.get(fk.child) else {
                continue;
            };
            let lookup = format!("foreign key {} (erasure)", fk.name);
            let dataset = self.system.datasets.get(fk.child).map(|d| d.id.as_str());
            out.extend(self.scan_of(t, dataset, &fk.child_col, Mode::Keys, lookup));
        }
        // One entry per table and column: the first reason is enough.
        let mut seen = BTreeMap::new();
        for s in out {
            seen.entry((s.table.clone(), s.column.clone())).or_insert(s);
        }
        seen.into_values().collect()
    }

    fn scan_of(
        &self,
        t: &Table,
        dataset: Option<&str>,
        name: &str,
        mode: Mode,
        lookup: String,
    ) -> Option<Scan> {
        let col = t.col(name)?;
        let fix = match self.index_for(col, mode) {
            Some(lead) if t.leads.iter().any(|l| same_lead(l, &lead)) => return None,
            Some(lead) => self.create_index(t, col, &lead),
            None => format!(
                "no index can serve it: the column's type or collation ({}) is converted \
                 before it is compared; store it as utf8mb4 text",
                col.my_collation.as_deref().unwrap_or("not utf8mb4")
            ),
        };
        Some(Scan {
            dataset: dataset.map(str::to_owned),
            table: t.name.clone(),
            column: col.name.clone(),
            lookup,
            fix,
        })
    }

    fn create_index(&self, t: &Table, col: &Column, lead: &Lead) -> String {
        let bare = t.name.rsplit('.').next().unwrap_or(&t.name);
        let (key, suffix) = match lead {
            Lead::Lower(_) if self.engine == Engine::Pg && col.cast.is_some() => {
                (format!("lower(CAST({} AS text))", col.q), "_lower")
            }
            Lead::Lower(_) => (format!("lower({})", col.q), "_lower"),
            Lead::Column(_) => (col.q.clone(), ""),
        };
        let index_name = index_name(&format!("{bare}_{}{suffix}_idx", col.name));
        let q = match self.engine {
            Engine::My => quote_my(&index_name),
            _ => quote(&index_name),
        };
        format!("CREATE INDEX {q} ON {} ({key});", t.q)
    }

    /// What the catalog shows an erasure would fail on, one finding per
    /// field: in a dataset whose rows stay (anonymized, or retained with
    /// fields that are), a NOT NULL text column too short for any
    /// placeholder, a NOT NULL column of a type no placeholder is made for
    /// (or whose placeholder is not of its type), one fixed placeholder for
    /// a unique column. Checked on a row of NULLs, the case that needs a
    /// placeholder in every such column.
    pub fn refusals(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        for (di, ds) in self.datasets.iter().enumerate() {
            let (Some(t), Some(d)) = (self.tables.get(ds.map), self.map_dataset(ds)) else {
                continue;
            };
            // Rows to delete need a placeholder only when something still
            // references them, which the catalog cannot tell.
            if matches!(row_strategy(d), ErasureStrategy::Delete) {
                continue;
            }
            let row = Row {
                data: Default::default(),
                loc: t.loc.iter().map(|_| String::new()).collect(),
            };
            for f in &d.fields {
                if let Err(e) = self.anon_field(di, d, t, f, &row) {
                    out.push(Finding {
                        dataset: Some(d.id.to_string()),
                        field: Some(f.name.clone()),
                        message: e.to_string(),
                    });
                }
            }
        }
        out
    }

    /// See [`Inspection::undeclared`].
    pub fn undeclared(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        for fk in self.fks.iter().filter(|k| k.on_delete != "map") {
            let (Some(child), Some(parent)) =
                (self.tables.get(fk.child), self.tables.get(fk.parent))
            else {
                continue;
            };
            let target = format!("{}.{}", parent.name, fk.parent_col);
            match self.system.datasets.get(fk.child) {
                Some(d) => {
                    let declared = d.field(&fk.child_col).and_then(|f| f.references.as_ref());
                    let message = match declared {
                        None => format!(
                            "foreign key {} links {}.{} to {target}, which the map does not \
                             declare: add `references:` to field {} of dataset {} (and the \
                             link to its `subject:` if the rows are the person's)",
                            fk.name, child.name, fk.child_col, fk.child_col, d.id
                        ),
                        // The map names another target than the database.
                        Some(r)
                            if self.table_of_dataset(&r.dataset) != Some(fk.parent)
                                || r.field != fk.parent_col =>
                        {
                            format!(
                                "field {} of dataset {} references {r} in the map, but the \
                                 database's foreign key {} links it to {target}: make the map \
                                 say what the database does",
                                fk.child_col, d.id, fk.name
                            )
                        }
                        Some(_) => continue,
                    };
                    out.push(Finding {
                        dataset: Some(d.id.to_string()),
                        field: Some(fk.child_col.clone()),
                        message,
                    });
                }
                None => out.push(Finding {
                    dataset: None,
                    field: None,
                    message: format!(
                        "table {} is not in the map but references {target} (foreign key {}, \
                         on delete {}): an erasure keeps referenced rows as placeholders; map \
                         the table if it holds personal data",
                        child.name, fk.name, fk.on_delete
                    ),
                }),
            }
        }
        out
    }

    /// Every finding of the catalog together.
    pub fn inspect(&self) -> Inspection {
        Inspection {
            scans: self.scans(),
            refusals: self.refusals(),
            unfit: self.unfit_placeholders(),
            undeclared: self.undeclared(),
        }
    }
}

/// PostgreSQL cuts names at 63 bytes, MySQL refuses more than 64: a long
/// name keeps its first 50 bytes and gets 8 hex digits of a hash of the
/// whole, so two long names that share a beginning stay apart.
fn index_name(full: &str) -> String {
    const MAX: usize = 60;
    if full.len() <= MAX {
        return full.to_owned();
    }
    let mut cut = 50;
    while !full.is_char_boundary(cut) {
        cut -= 1;
    }
    let digest = <sha2::Sha256 as sha2::Digest>::digest(full.as_bytes());
    format!(
        "{}_{}",
        full.get(..cut).unwrap_or_default(),
        hex::encode(digest.get(..4).unwrap_or_default())
    )
}

/// Whether an index lead serves a lookup; names compare without regard to
/// case (SQLite's and MySQL's do; PostgreSQL's differ by case only when
/// quoted, which no real schema does twice).
fn same_lead(have: &Lead, need: &Lead) -> bool {
    match (have, need) {
        (Lead::Column(a), Lead::Column(b)) | (Lead::Lower(a), Lead::Lower(b)) => {
            a.eq_ignore_ascii_case(b)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::super::catalog::Lead;

    #[test]
    fn long_index_names_fit_and_stay_apart() {
        let t = "customer_loyalty_programme_membership_history_records_2024_q1";
        let a = super::index_name(&format!("{t}_created_by_idx"));
        let b = super::index_name(&format!("{t}_customer_id_idx"));
        assert!(a.len() <= 60 && b.len() <= 60, "{a} {b}");
        assert_ne!(a, b);
        assert_eq!(super::index_name("users_email_idx"), "users_email_idx");
    }

    #[test]
    fn index_keys_are_read_as_the_lookups_compare_them() {
        let cases = [
            ("email", Some(Lead::Column("email".into()))),
            ("\"E mail\"", Some(Lead::Column("E mail".into()))),
            ("`email`", Some(Lead::Column("email".into()))),
            ("lower((email)::text)", Some(Lead::Lower("email".into()))),
            ("lower(email::text)", Some(Lead::Lower("email".into()))),
            ("LOWER(\"Email\")", Some(Lead::Lower("Email".into()))),
            ("lower(email)", Some(Lead::Lower("email".into()))),
            ("upper(email)", None),
            ("(email || name)", None),
            ("", None),
        ];
        for (def, want) in cases {
            assert_eq!(Lead::parse(def), want, "{def}");
        }
    }
}
