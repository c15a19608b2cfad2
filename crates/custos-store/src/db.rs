//! Connecting to SQLite or PostgreSQL through sqlx's `Any` driver, with the
//! settings each needs, and running the embedded migrations.
//!
//! Every query in this crate is written once, with `$n` placeholders that
//! both engines accept, and types both understand (TEXT, BIGINT, BLOB/BYTEA).

use std::borrow::Cow;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, Executor};

use crate::StoreError;

/// Which engine a URL points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// Embedded SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

impl Engine {
    /// Detects the engine from a URL's scheme.
    pub fn of(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Self::Postgres)
        } else {
            Err(StoreError::Config(
                "database URL must start with sqlite: or postgres:".into(),
            ))
        }
    }
}

/// Which database of the two.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Data,
    Keys,
}

fn install_drivers() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(sqlx::any::install_default_drivers);
}

/// Opens a pool. For SQLite each connection gets WAL, durable commits
/// (`synchronous=FULL`) and a busy timeout.
pub(crate) async fn connect(url: &str, max: u32) -> Result<(AnyPool, Engine), StoreError> {
    install_drivers();
    let engine = Engine::of(url)?;
    let opts: AnyConnectOptions = url
        .parse()
        .map_err(|_| StoreError::Config("database URL could not be parsed".into()))?;
    let pool = AnyPoolOptions::new()
        .max_connections(max)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(30))
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if engine == Engine::Sqlite {
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA synchronous = FULL").await?;
                    conn.execute("PRAGMA busy_timeout = 10000").await?;
                }
                Ok(())
            })
        })
        .connect_with(opts)
        .await
        .map_err(StoreError::from_connect)?;
    Ok((pool, engine))
}

fn migration(version: i64, desc: &'static str, sql: &'static str) -> Migration {
    Migration::new(
        version,
        Cow::Borrowed(desc),
        MigrationType::Simple,
        Cow::Borrowed(sql),
        false,
    )
}

/// Brings a database to the current schema.
pub(crate) async fn migrate(pool: &AnyPool, engine: Engine, role: Role) -> Result<(), StoreError> {
    let list = match (engine, role) {
        (Engine::Sqlite, Role::Data) => vec![
            migration(
                1,
                "vault",
                include_str!("../migrations/sqlite/data/0001_vault.sql"),
            ),
            migration(
                2,
                "consent",
                include_str!("../migrations/sqlite/data/0002_consent.sql"),
            ),
        ],
        (Engine::Postgres, Role::Data) => vec![
            migration(
                1,
                "vault",
                include_str!("../migrations/postgres/data/0001_vault.sql"),
            ),
            migration(
                2,
                "consent",
                include_str!("../migrations/postgres/data/0002_consent.sql"),
            ),
        ],
        (Engine::Sqlite, Role::Keys) => vec![migration(
            1,
            "keys",
            include_str!("../migrations/sqlite/keys/0001_keys.sql"),
        )],
        (Engine::Postgres, Role::Keys) => vec![migration(
            1,
            "keys",
            include_str!("../migrations/postgres/keys/0001_keys.sql"),
        )],
    };
    let mut migrator = Migrator {
        migrations: Cow::Owned(list),
        ..Migrator::DEFAULT
    };
    migrator.set_locking(engine == Engine::Postgres);
    migrator
        .run(pool)
        .await
        .map_err(|e| StoreError::Migrate(e.to_string()))
}
