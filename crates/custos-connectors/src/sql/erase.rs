//! Erasure and its dry run: what each row found becomes (deleted,
//! anonymized, kept for its legal ground, or kept as a placeholder because
//! a row that stays still references it), then, when applying, the
//! anonymizing UPDATEs and the DELETEs in one transaction.
//!
//! Invariants: a row that rows which are not the person's reference
//! through one of its dataset's `referenced_by` links is also another
//! person's: it is neither deleted nor anonymised (`shared_rows: keep`);
//! a row is never deleted while a row that stays references it
//! (through a single-column foreign key of the catalog, whatever its ON
//! DELETE, or a map `references:`), so CASCADE never removes rows that
//! stay; UPDATEs run
//! before DELETEs, children before parents, and within a self-referencing
//! table the deepest rows first; counts come from the rows each statement
//! changed — never values; the dry run rolls back and changes nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use custos_map::{DataCategory, Dataset, ErasureStrategy, RetainSpec};

use super::dialect::Mode;
use super::find::{json_text, Row};
use super::pool::Tx;
use super::{SqlConnector, CHUNK};
use crate::{ConnectorError, DatasetOutcome, Person};

/// What erasure does to one row found.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Action {
    Delete,
    Anonymize,
    Keep,
    /// Was to be deleted but is still referenced: kept as a placeholder.
    Stay(BTreeSet<String>),
    /// Also another person's (rows not the person's reference it through a
    /// `referenced_by` link): kept untouched.
    Shared,
}

/// The ground of a row kept because it is also another person's.
const SHARED: &str = "shared with another person";

/// One row's action and, for rows that stay, its anonymizing changes.
#[derive(Clone, Debug)]
struct Planned {
    action: Action,
    /// Column → new value (`None` = NULL); only real changes.
    changes: BTreeMap<String, Option<String>>,
}

/// What erasure does to a row of the dataset, the fields' own erasures
/// included (they override the dataset's, as `docs/map.md` says): a row is
/// kept when the dataset or any personal field says `retain` (its other
/// fields then anonymized by their own strategy, or cleared where the
/// dataset says `delete`); else the dataset's `anonymize` keeps it
/// anonymized, and `delete` (or nothing) removes it. `shred` is returned
/// as is, for the caller to refuse.
pub(super) fn row_strategy(d: &Dataset) -> ErasureStrategy {
    match retain_specs(d).into_iter().next() {
        Some(r) => ErasureStrategy::Retain(r.clone()),
        None => d.erasure.clone().unwrap_or(ErasureStrategy::Delete),
    }
}

/// The `retain` erasures that keep the dataset's rows: the dataset's own,
/// else those of its personal fields.
fn retain_specs(d: &Dataset) -> Vec<&RetainSpec> {
    match &d.erasure {
        Some(ErasureStrategy::Retain(r)) => vec![r],
        Some(ErasureStrategy::Delete) | None => d
            .fields
            .iter()
            .filter(|f| f.category.iter().any(DataCategory::is_personal))
            .filter_map(|f| match &f.erasure {
                Some(ErasureStrategy::Retain(r)) => Some(r),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

impl SqlConnector {
    /// What erasure will do to every row found, without changing anything.
    async fn plan(
        &self,
        tx: &mut Tx,
        found: &[Vec<Row>],
    ) -> Result<Vec<Vec<Planned>>, ConnectorError> {
        let mut plan: Vec<Vec<Planned>> = Vec::with_capacity(found.len());
        for (di, rows) in found.iter().enumerate() {
            let Some(d) = self.datasets.get(di).and_then(|ds| self.map_dataset(ds)) else {
                plan.push(Vec::new());
                continue;
            };
            let strategy = row_strategy(d);
            let mut p = Vec::with_capacity(rows.len());
            for row in rows {
                p.push(match &strategy {
                    ErasureStrategy::Delete => Planned {
                        action: Action::Delete,
                        changes: BTreeMap::new(),
                    },
                    ErasureStrategy::Anonymize(_) => Planned {
                        action: Action::Anonymize,
                        changes: self.anon_changes(di, row)?,
                    },
                    // Kept for its ground; fields that override the
                    // dataset's erasure are anonymized all the same.
                    ErasureStrategy::Retain(_) => Planned {
                        action: Action::Keep,
                        changes: self.anon_changes(di, row)?,
                    },
                    _ => return Err(self.shred(d)),
                });
            }
            plan.push(p);
        }
        // Locators of the rows found, per dataset.
        let index: Vec<HashMap<&Vec<String>, usize>> = found
            .iter()
            .map(|rows| rows.iter().enumerate().map(|(i, r)| (&r.loc, i)).collect())
            .collect();
        self.keep_shared(tx, found, &index, &mut plan).await?;
        // Keep every row to be deleted that a staying row still references,
        // until nothing changes (a placeholder may itself keep a reference).
        loop {
            let mut demote: BTreeMap<(usize, usize), BTreeSet<String>> = BTreeMap::new();
            for fk in &self.fks {
                let pd = fk.parent;
                let (Some(prows), Some(pplan)) = (found.get(pd), plan.get(pd)) else {
                    continue;
                };
                let mut by_key: HashMap<String, Vec<usize>> = HashMap::new();
                for (ri, (row, p)) in prows.iter().zip(pplan).enumerate() {
                    if p.action == Action::Delete {
                        if let Some(k) = json_text(row.data.get(&fk.parent_col)) {
                            by_key.entry(k).or_default().push(ri);
                        }
                    }
                }
                if by_key.is_empty() {
                    continue;
                }
                let Some(ct) = self.tables.get(fk.child) else {
                    continue;
                };
                let Some(ccol) = ct.col(&fk.child_col) else {
                    continue;
                };
                let keys: Vec<String> = by_key.keys().cloned().collect();
                let mut children = Vec::new();
                let mut seen = HashSet::new();
                self.fetch_in(
                    tx,
                    ct,
                    ccol,
                    &keys,
                    Mode::Keys,
                    false,
                    None,
                    &mut children,
                    &mut seen,
                )
                .await?;
                for child in children {
                    let mine = index
                        .get(fk.child)
                        .and_then(|ix| ix.get(&child.loc))
                        .and_then(|&ri| plan.get(fk.child).and_then(|p| p.get(ri)));
                    let post = match mine {
                        Some(p) if p.action == Action::Delete => continue,
                        Some(p) => match p.changes.get(&fk.child_col) {
                            Some(new) => new.clone(),
                            None => json_text(child.data.get(&fk.child_col)),
                        },
                        None => json_text(child.data.get(&fk.child_col)),
                    };
                    let Some(post) = post else { continue };
                    if let Some(parents) = by_key.get(&post) {
                        tracing::debug!(system = %self.system.id, table = %ct.name, reference = %fk.name, on_delete = %fk.on_delete, "row kept: still referenced");
                        for &ri in parents {
                            demote
                                .entry((pd, ri))
                                .or_default()
                                .insert(format!("referenced by {}", ct.name));
                        }
                    }
                }
            }
            if demote.is_empty() {
                break;
            }
            for ((d, r), grounds) in demote {
                let Some(row) = found.get(d).and_then(|rows| rows.get(r)) else {
                    continue;
                };
                let changes = self.anon_changes(d, row)?;
                if let Some(p) = plan.get_mut(d).and_then(|p| p.get_mut(r)) {
                    *p = Planned {
                        action: Action::Stay(grounds),
                        changes,
                    };
                }
            }
        }
        Ok(plan)
    }

    /// Marks `Shared` every row of a dataset with `referenced_by` links that
    /// a row which is not the person's references through one of them (the
    /// person's shipping address that is another customer's home): the
    /// map's `shared_rows: keep`.
    async fn keep_shared(
        &self,
        tx: &mut Tx,
        found: &[Vec<Row>],
        index: &[HashMap<&Vec<String>, usize>],
        plan: &mut [Vec<Planned>],
    ) -> Result<(), ConnectorError> {
        for (di, ds) in self.datasets.iter().enumerate() {
            let Some(rows) = found.get(di).filter(|r| !r.is_empty()) else {
                continue;
            };
            for link in ds.shared_links.iter().filter_map(|&i| ds.links.get(i)) {
                let mut by_key: HashMap<String, Vec<usize>> = HashMap::new();
                for (ri, row) in rows.iter().enumerate() {
                    if let Some(k) = json_text(row.data.get(&link.col)) {
                        by_key.entry(k).or_default().push(ri);
                    }
                }
                let (Some(ft), false) = (self.tables.get(link.from), by_key.is_empty()) else {
                    continue;
                };
                let Some(fcol) = ft.col(&link.from_col) else {
                    continue;
                };
                let keys: Vec<String> = by_key.keys().cloned().collect();
                let mut referring = Vec::new();
                let mut seen = HashSet::new();
                self.fetch_in(
                    tx,
                    ft,
                    fcol,
                    &keys,
                    Mode::Keys,
                    false,
                    // Every tenant's rows: a row another tenant's person
                    // references is shared too.
                    None,
                    &mut referring,
                    &mut seen,
                )
                .await?;
                for r in referring {
                    let mine = index
                        .get(link.from)
                        .is_some_and(|ix| ix.contains_key(&r.loc));
                    if mine {
                        continue;
                    }
                    let Some(shared) =
                        json_text(r.data.get(&link.from_col)).and_then(|k| by_key.get(&k))
                    else {
                        continue;
                    };
                    for &ri in shared {
                        if let Some(p) = plan.get_mut(di).and_then(|p| p.get_mut(ri)) {
                            *p = Planned {
                                action: Action::Shared,
                                changes: BTreeMap::new(),
                            };
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Datasets with rows to delete, children before parents.
    fn delete_order(&self, plan: &[Vec<Planned>]) -> Vec<usize> {
        let mut left: Vec<usize> = (0..plan.len())
            .filter(|&i| {
                plan.get(i)
                    .is_some_and(|p| p.iter().any(|x| x.action == Action::Delete))
            })
            .collect();
        let mut order = Vec::new();
        while !left.is_empty() {
            // A dataset no remaining dataset references goes next.
            let pos = left.iter().position(|&p| {
                !self
                    .fks
                    .iter()
                    .any(|k| k.parent == p && k.child != p && left.contains(&k.child))
            });
            let i = pos.unwrap_or(0);
            if i < left.len() {
                order.push(left.remove(i));
            }
        }
        order
    }

    /// Rows of a dataset to delete, grouped so that rows referencing others
    /// of the group (self-references) go first.
    fn delete_levels(&self, di: usize, rows: &[Row], plan: &[Planned]) -> Vec<Vec<usize>> {
        let del: Vec<usize> = plan
            .iter()
            .enumerate()
            .filter(|(_, p)| p.action == Action::Delete)
            .map(|(i, _)| i)
            .collect();
        let mut edges: Vec<(usize, usize)> = Vec::new();
        for fk in self.fks.iter().filter(|k| k.child == di && k.parent == di) {
            let by_key: HashMap<String, usize> = del
                .iter()
                .filter_map(|&i| json_text(rows.get(i)?.data.get(&fk.parent_col)).map(|k| (k, i)))
                .collect();
            for &c in &del {
                let v = rows
                    .get(c)
                    .and_then(|r| json_text(r.data.get(&fk.child_col)));
                if let Some(&p) = v.and_then(|v| by_key.get(&v)) {
                    if p != c {
                        edges.push((c, p));
                    }
                }
            }
        }
        let mut level: HashMap<usize, usize> = del.iter().map(|&i| (i, 0)).collect();
        for _ in 0..del.len() {
            let mut changed = false;
            for &(c, p) in &edges {
                let lc = level.get(&c).copied().unwrap_or(0);
                let lp = level.get(&p).copied().unwrap_or(0);
                if lp < lc + 1 && lc < del.len() {
                    level.insert(p, lc + 1);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for &i in &del {
            groups
                .entry(level.get(&i).copied().unwrap_or(0))
                .or_default()
                .push(i);
        }
        groups.into_values().collect()
    }

    pub(super) async fn erase_or_plan(
        &self,
        person: &Person,
        apply: bool,
    ) -> Result<Vec<DatasetOutcome>, ConnectorError> {
        let mut tx = self.begin(apply).await?;
        let found = self.resolve(&mut tx, person, apply).await?;
        let plan = self.plan(&mut tx, &found).await?;
        let mut out: Vec<DatasetOutcome> = self
            .system
            .datasets
            .iter()
            .zip(&found)
            .map(|(d, rows)| {
                let mut o = DatasetOutcome::new(d.id.clone());
                o.found = rows.len() as u64;
                o
            })
            .collect();
        // Retained rows and their grounds; planned counts.
        for (di, (p, o)) in plan.iter().zip(out.iter_mut()).enumerate() {
            let mut grounds: BTreeSet<String> = BTreeSet::new();
            let mut until: BTreeSet<String> = BTreeSet::new();
            let mut fields: BTreeSet<&String> = BTreeSet::new();
            let kept = self
                .datasets
                .get(di)
                .and_then(|ds| self.map_dataset(ds))
                .map(retain_specs)
                .unwrap_or_default();
            for x in p {
                fields.extend(x.changes.keys());
                match &x.action {
                    Action::Keep => {
                        o.retained += 1;
                        for r in &kept {
                            grounds.insert(r.ground.clone());
                            until.insert(r.retention.to_string());
                        }
                    }
                    Action::Stay(g) => {
                        o.retained += 1;
                        grounds.extend(g.iter().cloned());
                    }
                    Action::Shared => {
                        o.retained += 1;
                        o.shared += 1;
                        grounds.insert(SHARED.to_owned());
                    }
                    Action::Delete if !apply => o.deleted += 1,
                    Action::Anonymize if !apply && !x.changes.is_empty() => o.anonymized += 1,
                    _ => {}
                }
            }
            if !grounds.is_empty() {
                o.retained_ground = Some(grounds.into_iter().collect::<Vec<_>>().join("; "));
            }
            if !until.is_empty() {
                o.retained_until = Some(until.into_iter().collect::<Vec<_>>().join("; "));
            }
            o.anonymized_fields = fields.into_iter().cloned().collect();
        }
        if !apply {
            let _ = tx.rollback().await;
            return Ok(out);
        }
        // 1. Anonymizing updates (they may release parents to delete).
        type Group = (usize, bool, Vec<(String, Option<String>)>);
        let mut groups: BTreeMap<Group, Vec<&Vec<String>>> = BTreeMap::new();
        for (di, (rows, p)) in found.iter().zip(&plan).enumerate() {
            for (row, x) in rows.iter().zip(p) {
                if x.changes.is_empty() {
                    continue;
                }
                let counted = match x.action {
                    Action::Anonymize => true,
                    Action::Stay(_) | Action::Keep => false,
                    Action::Delete | Action::Shared => continue,
                };
                let ch: Vec<(String, Option<String>)> = x
                    .changes
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                groups.entry((di, counted, ch)).or_default().push(&row.loc);
            }
        }
        for ((di, counted, ch), locs) in groups {
            let Some(t) = self.tables.get(di) else {
                continue;
            };
            for chunk in locs.chunks(CHUNK) {
                let mut binds = Vec::new();
                let mut sets = Vec::new();
                for (name, v) in &ch {
                    let Some(col) = t.col(name) else { continue };
                    match v {
                        None => sets.push(format!("{} = NULL", col.q)),
                        Some(v) => {
                            binds.push(v.clone());
                            let p = self.ph(binds.len());
                            sets.push(format!("{} = {}", col.q, self.value_expr(col, &p)));
                        }
                    }
                }
                let (cond, lb) = self.loc_cond(t, chunk, binds.len());
                binds.extend(lb);
                let sql = format!("UPDATE {} SET {} WHERE {cond}", t.q, sets.join(", "));
                let n = tx.exec(&sql, &binds).await.map_err(|e| {
                    let cols: Vec<&str> = ch.iter().map(|(c, _)| c.as_str()).collect();
                    self.write_err(&format!("anonymizing {}", t.name), &cols, &e)
                })?;
                if counted {
                    if let Some(o) = out.get_mut(di) {
                        o.anonymized += n;
                    }
                }
            }
        }
        // 2. Deletes, children first, deepest self-references first.
        for di in self.delete_order(&plan) {
            let (Some(t), Some(rows), Some(p)) = (self.tables.get(di), found.get(di), plan.get(di))
            else {
                continue;
            };
            for group in self.delete_levels(di, rows, p) {
                let locs: Vec<&Vec<String>> = group
                    .iter()
                    .filter_map(|&i| rows.get(i).map(|r| &r.loc))
                    .collect();
                for chunk in locs.chunks(CHUNK) {
                    let (cond, binds) = self.loc_cond(t, chunk, 0);
                    let sql = format!("DELETE FROM {} WHERE {cond}", t.q);
                    let n = tx.exec(&sql, &binds).await.map_err(|e| {
                        self.write_err(&format!("deleting from {}", t.name), &[], &e)
                    })?;
                    if let Some(o) = out.get_mut(di) {
                        o.deleted += n;
                    }
                }
            }
        }
        tx.commit()
            .await
            .map_err(|e| self.db_err("committing the erasure", &e))?;
        for o in &out {
            tracing::debug!(system = %self.system.id, dataset = %o.dataset, found = o.found, deleted = o.deleted, anonymized = o.anonymized, retained = o.retained, "erased");
        }
        Ok(out)
    }
}
