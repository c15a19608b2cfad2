//! The schema as the database has it, read once at connect: tables and
//! their columns (with the type family that decides how values are bound
//! and compared), primary keys or row locators, and the references between
//! tables — foreign keys of the catalog and `references:` of the map. Then
//! the datasets of the map are checked against it and put in the order in
//! which their rows can be found (`via`/`referenced_by` links).
//!
//! Invariants: every table and column the map names exists, or connecting
//! fails with a `Mismatch` naming it; identifiers used later in SQL come
//! from here, quoted; only single-column references are followed (others
//! are logged by constraint name and skipped); links to another system are
//! out of reach and find nothing; a cycle of links is refused.

mod mysql;
mod postgres;
mod sqlite;

use std::collections::HashSet;

use custos_map::{FieldRef, IdentityKind, Location, SubjectLink, SystemId};

use super::pool::{Cells, Engine, Tx};
use super::SqlConnector;
use crate::ConnectorError;
use postgres::PgWhere;

/// What a column's values look like, to drop values that cannot be of its
/// type before they reach the database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Family {
    /// Signed integer of this many bits.
    Int(u32),
    /// Unsigned integer of this many bits (MySQL).
    UInt(u32),
    Numeric,
    Uuid,
    Bool,
    Text,
    /// Binary strings of MySQL, read and bound as hex.
    Bytes,
    Other,
}

/// Whether a text can be a value of a column of this family (PostgreSQL's
/// input rules, conservatively).
pub(super) fn fits(family: Family, v: &str) -> bool {
    let t = v.trim();
    match family {
        Family::Int(bits) => t.parse::<i64>().is_ok_and(|n| {
            bits >= 64 || {
                let lim = 1i64 << (bits.max(2) - 1);
                (-lim..lim).contains(&n)
            }
        }),
        Family::UInt(bits) => t
            .parse::<u64>()
            .is_ok_and(|n| bits >= 64 || n < (1u64 << bits)),
        Family::Bytes => t.len().is_multiple_of(2) && t.chars().all(|c| c.is_ascii_hexdigit()),
        Family::Numeric => t.parse::<f64>().is_ok_and(f64::is_finite),
        Family::Uuid => {
            let t = t
                .strip_prefix('{')
                .and_then(|x| x.strip_suffix('}'))
                .unwrap_or(t);
            let hex_ok = |s: &str| s.chars().all(|c| c.is_ascii_hexdigit());
            let parts: Vec<&str> = t.split('-').collect();
            match parts.as_slice() {
                [one] => one.len() == 32 && hex_ok(one),
                [a, b, c, d, e] => {
                    a.len() == 8
                        && b.len() == 4
                        && c.len() == 4
                        && d.len() == 4
                        && e.len() == 12
                        && parts.iter().all(|p| hex_ok(p))
                }
                _ => false,
            }
        }
        Family::Bool => matches!(
            t.to_ascii_lowercase().as_str(),
            "t" | "f" | "true" | "false" | "yes" | "no" | "on" | "off" | "1" | "0"
        ),
        Family::Text | Family::Other => true,
    }
}

#[derive(Clone, Debug)]
pub(super) struct Column {
    pub(super) name: String,
    /// Quoted identifier (or `ctid`/`rowid`).
    pub(super) q: String,
    /// Type to cast bound text to (a PostgreSQL type, or MySQL's
    /// `SIGNED`/`UNSIGNED`/`DECIMAL(p,s)`); `None` for text columns, on
    /// SQLite (column affinity converts) and where MySQL converts itself.
    pub(super) cast: Option<String>,
    pub(super) family: Family,
    pub(super) not_null: bool,
    /// The most characters a text column holds (`VARCHAR(20)` → 20), from
    /// the catalog; `None` when unbounded or not text. SQLite does not
    /// enforce it, but the declared length is honoured all the same.
    pub(super) max_chars: Option<u32>,
    /// Whether it holds dates or timestamps (a placeholder must look like
    /// `YYYY-MM-DD`).
    pub(super) date: bool,
    /// MySQL: the column's type (`DATA_TYPE`) and collation (text only),
    /// which decide how it is exported and compared. Empty elsewhere.
    pub(super) my_type: String,
    pub(super) my_collation: Option<String>,
}

impl Column {
    /// The pseudo-column that locates rows of a table without a primary
    /// key (`ctid` on PostgreSQL, `rowid` on SQLite): read, never changed.
    pub(super) fn row_id(name: &str, cast: Option<&str>, family: Family) -> Column {
        Column {
            name: name.to_owned(),
            q: name.to_owned(),
            cast: cast.map(str::to_owned),
            family,
            not_null: true,
            max_chars: None,
            date: false,
            my_type: String::new(),
            my_collation: None,
        }
    }
}

/// The columns of the primary key `pk`, in key order.
pub(super) fn key_columns(pk: &[String], columns: &[Column]) -> Vec<Column> {
    pk.iter()
        .filter_map(|p| columns.iter().find(|c| &c.name == p).cloned())
        .collect()
}

#[derive(Debug)]
pub(super) struct Table {
    /// The name for messages: as the map writes it, or `schema.table`.
    pub(super) name: String,
    /// Quoted, possibly schema-qualified.
    pub(super) q: String,
    pub(super) columns: Vec<Column>,
    /// Primary key columns from the catalog.
    pub(super) pk: Vec<String>,
    /// What identifies a row inside one transaction: the primary key, else
    /// `ctid` (PostgreSQL) or `rowid` (SQLite), else (MySQL) every column.
    pub(super) loc: Vec<Column>,
    /// Whether `loc` is every column's value (MySQL without a primary key):
    /// rows equal in every column share a locator.
    pub(super) by_value: bool,
    /// What each usable index of the table (primary key included; partial
    /// and invalid ones left out) leads with: a lookup is served by an
    /// index only through its first key.
    pub(super) leads: Vec<Lead>,
    /// Columns that a unique index or constraint of their own covers:
    /// no two rows may get the same placeholder there.
    pub(super) unique: Vec<String>,
}

/// The first key of an index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Lead {
    /// A column as it is.
    Column(String),
    /// `lower(column)`, what case-insensitive lookups of emails compare.
    Lower(String),
}

impl Lead {
    /// The lead of an index key written as SQL (`"email"`, `lower((email)::text)`,
    /// `LOWER("Email")`), or `None` for any other expression. Quotes,
    /// parentheses, casts to text and spaces are not part of the name.
    pub(super) fn parse(def: &str) -> Option<Lead> {
        let strip = |s: &str| -> Option<String> {
            let mut t = s.trim();
            loop {
                let before = t;
                t = t.trim();
                if let Some(x) = t.strip_suffix("::text") {
                    t = x;
                }
                if let Some(x) = t.strip_prefix('(').and_then(|x| x.strip_suffix(')')) {
                    t = x;
                }
                if t == before {
                    break;
                }
            }
            let name = if let Some(x) = t.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
                x.replace("\"\"", "\"")
            } else if let Some(x) = t.strip_prefix('`').and_then(|x| x.strip_suffix('`')) {
                x.replace("``", "`")
            } else if t
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '$')
                && !t.is_empty()
            {
                t.to_owned()
            } else {
                return None;
            };
            Some(name)
        };
        let t = def.trim();
        let lower = t
            .get(..6)
            .filter(|p| p.eq_ignore_ascii_case("lower("))
            .and_then(|_| t.get(6..))
            .and_then(|x| x.strip_suffix(')'));
        match lower {
            Some(inner) => strip(inner).map(Lead::Lower),
            None => strip(t).map(Lead::Column),
        }
    }
}

impl Table {
    pub(super) fn col(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    pub(super) fn is_unique(&self, col: &str) -> bool {
        self.unique.iter().any(|u| u.eq_ignore_ascii_case(col))
    }
}

/// A reference between tables: a foreign key of the catalog or a map
/// `references:` (only single-column ones).
#[derive(Debug)]
pub(super) struct Fk {
    pub(super) name: String,
    pub(super) child: usize,
    pub(super) child_col: String,
    pub(super) parent: usize,
    pub(super) parent_col: String,
    pub(super) on_delete: String,
}

/// "The rows of this dataset whose `col` is among the values of `from_col`
/// in the rows found in dataset `from`."
#[derive(Debug)]
pub(super) struct Link {
    pub(super) col: String,
    pub(super) from: usize,
    pub(super) from_col: String,
}

#[derive(Debug)]
pub(super) struct Ds {
    /// Index in `system.datasets`; also the index of its table.
    pub(super) map: usize,
    /// Identity columns: name, kind and namespace (`None`: the default).
    pub(super) idents: Vec<(String, IdentityKind, Option<String>)>,
    /// Every local link of the map's `subject:` (a row is the person's when
    /// it is found through any of them).
    pub(super) links: Vec<Link>,
    /// Which of `links` are `referenced_by` links: their rows may be shared
    /// with other people.
    pub(super) shared_links: Vec<usize>,
}

impl SqlConnector {
    pub(super) async fn load(
        &mut self,
        tx: &mut Tx,
        systems: &HashSet<SystemId>,
    ) -> Result<(), ConnectorError> {
        // Tables of the datasets, in map order (table index == dataset index).
        let mut names: Vec<String> = Vec::new();
        for d in &self.system.datasets {
            let Location::Table(name) = &d.location else {
                return Err(self.mismatch(format!("dataset {} is not a table", d.id)));
            };
            if names.iter().any(|n| n == name) {
                return Err(
                    self.mismatch(format!("table {name} is mapped by more than one dataset"))
                );
            }
            names.push(name.clone());
        }
        if self.engine == Engine::My {
            self.my_schema = self
                .catalog_rows(tx, "SELECT DATABASE()", &[])
                .await?
                .into_iter()
                .next()
                .and_then(|r| r.into_iter().next().flatten());
        }
        let mut oids: Vec<String> = Vec::new();
        let mut my_keys: Vec<(String, String)> = Vec::new();
        // Every missing table and column is named at once, so that one
        // `map check --connect` shows all there is to fix.
        let mut missing: Vec<String> = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let (table, oid) = match self.engine {
                Engine::Pg => self.pg_table(tx, PgWhere::Name(name)).await?,
                Engine::My => match self.my_find(tx, name).await? {
                    Some(key) => {
                        let t = self.my_table(tx, &key).await?;
                        my_keys.push(key);
                        (t, String::new())
                    }
                    None => (None, String::new()),
                },
                Engine::Lite => (self.lite_table(tx, name).await?, String::new()),
            };
            let Some(mut table) = table else {
                if self.engine == Engine::My && self.my_schema.is_none() && !name.contains('.') {
                    missing.push(format!(
                        "table {name} does not exist (the connection URL names no database)"
                    ));
                } else {
                    missing.push(format!("table {name} does not exist"));
                }
                continue;
            };
            table.name = name.clone();
            // Every field the map names must be a column.
            if let Some(d) = self.system.datasets.get(i) {
                for f in &d.fields {
                    if table.col(&f.name).is_none() {
                        missing.push(format!(
                            "table {} has no column {} (dataset {}, field {})",
                            table.name, f.name, d.id, f.name
                        ));
                    }
                }
            }
            self.tables.push(table);
            oids.push(oid);
        }
        if !missing.is_empty() {
            // One per line: a name may hold `;` (and `map check` splits here).
            return Err(self.mismatch(missing.join("\n")));
        }
        match self.engine {
            Engine::Pg => self.pg_fks(tx, &oids).await?,
            Engine::My => self.my_fks(tx, my_keys).await?,
            Engine::Lite => self.lite_fks(tx).await?,
        }
        self.map_fks(systems)?;
        self.build_datasets(systems)?;
        Ok(())
    }

    pub(super) fn table_of_dataset(&self, id: &custos_map::DatasetId) -> Option<usize> {
        self.system.datasets.iter().position(|d| &d.id == id)
    }

    /// Whether a reference stays inside this system; a reference naming an
    /// unknown system is a mismatch.
    fn local(&self, r: &FieldRef, systems: &HashSet<SystemId>) -> Result<bool, ConnectorError> {
        match &r.system {
            None => Ok(true),
            Some(s) if s == &self.system.id => Ok(true),
            Some(s) if systems.contains(s) => {
                tracing::debug!(system = %self.system.id, reference = %r, "link to another system: not followed by the SQL connector");
                Ok(false)
            }
            Some(_) => Err(self.mismatch(format!("reference {r} names an unknown system"))),
        }
    }

    /// The dataset index and checked column of a local reference.
    fn resolve_ref(&self, r: &FieldRef, at: &str) -> Result<usize, ConnectorError> {
        let Some(j) = self.table_of_dataset(&r.dataset) else {
            return Err(self.mismatch(format!("{at}: dataset {} is not in this system", r.dataset)));
        };
        let has = self
            .tables
            .get(j)
            .is_some_and(|t| t.col(&r.field).is_some());
        if !has {
            let t = self.tables.get(j).map_or("?", |t| t.name.as_str());
            return Err(self.mismatch(format!(
                "{at}: table {t} has no column {} (referenced as {r})",
                r.field
            )));
        }
        Ok(j)
    }

    fn map_fks(&mut self, systems: &HashSet<SystemId>) -> Result<(), ConnectorError> {
        let mut extra = Vec::new();
        for (i, d) in self.system.datasets.iter().enumerate() {
            for f in &d.fields {
                let Some(r) = &f.references else { continue };
                if !self.local(r, systems)? {
                    continue;
                }
                let j = self.resolve_ref(r, &format!("{}.{}", d.id, f.name))?;
                let dup = self.fks.iter().any(|k| {
                    k.child == i
                        && k.child_col == f.name
                        && k.parent == j
                        && k.parent_col == r.field
                });
                if !dup {
                    extra.push(Fk {
                        name: format!("map {}.{}", d.id, f.name),
                        child: i,
                        child_col: f.name.clone(),
                        parent: j,
                        parent_col: r.field.clone(),
                        on_delete: "map".to_owned(),
                    });
                }
            }
        }
        self.fks.extend(extra);
        Ok(())
    }

    fn build_datasets(&mut self, systems: &HashSet<SystemId>) -> Result<(), ConnectorError> {
        let mut out = Vec::new();
        for (i, d) in self.system.datasets.iter().enumerate() {
            let idents: Vec<(String, IdentityKind, Option<String>)> = d
                .fields
                .iter()
                .filter_map(|f| {
                    f.identity
                        .map(|k| (f.name.clone(), k, f.identity_namespace.clone()))
                })
                .collect();
            let mut links = Vec::new();
            let mut shared_links = Vec::new();
            for subject in &d.subject {
                let link = match subject {
                    SubjectLink::Identity(f) => {
                        if !idents.iter().any(|(n, _, _)| n == f) {
                            return Err(self.mismatch(format!(
                                "dataset {}: subject field {f} declares no `identity:` kind",
                                d.id
                            )));
                        }
                        None
                    }
                    SubjectLink::Via(f) => {
                        let Some(r) = d.field(f).and_then(|x| x.references.as_ref()) else {
                            return Err(self.mismatch(format!(
                                "dataset {}: `via` field {f} references nothing",
                                d.id
                            )));
                        };
                        if self.local(r, systems)? {
                            let from = self.resolve_ref(r, &format!("{}.{f}", d.id))?;
                            Some(Link {
                                col: f.clone(),
                                from,
                                from_col: r.field.clone(),
                            })
                        } else {
                            None
                        }
                    }
                    SubjectLink::ReferencedBy(r) => {
                        if self.local(r, systems)? {
                            let from = self.resolve_ref(r, &format!("{}.subject", d.id))?;
                            // Which column of ours the referring field names: its
                            // `references:` if it points here, else our key.
                            let referring = self
                                .system
                                .datasets
                                .get(from)
                                .and_then(|x| x.field(&r.field))
                                .and_then(|x| x.references.as_ref())
                                .filter(|x| {
                                    x.dataset == d.id && self.local(x, systems).unwrap_or(false)
                                })
                                .map(|x| x.field.clone());
                            let table = self.tables.get(i);
                            let col = referring
                                .or_else(|| {
                                    d.fields
                                        .iter()
                                        .find(|f| f.primary_key)
                                        .map(|f| f.name.clone())
                                })
                                .or_else(|| match table.map(|t| t.pk.as_slice()) {
                                    Some([one]) => Some(one.clone()),
                                    _ => None,
                                });
                            let Some(col) = col else {
                                return Err(self.mismatch(format!(
                                    "dataset {}: `referenced_by` needs a primary key",
                                    d.id
                                )));
                            };
                            if table.is_none_or(|t| t.col(&col).is_none()) {
                                return Err(self.mismatch(format!(
                                    "dataset {}: no column {col} for `referenced_by`",
                                    d.id
                                )));
                            }
                            shared_links.push(links.len());
                            Some(Link {
                                col,
                                from,
                                from_col: r.field.clone(),
                            })
                        } else {
                            None
                        }
                    }
                    _ => None,
                };
                links.extend(link);
            }
            out.push(Ds {
                map: i,
                idents,
                links,
                shared_links,
            });
        }
        self.check_shared_links(&out)?;
        // Dependency order (Kahn); a cycle cannot be resolved in one pass.
        let n = out.len();
        let mut done = vec![false; n];
        let mut order = Vec::with_capacity(n);
        while order.len() < n {
            let next = (0..n).find(|&i| {
                !done.get(i).copied().unwrap_or(true)
                    && out.get(i).is_some_and(|d| {
                        d.links
                            .iter()
                            .all(|l| done.get(l.from).copied().unwrap_or(false))
                    })
            });
            match next {
                Some(i) => {
                    if let Some(x) = done.get_mut(i) {
                        *x = true;
                    }
                    order.push(i);
                }
                None => {
                    let stuck: Vec<String> = (0..n)
                        .filter(|&i| !done.get(i).copied().unwrap_or(true))
                        .filter_map(|i| self.system.datasets.get(i).map(|d| d.id.to_string()))
                        .collect();
                    return Err(self.mismatch(format!(
                        "datasets {} reach the subject only through each other (a cycle of via/referenced_by)",
                        stuck.join(", ")
                    )));
                }
            }
        }
        self.datasets = out;
        self.order = order;
        Ok(())
    }

    /// In a database shared by tenants, a dataset without a tenant column
    /// is reached only through links; each must land on a key unique in the
    /// whole table (the parent's, for `via`; this dataset's own, for
    /// `referenced_by`), or a value of one tenant's row could match another
    /// tenant's rows (ids unique only per tenant).
    fn check_shared_links(&self, out: &[Ds]) -> Result<(), ConnectorError> {
        if self.system.tenant_values.is_empty() {
            return Ok(());
        }
        let unique = |table: usize, col: &str| {
            self.tables
                .get(table)
                .is_some_and(|t| t.pk.as_slice() == [col.to_owned()] || t.is_unique(col))
        };
        for ds in out {
            let Some(d) = self.system.datasets.get(ds.map) else {
                continue;
            };
            if d.tenant_column.is_some() {
                continue;
            }
            for (i, link) in ds.links.iter().enumerate() {
                let (table, col) = if ds.shared_links.contains(&i) {
                    (ds.map, link.col.as_str())
                } else {
                    (link.from, link.from_col.as_str())
                };
                if !unique(table, col) {
                    let name = self.tables.get(table).map_or("?", |t| t.name.as_str());
                    return Err(self.mismatch(format!(
                        "dataset {} of a database shared by tenants has no tenant_column and is \
                         reached through {name}.{col}, which is not unique in its table: another \
                         tenant's rows could match; give dataset {} a tenant_column",
                        d.id, d.id
                    )));
                }
            }
        }
        Ok(())
    }

    async fn catalog_rows(
        &self,
        tx: &mut Tx,
        sql: &str,
        binds: &[String],
    ) -> Result<Vec<Cells>, ConnectorError> {
        tx.rows(sql, binds)
            .await
            .map_err(|e| self.db_err("reading the catalog", &e))
    }
}
