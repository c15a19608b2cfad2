//! The SQL connector: an application's PostgreSQL, MySQL/MariaDB or SQLite
//! database.
//!
//! One [`SqlConnector`] per `postgres`/`mysql`/`sqlite` system of the map.
//! At connect it reads the real schema from the catalog (columns, primary
//! keys, foreign keys; `information_schema` on MySQL) and refuses a map
//! that names a table or column the database lacks. Every request then
//! works in one transaction:
//!
//! * **Finding rows.** A row belongs to the person when one of its
//!   `identity:` fields holds one of the person's values of that kind (and,
//!   for an opaque `user_id`, of that field's namespace), or through any of
//!   the dataset's `subject` links (`via` a reference to rows already
//!   found, `referenced_by` a field of rows already found), each row once.
//!   Datasets are resolved in dependency order, after every dataset they
//!   link to; a cycle of links is a `Mismatch`. Links
//!   to another system (`system.dataset.field`) are out of this connector's
//!   reach and find nothing here.
//! * **Values are bound, never spliced.** Identifiers come from the map,
//!   are checked against the catalog and quoted (`"…"`, backticks on
//!   MySQL). On PostgreSQL and MySQL every value is bound as text and cast
//!   to the column's type, so integer, uuid and text keys all keep their
//!   index; a value that cannot be of the column's type (`abc` or an
//!   out-of-range number for an integer) is dropped before the query, so a
//!   hostile value finds nothing instead of aborting the transaction (or,
//!   on MySQL, being read as a number prefix: `'1 OR 1=1'` would be 1).
//!   Columns of other types (timestamps, enums …) are compared as text for
//!   values of the person. Values containing NUL are never bound.
//! * **MySQL compares the person's values exactly**, byte for byte in
//!   utf8mb4, not by the column's collation (a `_ci` collation would find
//!   `ALICE` for `alice`, an accent-insensitive one `Muller` for `Müller`).
//!   A utf8mb4 column is first narrowed by its own collation, which keeps
//!   its index; a column of another character set is converted (no index,
//!   but a value it cannot hold finds nothing instead of an "illegal mix of
//!   collations" error). Keys between tables compare by the column's
//!   collation, as its foreign keys do.
//! * **Emails** match case-insensitively: `lower(col) = lower($n)`. That
//!   uses an index only on `lower(col)` (on MySQL, a `_ci` utf8mb4 column's
//!   own index narrows first); [`SqlConnector::scans`] names every lookup
//!   without one and the `CREATE INDEX` to add. SQLite's
//!   `lower` folds ASCII only.
//! * **Rows read generically as JSON**: `row_to_json` on PostgreSQL,
//!   `json_object` over the catalog columns on SQLite and `JSON_ARRAY` over
//!   them on MySQL (named here from the catalog), where BLOB/binary values
//!   are exported as upper-case hex text (and bound back through `UNHEX`).
//! * **Rows are located** by their primary key, else by `ctid`
//!   (PostgreSQL) or `rowid` (SQLite). MySQL has no row id: a table without
//!   a primary key is located by the value of every column, so rows equal
//!   in every column are found, counted and changed together (each counts).
//!
//! Erasure (one transaction per system) first sets aside rows shared with
//! other people: a row of a dataset with `referenced_by` links that a row
//! which is not the person's references through one of them is kept
//! untouched and counted as `retained` and `shared` (the map's
//! `shared_rows: keep`). It then applies each dataset's strategy,
//! then keeps every row that must stay: a row to be deleted that is still
//! referenced — through a real foreign key of the catalog (whatever its ON
//! DELETE action, so CASCADE never removes rows that stay) or a map
//! `references:` — by a row that stays (retained, anonymized with the
//! reference kept, another person's, or in an unmapped table) is anonymized
//! as a placeholder instead and counted as `retained` with the ground
//! `referenced by <table>`. Anonymizing UPDATEs run first, then DELETEs,
//! children before parents, and within a self-referencing table the
//! deepest rows first (InnoDB checks foreign keys row by row, even within
//! one statement). Counts come from the rows each statement changed (no
//! `RETURNING`, which MariaDB lacks on UPDATE). See [`SqlConnector`] for the
//! remaining rules.
//!
//! The code is laid out by what it does: `pool` connects and runs
//! statements on the engine, `catalog` reads the schema, `dialect` writes
//! each engine's SQL, `find` finds the person's rows, `anonymize` and
//! `erase` decide and apply erasure, `rectify` sets changed fields,
//! `lookups` names the lookups no index serves and the index to add.

mod anonymize;
mod catalog;
mod dialect;
mod erase;
mod fault;
mod find;
mod lookups;
mod pool;
mod recent;
mod rectify;

pub use lookups::{Finding, Inspection, Scan};

use std::collections::HashSet;
use std::fmt;
use std::future::Future;

use custos_map::{DataMap, Dataset, System, SystemId};
use zeroize::Zeroizing;

use crate::{Connector, ConnectorError, DatasetOutcome, Export, FieldChange, Person};
use catalog::{Ds, Fk, Table};
use fault::{sql_error, Place};
use find::json_text;
use pool::{describe, Engine, Pool};

/// Bound values per statement (`IN` lists are cut into chunks this long).
const CHUNK: usize = 500;

/// A PostgreSQL, MySQL/MariaDB or SQLite application database of the map.
///
/// Invariants beyond the module's: the catalog read at connect is trusted
/// for the life of the value (reconnect after a migration); primary keys
/// are never changed; values of the person never appear in errors or logs.
///
/// Anonymization per personal field (`user.*` category), by its own
/// strategy or else the dataset's: `set_null` and `delete` → NULL,
/// `placeholder` → the text (NULL if the column's type or length cannot
/// hold it; a `Mismatch` before anything changes on a column a unique index
/// of its own covers, where two rows could not share it),
/// `keyed_hash` → HMAC-SHA256 of the value under the hash key (`anon:` + 16
/// hex on text columns, a negative number on integer columns — on unsigned
/// ones a number in the upper half of the range —, a version-8 UUID on uuid
/// columns, NULL on binary ones), `retain` → unchanged. A NOT NULL column
/// that would become NULL gets `erased:` + 16 hex of a keyed hash of the
/// row's table, key and column (unique per row, derived from no personal
/// value; in a shorter column only hex digits, cut to its length, and a
/// `Mismatch` before anything changes if fewer than 8 fit) if it is text;
/// a keyed number or uuid of the same (as `keyed_hash` shapes them) if it
/// is an integer or uuid; stays unchanged if it is a reference (so a NOT
/// NULL foreign key keeps its parent as a placeholder too); and is a
/// `Mismatch` before anything changes for any other type (a date, a
/// boolean …: give the field a `placeholder` of its type). Non-personal
/// fields and columns the map does not name are never changed.
///
/// A field's own erasure overrides its dataset's: a `retain` on the
/// dataset or on a personal field keeps the row, and the fields that say
/// otherwise are anonymized in it (named in `anonymized_fields`).
///
/// Erasure is idempotent: rows whose changes are already in place count as
/// nothing; a placeholder that still matches is counted as `retained` again
/// (never as deleted or anonymized). A `keyed_hash` field that is also how
/// the row is found would be hashed again — the map should not do that.
pub struct SqlConnector {
    system: System,
    engine: Engine,
    pool: Pool,
    key: Zeroizing<[u8; 32]>,
    tables: Vec<Table>,
    datasets: Vec<Ds>,
    order: Vec<usize>,
    fks: Vec<Fk>,
    /// MySQL: the connection's database (`DATABASE()`), where unqualified
    /// table names of the map are.
    my_schema: Option<String>,
    /// A database shared by tenants: the request's tenant's value in each
    /// dataset's `tenant_column` (see [`SqlConnector::for_tenant`]).
    tenant_value: Option<String>,
    /// The variable and database name errors may name.
    place: Place,
    /// The person's rows as last read, for the accesses that follow.
    recent: recent::Recent,
}

impl fmt::Debug for SqlConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the hash key.
        f.debug_struct("SqlConnector")
            .field("system", &self.system.id)
            .field("engine", &self.engine)
            .field("tables", &self.tables.len())
            .field("references", &self.fks.len())
            .finish_non_exhaustive()
    }
}

impl SqlConnector {
    /// Connects to the system's database and reads its catalog.
    ///
    /// PostgreSQL and MySQL read the URL from `connection.url_env`
    /// (`mysql://` or `mariadb://`, naming the database); SQLite a file
    /// path from `connection.path_env` or a URL from `connection.url_env`.
    /// Other kinds answer [`ConnectorError::Unsupported`]. `hash_key` keys
    /// `keyed_hash` anonymization (keep it stable: hashes join across runs).
    pub fn connect(
        map: &DataMap,
        system: &System,
        env: &dyn Fn(&str) -> Option<String>,
        hash_key: [u8; 32],
    ) -> impl Future<Output = Result<SqlConnector, ConnectorError>> + Send {
        // Everything from `env` and `map` is read before the first await:
        // the future holds neither, so it is `Send` whatever the closure.
        let target = Self::target(system, env);
        let systems: HashSet<SystemId> = map.systems.iter().map(|s| s.id.clone()).collect();
        let system = system.clone();
        let key = Zeroizing::new(hash_key);
        async move {
            let (target, place) = target?;
            let (engine, pool) = target.open(&system.id, &place).await?;
            let mut c = SqlConnector {
                system,
                engine,
                pool,
                key,
                tables: Vec::new(),
                datasets: Vec::new(),
                order: Vec::new(),
                fks: Vec::new(),
                my_schema: None,
                tenant_value: None,
                place,
                recent: recent::Recent::default(),
            };
            let mut tx = c.begin(false).await?;
            let loaded = c.load(&mut tx, &systems).await;
            let _ = tx.rollback().await;
            loaded?;
            Ok(c)
        }
    }

    /// Confines every request to the rows of one tenant of a database
    /// shared by tenants: each query of a dataset with a `tenant_column` is
    /// filtered by `value`, and a dataset without one is reached only
    /// through the links of filtered rows, never looked up by identity.
    /// Rows that keep a parent (references of rows that stay) are still
    /// looked for in every tenant, so another tenant's row is never left
    /// dangling.
    pub fn for_tenant(mut self, value: &str) -> Self {
        self.tenant_value = Some(value.to_owned());
        self
    }

    fn mismatch(&self, message: String) -> ConnectorError {
        ConnectorError::Mismatch {
            system: self.system.id.clone(),
            message,
        }
    }

    /// A database error, sorted into transient or permanent (`fault`).
    fn db_err(&self, what: &str, e: &sqlx::Error) -> ConnectorError {
        sql_error(&self.system.id, &self.place, what, e)
    }

    /// An error of a statement that changes rows. A data exception or a
    /// broken constraint (SQLSTATE classes 22 and 23: a value too long, a
    /// NULL in a NOT NULL column, a duplicate in a UNIQUE one; SQLite's
    /// constraint codes) will fail the same way on every retry: it is a
    /// `Mismatch` naming the table and the columns written, never a value.
    /// Anything else may pass later and stays `Unavailable`.
    fn write_err(&self, what: &str, columns: &[&str], e: &sqlx::Error) -> ConnectorError {
        let permanent = match e {
            sqlx::Error::Database(d) => {
                let code = d.code().unwrap_or_default();
                match self.engine {
                    // Extended result codes: the primary code is the low byte.
                    Engine::Lite => code.parse::<u32>().is_ok_and(|c| c & 0xff == 19),
                    _ => code.starts_with("22") || code.starts_with("23"),
                }
            }
            _ => false,
        };
        if !permanent {
            return self.db_err(what, e);
        }
        let cols = if columns.is_empty() {
            String::new()
        } else {
            format!(" (columns {})", columns.join(", "))
        };
        self.mismatch(format!(
            "{what}{cols}: refused by the database, {}; retrying will not help: \
             fix the column or the map's erasure for it",
            describe(e)
        ))
    }

    /// Who `person` is, as the connector's keyed hash of their identities:
    /// compared, never read back.
    fn fingerprint(&self, person: &Person) -> Result<[u8; 32], ConnectorError> {
        let mut parts: Vec<Vec<u8>> = Vec::new();
        // Sorted: the same identities in another order are the same person.
        for (kind, values) in person.to_sealable() {
            parts.push(kind.into_bytes());
            let values: std::collections::BTreeSet<String> = values.into_iter().collect();
            for v in values {
                parts.push(v.into_bytes());
            }
            parts.push(Vec::new());
        }
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        self.mac(&refs)
    }

    fn map_dataset(&self, ds: &Ds) -> Option<&Dataset> {
        self.system.datasets.get(ds.map)
    }
}

impl Connector for SqlConnector {
    async fn identify(&self, person: &Person) -> Result<Person, ConnectorError> {
        let mut tx = self.begin(false).await?;
        let found = self.resolve(&mut tx, person, false).await;
        let _ = tx.rollback().await;
        let found = found?;
        let mut out = Person::new();
        for (ds, rows) in self.datasets.iter().zip(&found) {
            for row in rows {
                for (name, kind, ns) in &ds.idents {
                    if let Some(v) = json_text(row.data.get(name)) {
                        out.add_in(*kind, ns.as_deref(), &v);
                    }
                }
            }
        }
        // The accesses that may follow with these same identities read
        // these rows instead of the tables again (see `recent`).
        self.recent.keep(self.fingerprint(person)?, found);
        Ok(out)
    }

    async fn plan_erasure(&self, person: &Person) -> Result<Vec<DatasetOutcome>, ConnectorError> {
        self.erase_or_plan(person, false).await
    }

    async fn access(&self, person: &Person) -> Result<Vec<Export>, ConnectorError> {
        let me = self.fingerprint(person)?;
        let found = match self.recent.get(me) {
            Some(rows) => rows,
            None => {
                let mut tx = self.begin(false).await?;
                let found = self.resolve(&mut tx, person, false).await;
                let _ = tx.rollback().await;
                let found = found?;
                // The archive reads right after the step that counts.
                self.recent.keep(me, found.clone());
                found
            }
        };
        Ok(self
            .system
            .datasets
            .iter()
            .zip(found)
            .map(|(d, rows)| Export {
                dataset: d.id.clone(),
                records: rows.into_iter().map(|r| r.data).collect(),
                files: Vec::new(),
            })
            .collect())
    }

    async fn erase(&self, person: &Person) -> Result<Vec<DatasetOutcome>, ConnectorError> {
        // Before and after: an access reading while the erasure runs may
        // have kept rows that are gone once it commits.
        self.recent.clear();
        let done = self.erase_or_plan(person, true).await;
        self.recent.clear();
        done
    }

    /// A change without a value (JSON `null`) clears the field, as
    /// [`FieldChange`] documents; the text `"null"` is written as text.
    /// Primary keys are never rectified; a value the column's type cannot
    /// hold is a `Mismatch` naming the dataset and field.
    async fn rectify(
        &self,
        person: &Person,
        changes: &[FieldChange],
    ) -> Result<Vec<DatasetOutcome>, ConnectorError> {
        self.recent.clear();
        let done = self.rectify_rows(person, changes).await;
        self.recent.clear();
        done
    }
}
