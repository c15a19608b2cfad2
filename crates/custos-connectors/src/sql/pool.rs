//! Connecting and transactions: the one place the three engines are told
//! apart for execution. [`Tx`] runs a statement or query on whichever
//! engine with one body per operation (`on_tx!`).
//!
//! Invariants: every value is bound as a parameter (text), never spliced;
//! every column is read back as text or NULL; read transactions are
//! read-only snapshots, and on SQLite a write transaction takes the write
//! lock at once; errors of the database are reduced to kinds, codes and constraint names
//! ([`describe`]), since their messages may quote values.

use std::str::FromStr;
use std::time::Duration;

use custos_map::{System, SystemId, SystemKind};
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::{MySql, Postgres, Row as _, Sqlite, Transaction};
use zeroize::Zeroizing;

use super::fault::{sql_error, Place};
use super::SqlConnector;
use crate::{connection_value, ConnectorError};

/// Connections per pool: requests are sequential per system.
const MAX_CONNECTIONS: u32 = 4;

/// The engine of the system, for the SQL text that differs between them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Engine {
    Pg,
    My,
    Lite,
}

/// The connection pool of the system's database.
pub(super) enum Pool {
    Pg(PgPool),
    My(MySqlPool),
    Lite(SqlitePool),
}

/// Where to connect, read from the environment before any await.
pub(super) enum Target {
    Pg(Box<PgConnectOptions>),
    My(Box<MySqlConnectOptions>),
    Lite(Box<SqliteConnectOptions>),
}

/// One row of a query whose every column is text (or NULL).
pub(super) type Cells = Vec<Option<String>>;

/// A transaction on one of the three engines. Statements are written once
/// for all of them (`on_tx!`): every value is bound as text, every column
/// read back as text.
pub(super) enum Tx {
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

impl Target {
    /// Opens the pool. Errors say what to fix, naming the variable of
    /// `place` and never the URL: it may hold a password.
    pub(super) async fn open(
        self,
        system: &SystemId,
        place: &Place,
    ) -> Result<(Engine, Pool), ConnectorError> {
        let failed = |what: &str, e: &sqlx::Error| sql_error(system, place, what, e);
        Ok(match self {
            Target::Pg(opts) => {
                let pool = PgPoolOptions::new()
                    .max_connections(MAX_CONNECTIONS)
                    .acquire_timeout(Duration::from_secs(15))
                    .connect_with(*opts)
                    .await
                    .map_err(|e| failed("connecting", &e))?;
                (Engine::Pg, Pool::Pg(pool))
            }
            Target::My(opts) => {
                let pool = MySqlPoolOptions::new()
                    .max_connections(MAX_CONNECTIONS)
                    .acquire_timeout(Duration::from_secs(15))
                    .connect_with(*opts)
                    .await
                    .map_err(|e| failed("connecting", &e))?;
                (Engine::My, Pool::My(pool))
            }
            Target::Lite(opts) => {
                let pool = SqlitePoolOptions::new()
                    .max_connections(MAX_CONNECTIONS)
                    .acquire_timeout(Duration::from_secs(15))
                    .connect_with(*opts)
                    .await
                    .map_err(|e| failed("opening", &e))?;
                (Engine::Lite, Pool::Lite(pool))
            }
        })
    }
}

impl Tx {
    /// Runs a query whose every column is text (or NULL).
    pub(super) async fn rows(
        &mut self,
        sql: &str,
        binds: &[String],
    ) -> Result<Vec<Cells>, sqlx::Error> {
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
    pub(super) async fn exec(&mut self, sql: &str, binds: &[String]) -> Result<u64, sqlx::Error> {
        on_tx!(self, tx => {
            let mut q = sqlx::query(sql);
            for b in binds {
                q = q.bind(b.as_str());
            }
            Ok(q.execute(&mut **tx).await?.rows_affected())
        })
    }

    pub(super) async fn commit(self) -> Result<(), sqlx::Error> {
        on_tx!(self, tx => tx.commit().await)
    }

    pub(super) async fn rollback(self) -> Result<(), sqlx::Error> {
        on_tx!(self, tx => tx.rollback().await)
    }
}

/// A database error in words that never quote a value.
pub(super) fn describe(e: &sqlx::Error) -> String {
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
    /// Where the system's database is, from its `connection` settings,
    /// with the variable and database name its messages may name. A value
    /// that does not parse is a `Config` error naming the variable, never
    /// quoting the value.
    pub(super) fn target(
        system: &System,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(Target, Place), ConnectorError> {
        let setting =
            if system.kind == SystemKind::Sqlite && system.connection.contains_key("path_env") {
                "path_env"
            } else {
                "url_env"
            };
        let var = system
            .connection
            .get(setting)
            .cloned()
            .unwrap_or_else(|| setting.to_owned());
        let invalid = |what: &str| ConnectorError::Config {
            system: system.id.clone(),
            message: format!("setting {var} is not a valid {what}"),
        };
        match system.kind {
            SystemKind::Postgres => {
                let url = Zeroizing::new(connection_value(system, setting, env)?);
                let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
                if !matches!(scheme.as_deref(), Some("postgres" | "postgresql")) {
                    return Err(invalid("URL (postgres://…)"));
                }
                let opts = PgConnectOptions::from_str(&url).map_err(|_| invalid("URL"))?;
                let database = opts.get_database().map(str::to_owned);
                Ok((Target::Pg(Box::new(opts)), Place { var, database }))
            }
            SystemKind::Mysql => {
                let url = Zeroizing::new(connection_value(system, setting, env)?);
                // The parser takes any scheme; another database's URL is a
                // mistake of the map, not a server to try.
                let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
                if !matches!(scheme.as_deref(), Some("mysql" | "mariadb")) {
                    return Err(invalid("URL (mysql:// or mariadb://)"));
                }
                let opts = MySqlConnectOptions::from_str(&url).map_err(|_| invalid("URL"))?;
                let database = opts.get_database().map(str::to_owned);
                Ok((Target::My(Box::new(opts)), Place { var, database }))
            }
            SystemKind::Sqlite => {
                let opts = if setting == "path_env" {
                    SqliteConnectOptions::new().filename(connection_value(system, setting, env)?)
                } else {
                    let url = Zeroizing::new(connection_value(system, setting, env)?);
                    SqliteConnectOptions::from_str(&url).map_err(|_| invalid("SQLite URL"))?
                };
                // Never create an application database; always enforce its
                // foreign keys (they are off by default in SQLite).
                let target =
                    Target::Lite(Box::new(opts.create_if_missing(false).foreign_keys(true)));
                Ok((
                    target,
                    Place {
                        var,
                        database: None,
                    },
                ))
            }
            other => Err(ConnectorError::Unsupported {
                system: system.id.clone(),
                kind: other.key(),
            }),
        }
    }

    /// A read-only snapshot, or (`write`) a transaction for erasure or
    /// rectification.
    pub(super) async fn begin(&self, write: bool) -> Result<Tx, ConnectorError> {
        let tx = match &self.pool {
            Pool::Pg(p) if write => p.begin().await.map(Tx::Pg),
            // Reads see one snapshot and cannot write by accident.
            Pool::Pg(p) => p
                .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .await
                .map(Tx::Pg),
            Pool::My(p) if write => p.begin().await.map(Tx::My),
            // A read-only snapshot, as on PostgreSQL (InnoDB's default
            // isolation is REPEATABLE READ).
            Pool::My(p) => p
                .begin_with("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
                .await
                .map(Tx::My),
            // Take the write lock at once: a deferred transaction that
            // upgrades later can fail with SQLITE_BUSY half-way.
            Pool::Lite(p) if write => p.begin_with("BEGIN IMMEDIATE").await.map(Tx::Lite),
            Pool::Lite(p) => p.begin().await.map(Tx::Lite),
        };
        tx.map_err(|e| self.db_err("beginning a transaction", &e))
    }
}
