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
//!   `identity:` fields holds one of the person's values of that kind, or
//!   through the dataset's `subject` link (`via` a reference to rows already
//!   found, `referenced_by` a field of rows already found). Datasets are
//!   resolved in dependency order; a cycle of links is a `Mismatch`. Links
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
//!   own index narrows first); create one where lookups are slow. SQLite's
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
//! Erasure (one transaction per system) applies each dataset's strategy,
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

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use custos_map::{
    Anonymize, DataCategory, DataMap, Dataset, ErasureStrategy, FieldRef, IdentityKind, Location,
    SubjectLink, System, SystemId, SystemKind,
};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::{MySql, Postgres, Row as _, Sqlite, Transaction};
use zeroize::Zeroizing;

use crate::{
    connection_value, Connector, ConnectorError, DatasetOutcome, Export, FieldChange, Person,
    Record,
};

/// Bound values per statement (`IN` lists are cut into chunks this long).
const CHUNK: usize = 500;
/// Connections per pool: requests are sequential per system.
const MAX_CONNECTIONS: u32 = 4;
/// Columns per SQLite `json_object` call (SQLite caps function arguments).
const JSON_CHUNK: usize = 40;
/// The alias of the table in every SELECT (unlikely to be a column name,
/// which would shadow the whole-row reference of `row_to_json`).
const ALIAS: &str = "custos_r";

type HmacSha256 = Hmac<Sha256>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Engine {
    Pg,
    My,
    Lite,
}

enum Pool {
    Pg(PgPool),
    My(MySqlPool),
    Lite(SqlitePool),
}

/// One row of a query whose every column is text (or NULL).
type Cells = Vec<Option<String>>;

/// A transaction on one of the three engines. Statements are written once
/// for all of them (`on_tx!`): every value is bound as text, every column
/// read back as text.
enum Tx {
    Pg(Transaction<'static, Postgres>),
    My(Transaction<'static, MySql>),
    Lite(Transaction<'static, Sqlite>),
}

/// Runs `$body` with `$tx` bound to the engine's own transaction: one body,
/// expanded once per engine, so the drivers' types stay concrete (sqlx's
/// `Any` driver would lose MySQL's binary comparisons and decoding).
macro_rules! on_tx {
    ($on:expr, $tx:ident => $body:expr) => {
        match $on {
            Tx::Pg($tx) => $body,
            Tx::My($tx) => $body,
            Tx::Lite($tx) => $body,
        }
    };
}

impl Tx {
    /// Runs a query whose every column is text (or NULL).
    async fn rows(&mut self, sql: &str, binds: &[String]) -> Result<Vec<Cells>, sqlx::Error> {
        // Unchecked on MySQL: it flags text of a binary collation (and some
        // catalog columns) as BINARY, which the checked decode refuses; the
        // bytes are still UTF-8 text, checked on decode.
        let unchecked = matches!(self, Tx::My(_));
        on_tx!(self, tx => {
            let mut q = sqlx::query(sql);
            for b in binds {
                q = q.bind(b.as_str());
            }
            let rows = q.fetch_all(&mut **tx).await?;
            rows.iter()
                .map(|r| {
                    (0..r.len())
                        .map(|i| {
                            if unchecked {
                                r.try_get_unchecked::<Option<String>, _>(i)
                            } else {
                                r.try_get::<Option<String>, _>(i)
                            }
                        })
                        .collect()
                })
                .collect()
        })
    }

    /// Runs a statement; returns the rows it changed.
    async fn exec(&mut self, sql: &str, binds: &[String]) -> Result<u64, sqlx::Error> {
        on_tx!(self, tx => {
            let mut q = sqlx::query(sql);
            for b in binds {
                q = q.bind(b.as_str());
            }
            Ok(q.execute(&mut **tx).await?.rows_affected())
        })
    }

    async fn commit(self) -> Result<(), sqlx::Error> {
        on_tx!(self, tx => tx.commit().await)
    }

    async fn rollback(self) -> Result<(), sqlx::Error> {
        on_tx!(self, tx => tx.rollback().await)
    }
}

/// What a column's values look like, to drop values that cannot be of its
/// type before they reach the database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
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

#[derive(Clone, Debug)]
struct Column {
    name: String,
    /// Quoted identifier (or `ctid`/`rowid`).
    q: String,
    /// Type to cast bound text to (a PostgreSQL type, or MySQL's
    /// `SIGNED`/`UNSIGNED`/`DECIMAL(p,s)`); `None` for text columns, on
    /// SQLite (column affinity converts) and where MySQL converts itself.
    cast: Option<String>,
    family: Family,
    not_null: bool,
    /// MySQL: the column's type (`DATA_TYPE`) and collation (text only),
    /// which decide how it is exported and compared. Empty elsewhere.
    my_type: String,
    my_collation: Option<String>,
}

#[derive(Debug)]
struct Table {
    /// The name for messages: as the map writes it, or `schema.table`.
    name: String,
    /// Quoted, possibly schema-qualified.
    q: String,
    columns: Vec<Column>,
    /// Primary key columns from the catalog.
    pk: Vec<String>,
    /// What identifies a row inside one transaction: the primary key, else
    /// `ctid` (PostgreSQL) or `rowid` (SQLite), else (MySQL) every column.
    loc: Vec<Column>,
    /// Whether `loc` is every column's value (MySQL without a primary key):
    /// rows equal in every column share a locator.
    by_value: bool,
}

impl Table {
    fn col(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// A reference between tables: a foreign key of the catalog or a map
/// `references:` (only single-column ones).
#[derive(Debug)]
struct Fk {
    name: String,
    child: usize,
    child_col: String,
    parent: usize,
    parent_col: String,
    on_delete: String,
}

/// "The rows of this dataset whose `col` is among the values of `from_col`
/// in the rows found in dataset `from`."
#[derive(Debug)]
struct Link {
    col: String,
    from: usize,
    from_col: String,
}

#[derive(Debug)]
struct Ds {
    /// Index in `system.datasets`; also the index of its table.
    map: usize,
    idents: Vec<(String, IdentityKind)>,
    link: Option<Link>,
}

/// One row found: its JSON and its locator (text values).
#[derive(Clone, Debug)]
struct Row {
    data: Record,
    loc: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Action {
    Delete,
    Anonymize,
    Keep,
    /// Was to be deleted but is still referenced: kept as a placeholder.
    Stay(BTreeSet<String>),
}

#[derive(Clone, Debug)]
struct Planned {
    action: Action,
    /// Column → new value (`None` = NULL); only real changes.
    changes: BTreeMap<String, Option<String>>,
}

/// How values of a condition came to be, which decides how they are
/// compared.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Values of the person: dropped if they cannot be of the column type;
    /// compared as text where the type is unknown.
    Person { fold_case: bool },
    /// Values read from the database (keys): cast to the column type.
    Keys,
}

/// A PostgreSQL, MySQL/MariaDB or SQLite application database of the map.
///
/// Invariants beyond the module's: the catalog read at connect is trusted
/// for the life of the value (reconnect after a migration); primary keys
/// are never changed; values of the person never appear in errors or logs.
///
/// Anonymization per personal field (`user.*` category), by its own
/// strategy or else the dataset's: `set_null` and `delete` → NULL,
/// `placeholder` → the text (NULL if the column's type cannot hold it),
/// `keyed_hash` → HMAC-SHA256 of the value under the hash key (`anon:` + 16
/// hex on text columns, a negative number on integer columns — on unsigned
/// ones a number in the upper half of the range —, a version-8 UUID on uuid
/// columns, NULL on binary ones), `retain` → unchanged. A NOT NULL column
/// that would become NULL gets `erased:` + 16 hex of a keyed hash of the
/// row's table, key and column (unique per row, derived from no personal
/// value) if it is text, and stays unchanged otherwise (so a NOT NULL
/// foreign key keeps its parent as a placeholder too). Non-personal fields
/// and columns the map does not name are never changed.
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

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// A MySQL identifier: backticks, doubled inside (whatever `sql_mode`).
fn quote_my(ident: &str) -> String {
    format!("`{}`", ident.replace('`', "``"))
}

fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A JSON value as the text to bind for it: numbers in decimal, strings as
/// they are, NULL as nothing.
fn json_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        other => Some(other.to_string()),
    }
}

fn is_personal(f: &custos_map::Field) -> bool {
    f.category.iter().any(DataCategory::is_personal)
}

/// Whether a text can be a value of a column of this family (PostgreSQL's
/// input rules, conservatively).
fn fits(family: Family, v: &str) -> bool {
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

fn copy_prefix<const N: usize>(mac: &[u8; 32]) -> [u8; N] {
    let mut out = [0u8; N];
    for (d, s) in out.iter_mut().zip(mac.iter()) {
        *d = *s;
    }
    out
}

fn describe(e: &sqlx::Error) -> String {
    // Only kinds, codes and constraint names: messages and details of the
    // database may quote values.
    match e {
        sqlx::Error::Database(d) => {
            let mut s = format!("database error {}", d.code().unwrap_or_default());
            // MySQL's SQLSTATEs are coarse (23000 for every constraint);
            // its error number says which.
            if let Some(my) = d.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
                s.push_str(&format!("/{}", my.number()));
            }
            if let Some(c) = d.constraint() {
                s.push_str(&format!(" (constraint {c})"));
            }
            s
        }
        sqlx::Error::PoolTimedOut => "connection pool timed out".to_owned(),
        sqlx::Error::PoolClosed => "connection pool closed".to_owned(),
        sqlx::Error::Io(io) => format!("i/o error ({:?})", io.kind()),
        sqlx::Error::Tls(_) => "TLS error".to_owned(),
        sqlx::Error::Protocol(_) => "protocol error".to_owned(),
        sqlx::Error::Configuration(_) => "configuration error".to_owned(),
        sqlx::Error::ColumnDecode { index, .. } => format!("cannot decode column {index}"),
        _ => "database error".to_owned(),
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
            let unavailable = |what: &str, e: &sqlx::Error| ConnectorError::Unavailable {
                system: system.id.clone(),
                message: format!("{what}: {}", describe(e)),
            };
            let (engine, pool) = match target? {
                Target::Pg(url) => {
                    let pool = PgPoolOptions::new()
                        .max_connections(MAX_CONNECTIONS)
                        .acquire_timeout(Duration::from_secs(15))
                        .connect(&url)
                        .await
                        .map_err(|e| unavailable("connecting", &e))?;
                    (Engine::Pg, Pool::Pg(pool))
                }
                Target::My(opts) => {
                    let pool = MySqlPoolOptions::new()
                        .max_connections(MAX_CONNECTIONS)
                        .acquire_timeout(Duration::from_secs(15))
                        .connect_with(*opts)
                        .await
                        .map_err(|e| unavailable("connecting", &e))?;
                    (Engine::My, Pool::My(pool))
                }
                Target::Lite(opts) => {
                    let pool = SqlitePoolOptions::new()
                        .max_connections(MAX_CONNECTIONS)
                        .acquire_timeout(Duration::from_secs(15))
                        .connect_with(*opts)
                        .await
                        .map_err(|e| unavailable("opening", &e))?;
                    (Engine::Lite, Pool::Lite(pool))
                }
            };
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
            };
            let mut tx = c.begin(false).await?;
            let loaded = c.load(&mut tx, &systems).await;
            let _ = tx.rollback().await;
            loaded?;
            Ok(c)
        }
    }

    /// Where the system's database is, from its `connection` settings.
    fn target(
        system: &System,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Target, ConnectorError> {
        match system.kind {
            SystemKind::Postgres => Ok(Target::Pg(Zeroizing::new(connection_value(
                system, "url_env", env,
            )?))),
            SystemKind::Mysql => {
                let url = Zeroizing::new(connection_value(system, "url_env", env)?);
                let bad = || ConnectorError::Config {
                    system: system.id.clone(),
                    message: "connection.url_env does not hold a mysql:// or mariadb:// URL"
                        .to_owned(),
                };
                // The parser takes any scheme; another database's URL is a
                // mistake of the map, not a server to try.
                let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
                if !matches!(scheme.as_deref(), Some("mysql" | "mariadb")) {
                    return Err(bad());
                }
                let opts = MySqlConnectOptions::from_str(&url).map_err(|_| bad())?;
                Ok(Target::My(Box::new(opts)))
            }
            SystemKind::Sqlite => {
                let opts = if system.connection.contains_key("path_env") {
                    SqliteConnectOptions::new().filename(connection_value(system, "path_env", env)?)
                } else {
                    let url = Zeroizing::new(connection_value(system, "url_env", env)?);
                    SqliteConnectOptions::from_str(&url).map_err(|_| ConnectorError::Config {
                        system: system.id.clone(),
                        message: "connection.url_env does not hold an SQLite URL".to_owned(),
                    })?
                };
                // Never create an application database; always enforce its
                // foreign keys (they are off by default in SQLite).
                Ok(Target::Lite(Box::new(
                    opts.create_if_missing(false).foreign_keys(true),
                )))
            }
            other => Err(ConnectorError::Unsupported {
                system: system.id.clone(),
                kind: other.key(),
            }),
        }
    }

    fn mismatch(&self, message: String) -> ConnectorError {
        ConnectorError::Mismatch {
            system: self.system.id.clone(),
            message,
        }
    }

    fn db_err(&self, what: &str, e: &sqlx::Error) -> ConnectorError {
        ConnectorError::Unavailable {
            system: self.system.id.clone(),
            message: format!("{what}: {}", describe(e)),
        }
    }

    async fn begin(&self, write: bool) -> Result<Tx, ConnectorError> {
        let tx = match &self.pool {
            Pool::Pg(p) if write => p.begin().await.map(Tx::Pg),
            // Reads see one snapshot and cannot write by accident.
            Pool::Pg(p) => p
                .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .await
                .map(Tx::Pg),
            // Take the write lock at once: a deferred transaction that
            // upgrades later can fail with SQLITE_BUSY half-way.
            Pool::My(p) if write => p.begin().await.map(Tx::My),
            // A read-only snapshot, as on PostgreSQL (InnoDB's default
            // isolation is REPEATABLE READ).
            Pool::My(p) => p
                .begin_with("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
                .await
                .map(Tx::My),
            Pool::Lite(p) if write => p.begin_with("BEGIN IMMEDIATE").await.map(Tx::Lite),
            Pool::Lite(p) => p.begin().await.map(Tx::Lite),
        };
        tx.map_err(|e| self.db_err("beginning a transaction", &e))
    }

    fn map_dataset(&self, ds: &Ds) -> Option<&Dataset> {
        self.system.datasets.get(ds.map)
    }

    // ----- catalog -------------------------------------------------------

    async fn load(
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
        for name in &names {
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
                    return Err(self.mismatch(format!(
                        "table {name} does not exist (the connection URL names no database)"
                    )));
                }
                return Err(self.mismatch(format!("table {name} does not exist")));
            };
            table.name = name.clone();
            self.tables.push(table);
            oids.push(oid);
        }
        // Every field the map names must be a column.
        for (d, t) in self.system.datasets.iter().zip(&self.tables) {
            for f in &d.fields {
                if t.col(&f.name).is_none() {
                    return Err(self.mismatch(format!(
                        "table {} has no column {} (dataset {}, field {})",
                        t.name, f.name, d.id, f.name
                    )));
                }
            }
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

    fn table_of_dataset(&self, id: &custos_map::DatasetId) -> Option<usize> {
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
            let idents: Vec<(String, IdentityKind)> = d
                .fields
                .iter()
                .filter_map(|f| f.identity.map(|k| (f.name.clone(), k)))
                .collect();
            let link = match &d.subject {
                None => None,
                Some(SubjectLink::Identity(f)) => {
                    if !idents.iter().any(|(n, _)| n == f) {
                        return Err(self.mismatch(format!(
                            "dataset {}: subject field {f} declares no `identity:` kind",
                            d.id
                        )));
                    }
                    None
                }
                Some(SubjectLink::Via(f)) => {
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
                Some(SubjectLink::ReferencedBy(r)) => {
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
                        Some(Link {
                            col,
                            from,
                            from_col: r.field.clone(),
                        })
                    } else {
                        None
                    }
                }
                Some(_) => None,
            };
            out.push(Ds {
                map: i,
                idents,
                link,
            });
        }
        // Dependency order (Kahn); a cycle cannot be resolved in one pass.
        let n = out.len();
        let mut done = vec![false; n];
        let mut order = Vec::with_capacity(n);
        while order.len() < n {
            let next = (0..n).find(|&i| {
                !done.get(i).copied().unwrap_or(true)
                    && out.get(i).is_some_and(|d| {
                        d.link
                            .as_ref()
                            .is_none_or(|l| done.get(l.from).copied().unwrap_or(false))
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

    async fn pg_table(
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
            "SELECT CAST(CAST(c.oid AS int8) AS text), CAST(n.nspname AS text), CAST(c.relname AS text) \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {cond}"
        );
        let found = self.catalog_rows(tx, &sql, &[bind]).await?;
        let Some([Some(oid), Some(nsp), Some(rel)]) = found.first().map(Vec::as_slice) else {
            return Ok((None, String::new()));
        };
        let (oid, nsp, rel) = (oid.clone(), nsp.clone(), rel.clone());
        let cols = self
            .catalog_rows(
                tx,
                "SELECT CAST(a.attname AS text), format_type(a.atttypid, NULL), \
                 CAST(COALESCE(b.typname, t.typname) AS text), CAST(t.typcategory AS text), \
                 CAST(a.attnotnull AS text) \
                 FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
                 LEFT JOIN pg_type b ON b.oid = t.typbasetype \
                 WHERE a.attrelid = CAST(CAST($1 AS int8) AS oid) AND a.attnum > 0 AND NOT a.attisdropped \
                 ORDER BY a.attnum",
                std::slice::from_ref(&oid),
            )
            .await?;
        let mut columns = Vec::new();
        for r in cols {
            let [Some(name), Some(ty), Some(typname), Some(cat), Some(nn)] = r.as_slice() else {
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
        let loc = if pk.is_empty() {
            vec![Column {
                name: "ctid".to_owned(),
                q: "ctid".to_owned(),
                cast: Some("tid".to_owned()),
                family: Family::Other,
                not_null: true,
                my_type: String::new(),
                my_collation: None,
            }]
        } else {
            pk.iter()
                .filter_map(|p| columns.iter().find(|c| &c.name == p).cloned())
                .collect()
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
            }),
            oid,
        ))
    }

    async fn pg_fks(&mut self, tx: &mut Tx, oids: &[String]) -> Result<(), ConnectorError> {
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

    async fn lite_table(&self, tx: &mut Tx, name: &str) -> Result<Option<Table>, ConnectorError> {
        let found = self
            .catalog_rows(
                tx,
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name = $1 COLLATE NOCASE",
                &[name.to_owned()],
            )
            .await?;
        let Some(Some(real)) = found.into_iter().next().and_then(|r| r.into_iter().next()) else {
            return Ok(None);
        };
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
                my_type: String::new(),
                my_collation: None,
            });
        }
        pk.sort();
        let pk: Vec<String> = pk.into_iter().map(|(_, n)| n).collect();
        let loc = if pk.is_empty() {
            vec![Column {
                name: "rowid".to_owned(),
                q: "rowid".to_owned(),
                cast: None,
                family: Family::Int(64),
                not_null: true,
                my_type: String::new(),
                my_collation: None,
            }]
        } else {
            pk.iter()
                .filter_map(|p| columns.iter().find(|c| &c.name == p).cloned())
                .collect()
        };
        Ok(Some(Table {
            name: real.clone(),
            q: quote(&real),
            columns,
            pk,
            loc,
            by_value: false,
        }))
    }

    async fn lite_fks(&mut self, tx: &mut Tx) -> Result<(), ConnectorError> {
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

    /// The real `(database, table)` of a map's `table` or `database.table`
    /// name: the exact spelling if it exists, else the one table matching
    /// regardless of case (`information_schema` compares case-insensitively).
    async fn my_find(
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

    async fn my_table(
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
                 CAST(NUMERIC_PRECISION AS CHAR), CAST(NUMERIC_SCALE AS CHAR) \
                 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
                 ORDER BY ORDINAL_POSITION",
                &binds,
            )
            .await?;
        let mut columns = Vec::new();
        for r in cols {
            let [Some(s), Some(t), Some(name), Some(dt), Some(ct), Some(nullable), collation, prec, scale] =
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
        // No row id in MySQL: without a primary key, every column's value.
        let by_value = pk.is_empty();
        let loc = if by_value {
            columns.clone()
        } else {
            pk.iter()
                .filter_map(|p| columns.iter().find(|c| &c.name == p).cloned())
                .collect()
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
        }))
    }

    /// Foreign keys referencing the mapped tables (`keys[i]` is table `i`),
    /// with the tables of their children.
    async fn my_fks(
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

    // ----- queries -------------------------------------------------------

    /// The `n`th (from 1) parameter: `$n`, or `?` on MySQL, whose
    /// parameters are bound in the order they appear.
    fn ph(&self, n: usize) -> String {
        match self.engine {
            Engine::My => "?".to_owned(),
            Engine::Pg | Engine::Lite => format!("${n}"),
        }
    }

    fn value_expr(&self, col: &Column, param: &str) -> String {
        if self.engine == Engine::My && col.family == Family::Bytes {
            return format!("UNHEX({param})");
        }
        match &col.cast {
            Some(ty) => format!("CAST({param} AS {ty})"),
            None => param.to_owned(),
        }
    }

    fn admissible(&self, col: &Column, v: &str, mode: Mode) -> bool {
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

    /// `col IN (...)` for one chunk, and the values to bind for it.
    fn in_cond(&self, col: &Column, values: &[String], mode: Mode) -> (String, Vec<String>) {
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
    fn loc_cond(&self, t: &Table, locs: &[&Vec<String>], offset: usize) -> (String, Vec<String>) {
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

    fn select_sql(&self, t: &Table, cond: &str, lock: bool) -> String {
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

    fn parse_row(&self, t: &Table, cells: Cells) -> Result<Row, ConnectorError> {
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

    /// Rows of `t` whose `col` is among `values`, chunked.
    #[allow(clippy::too_many_arguments)]
    async fn fetch_in(
        &self,
        tx: &mut Tx,
        t: &Table,
        col: &Column,
        values: &[String],
        mode: Mode,
        lock: bool,
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
            let (cond, binds) = self.in_cond(col, chunk, mode);
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

    /// The person's rows of every dataset (index = dataset index).
    async fn resolve(
        &self,
        tx: &mut Tx,
        person: &Person,
        lock: bool,
    ) -> Result<Vec<Vec<Row>>, ConnectorError> {
        let mut found: Vec<Vec<Row>> = self.datasets.iter().map(|_| Vec::new()).collect();
        for &di in &self.order {
            let (Some(ds), Some(t)) = (self.datasets.get(di), self.tables.get(di)) else {
                continue;
            };
            let mut rows = Vec::new();
            let mut seen = HashSet::new();
            for (name, kind) in &ds.idents {
                let Some(col) = t.col(name) else { continue };
                let values: Vec<String> = person
                    .values(*kind)
                    .iter()
                    .map(|v| v.expose().clone())
                    .collect();
                let mode = Mode::Person {
                    fold_case: *kind == IdentityKind::Email,
                };
                self.fetch_in(tx, t, col, &values, mode, lock, &mut rows, &mut seen)
                    .await?;
            }
            if let Some(link) = &ds.link {
                let values = found
                    .get(link.from)
                    .map(|rs| key_values(rs, &link.from_col))
                    .unwrap_or_default();
                if let Some(col) = t.col(&link.col) {
                    self.fetch_in(tx, t, col, &values, Mode::Keys, lock, &mut rows, &mut seen)
                        .await?;
                }
            }
            if let Some(slot) = found.get_mut(di) {
                *slot = rows;
            }
        }
        Ok(found)
    }

    // ----- erasure -------------------------------------------------------

    fn mac(&self, parts: &[&[u8]]) -> Result<[u8; 32], ConnectorError> {
        let mut mac = HmacSha256::new_from_slice(self.key.as_slice()).map_err(|_| {
            ConnectorError::Config {
                system: self.system.id.clone(),
                message: "hash key rejected".to_owned(),
            }
        })?;
        for p in parts {
            mac.update(&(p.len() as u64).to_be_bytes());
            mac.update(p);
        }
        Ok(mac.finalize().into_bytes().into())
    }

    fn keyed_hash(&self, col: &Column, v: &str) -> Result<String, ConnectorError> {
        let h = self.mac(&[b"keyed_hash", v.as_bytes()])?;
        Ok(match col.family {
            Family::Int(bits) => {
                // Negative, so it never collides with a real (positive) id.
                let n =
                    u64::from_be_bytes(copy_prefix::<8>(&h)) % (1u64 << (bits.clamp(8, 64) - 2));
                (-(i64::try_from(n).unwrap_or(0)) - 1).to_string()
            }
            Family::UInt(bits) => {
                // The upper half of the range, far from counters that
                // start at 1.
                let half = 1u64 << (bits.clamp(8, 64) - 1);
                (half + u64::from_be_bytes(copy_prefix::<8>(&h)) % half).to_string()
            }
            Family::Uuid => {
                let mut b = copy_prefix::<16>(&h);
                if let Some(x) = b.get_mut(6) {
                    *x = (*x & 0x0f) | 0x80;
                }
                if let Some(x) = b.get_mut(8) {
                    *x = (*x & 0x3f) | 0x80;
                }
                let s = hex::encode(b);
                format!(
                    "{}-{}-{}-{}-{}",
                    s.get(0..8).unwrap_or_default(),
                    s.get(8..12).unwrap_or_default(),
                    s.get(12..16).unwrap_or_default(),
                    s.get(16..20).unwrap_or_default(),
                    s.get(20..32).unwrap_or_default()
                )
            }
            _ => format!("anon:{}", hex::encode(copy_prefix::<8>(&h))),
        })
    }

    fn row_token(&self, t: &Table, loc: &[String], col: &str) -> Result<String, ConnectorError> {
        let mut parts: Vec<&[u8]> = vec![b"row", t.name.as_bytes(), col.as_bytes()];
        parts.extend(loc.iter().map(|l| l.as_bytes()));
        let h = self.mac(&parts)?;
        Ok(format!("erased:{}", hex::encode(copy_prefix::<8>(&h))))
    }

    /// The changes that anonymize a row in place (see [`SqlConnector`]).
    fn anon_changes(
        &self,
        di: usize,
        row: &Row,
    ) -> Result<BTreeMap<String, Option<String>>, ConnectorError> {
        let mut changes = BTreeMap::new();
        let (Some(ds), Some(t)) = (self.datasets.get(di), self.tables.get(di)) else {
            return Ok(changes);
        };
        let Some(d) = self.map_dataset(ds) else {
            return Ok(changes);
        };
        for f in &d.fields {
            if !is_personal(f) || f.primary_key || t.pk.contains(&f.name) {
                continue;
            }
            let Some(col) = t.col(&f.name) else { continue };
            let current = json_text(row.data.get(&f.name));
            let target = match d.effective_erasure(f) {
                ErasureStrategy::Retain(_) => continue,
                ErasureStrategy::Shred => return Err(self.shred(d)),
                ErasureStrategy::Anonymize(Anonymize::Placeholder(p)) => Some(p),
                ErasureStrategy::Anonymize(Anonymize::KeyedHash) => match &current {
                    Some(v) => Some(self.keyed_hash(col, v)?),
                    None => None,
                },
                _ => None,
            };
            let target = target.filter(|v| fits(col.family, v));
            let target = match target {
                None if col.not_null => match col.family {
                    Family::Text => Some(self.row_token(t, &row.loc, &col.name)?),
                    _ => continue,
                },
                other => other,
            };
            if target != current {
                changes.insert(col.name.clone(), target);
            }
        }
        Ok(changes)
    }

    fn shred(&self, d: &Dataset) -> ConnectorError {
        self.mismatch(format!(
            "dataset {}: erasure `shred` exists only in the vault",
            d.id
        ))
    }

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
            let strategy = d.erasure.clone().unwrap_or(ErasureStrategy::Delete);
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
                    ErasureStrategy::Retain(_) => Planned {
                        action: Action::Keep,
                        changes: BTreeMap::new(),
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

    async fn erase_or_plan(
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
            for x in p {
                match &x.action {
                    Action::Keep => {
                        o.retained += 1;
                        if let Some(ErasureStrategy::Retain(r)) = self
                            .datasets
                            .get(di)
                            .and_then(|ds| self.map_dataset(ds))
                            .and_then(|d| d.erasure.as_ref())
                        {
                            grounds.insert(r.ground.clone());
                        }
                    }
                    Action::Stay(g) => {
                        o.retained += 1;
                        grounds.extend(g.iter().cloned());
                    }
                    Action::Delete if !apply => o.deleted += 1,
                    Action::Anonymize if !apply && !x.changes.is_empty() => o.anonymized += 1,
                    _ => {}
                }
            }
            if !grounds.is_empty() {
                o.retained_ground = Some(grounds.into_iter().collect::<Vec<_>>().join("; "));
            }
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
                    Action::Stay(_) => false,
                    _ => continue,
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
                let n = tx
                    .exec(&sql, &binds)
                    .await
                    .map_err(|e| self.db_err(&format!("anonymizing {}", t.name), &e))?;
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
                    let n = tx
                        .exec(&sql, &binds)
                        .await
                        .map_err(|e| self.db_err(&format!("deleting from {}", t.name), &e))?;
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

/// Where to connect, read from the environment before any await.
enum Target {
    Pg(Zeroizing<String>),
    My(Box<MySqlConnectOptions>),
    Lite(Box<SqliteConnectOptions>),
}

#[derive(Clone, Copy)]
enum PgWhere<'a> {
    Name(&'a str),
    Oid(&'a str),
}

/// Whether MySQL compares a column with values of the person as text:
/// text and types without a checked form, and any non-binary column when
/// case is folded.
fn my_as_text(col: &Column, fold_case: bool) -> bool {
    matches!(col.family, Family::Text | Family::Other) || (fold_case && col.family != Family::Bytes)
}

fn unquote(q: &str) -> String {
    q.trim_matches('"').replace("\"\"", "\"")
}

/// The distinct non-null values of a column in rows, as bind texts.
fn key_values(rows: &[Row], col: &str) -> Vec<String> {
    rows.iter()
        .filter_map(|r| json_text(r.data.get(col)))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
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
                for (name, kind) in &ds.idents {
                    if let Some(v) = json_text(row.data.get(name)) {
                        out.add(*kind, &v);
                    }
                }
            }
        }
        Ok(out)
    }

    async fn plan_erasure(&self, person: &Person) -> Result<Vec<DatasetOutcome>, ConnectorError> {
        self.erase_or_plan(person, false).await
    }

    async fn access(&self, person: &Person) -> Result<Vec<Export>, ConnectorError> {
        let mut tx = self.begin(false).await?;
        let found = self.resolve(&mut tx, person, false).await;
        let _ = tx.rollback().await;
        Ok(self
            .system
            .datasets
            .iter()
            .zip(found?)
            .map(|(d, rows)| Export {
                dataset: d.id.clone(),
                records: rows.into_iter().map(|r| r.data).collect(),
                files: Vec::new(),
            })
            .collect())
    }

    async fn erase(&self, person: &Person) -> Result<Vec<DatasetOutcome>, ConnectorError> {
        self.erase_or_plan(person, true).await
    }

    /// `null` (the text) clears the field, as [`FieldChange`] documents.
    /// Primary keys are never rectified; a value the column's type cannot
    /// hold is a `Mismatch` naming the dataset and field.
    async fn rectify(
        &self,
        person: &Person,
        changes: &[FieldChange],
    ) -> Result<Vec<DatasetOutcome>, ConnectorError> {
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
                let value = change.value.expose();
                let value = (value != "null").then(|| value.clone());
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
                    o.rectified += tx
                        .exec(&sql, &binds)
                        .await
                        .map_err(|e| self.db_err(&format!("rectifying {}", t.name), &e))?;
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
