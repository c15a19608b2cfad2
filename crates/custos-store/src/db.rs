//! Connecting to SQLite or PostgreSQL through sqlx's `Any` driver, with the
//! settings each needs, and running the embedded migrations.
//!
//! Every query in this crate is written once, with `$n` placeholders that
//! both engines accept, and types both understand (TEXT, BIGINT, BLOB/BYTEA).

use std::borrow::Cow;
use std::str::FromStr;
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
    /// The engine of an open connection.
    pub(crate) fn of_connection(c: &sqlx::AnyConnection) -> Self {
        if c.backend_name().eq_ignore_ascii_case("sqlite") {
            Self::Sqlite
        } else {
            Self::Postgres
        }
    }

    /// The placeholder of the `n`th argument (from 1) of a statement
    /// whose arguments are bound in order: `?` for SQLite (see
    /// [`Engine::values`]), `$n` for PostgreSQL.
    pub(crate) fn mark(self, n: usize) -> Cow<'static, str> {
        match self {
            Self::Sqlite => Cow::Borrowed("?"),
            Self::Postgres => Cow::Owned(format!("${n}")),
        }
    }

    /// `(…), (…)` placeholders for a multi-row `VALUES` of `rows` × `cols`
    /// parameters bound in order. SQLite gets anonymous `?`: sqlx resolves
    /// each numbered `$n` by name, which SQLite looks up by a linear scan,
    /// so numbered placeholders make a wide insert quadratic.
    pub(crate) fn values(self, rows: usize, cols: usize) -> String {
        let mut s = String::with_capacity(rows * cols * 5);
        for r in 0..rows {
            if r > 0 {
                s.push_str(", ");
            }
            s.push('(');
            for c in 0..cols {
                if c > 0 {
                    s.push_str(", ");
                }
                match self {
                    Self::Sqlite => s.push('?'),
                    Self::Postgres => {
                        s.push('$');
                        s.push_str(&(r * cols + c + 1).to_string());
                    }
                }
            }
            s.push(')');
        }
        s
    }

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
    if engine == Engine::Sqlite {
        create_private_sqlite_file(url)?;
    }
    let opts: AnyConnectOptions = url
        .parse()
        .map_err(|_| StoreError::Config("database URL could not be parsed".into()))?;
    // The single writer connection gets the larger cache.
    let cache_pragma = if max == 1 {
        "PRAGMA cache_size = -65536"
    } else {
        "PRAGMA cache_size = -16384"
    };
    let pool = AnyPoolOptions::new()
        .max_connections(max)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(30))
        // A pooled SQLite connection is a thread in this process: it cannot
        // have been cut off, and the ping sqlx sends on every acquire would
        // be one more round trip to that thread per query. A PostgreSQL
        // connection can be, so it is still tested.
        .test_before_acquire(engine == Engine::Postgres)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if engine == Engine::Sqlite {
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA synchronous = FULL").await?;
                    conn.execute("PRAGMA busy_timeout = 10000").await?;
                    // SQLite's default page cache is 2 MiB: index pages of a
                    // few hundred thousand rows fall out of it and are
                    // re-read through the kernel on every insert.
                    conn.execute(cache_pragma).await?;
                    // A multi-row INSERT inside a transaction keeps a
                    // statement journal; in a temp file every page it
                    // touches costs a write syscall.
                    conn.execute("PRAGMA temp_store = MEMORY").await?;
                }
                Ok(())
            })
        })
        .connect_with(opts)
        .await
        .map_err(StoreError::from_connect)?;
    Ok((pool, engine))
}

/// Creates an SQLite URL's database file, when it is to be created, empty
/// and readable by its owner only (0600): it holds sealed data, wrapped
/// keys and the audit chain, and SQLite gives its `-wal` and `-shm` files
/// the mode of the database file. An existing file is left as it is (its
/// mode is the operator's); in-memory databases have no file.
fn create_private_sqlite_file(url: &str) -> Result<(), StoreError> {
    let Ok(opts) = sqlx::sqlite::SqliteConnectOptions::from_str(url) else {
        return Ok(());
    };
    let path = opts.get_filename();
    let creates = url.contains("mode=rwc");
    if !creates || path.as_os_str().is_empty() || path.exists() || url.contains("mode=memory") {
        return Ok(());
    }
    if path.to_str().is_some_and(|p| p.starts_with(':')) {
        return Ok(());
    }
    let mut file = std::fs::OpenOptions::new();
    file.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        file.mode(0o600);
    }
    match file.open(path) {
        Ok(_) => Ok(()),
        // Another process created it first: it is theirs to have made.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Config(format!(
            "the SQLite database file could not be created: {}",
            e.kind()
        ))),
    }
}

/// The file of an SQLite URL's database, once it exists on disk (so not
/// for in-memory databases).
pub(crate) fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let opts = sqlx::sqlite::SqliteConnectOptions::from_str(url).ok()?;
    let path = opts.get_filename();
    path.is_file().then(|| path.to_path_buf())
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
    migrate_to(pool, engine, role, None).await
}

/// [`migrate`] up to `last` (a version) when given: tests build an older
/// schema with it.
async fn migrate_to(
    pool: &AnyPool,
    engine: Engine,
    role: Role,
    last: Option<i64>,
) -> Result<(), StoreError> {
    let mut list = match (engine, role) {
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
            migration(
                3,
                "requests",
                include_str!("../migrations/sqlite/data/0003_requests.sql"),
            ),
            migration(
                4,
                "request_steps",
                include_str!("../migrations/sqlite/data/0004_request_steps.sql"),
            ),
            migration(
                5,
                "processor_answers",
                include_str!("../migrations/sqlite/data/0005_processor_answers.sql"),
            ),
            migration(
                6,
                "suppression_index",
                include_str!("../migrations/sqlite/data/0006_suppression_index.sql"),
            ),
            migration(
                7,
                "consent_clustered",
                include_str!("../migrations/sqlite/data/0007_consent_clustered.sql"),
            ),
            migration(
                8,
                "audit_key_ids",
                include_str!("../migrations/sqlite/data/0008_audit_key_ids.sql"),
            ),
            migration(
                9,
                "sealed_texts",
                include_str!("../migrations/sqlite/data/0009_sealed_texts.sql"),
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
            migration(
                3,
                "requests",
                include_str!("../migrations/postgres/data/0003_requests.sql"),
            ),
            migration(
                4,
                "request_steps",
                include_str!("../migrations/postgres/data/0004_request_steps.sql"),
            ),
            migration(
                5,
                "processor_answers",
                include_str!("../migrations/postgres/data/0005_processor_answers.sql"),
            ),
            migration(
                6,
                "suppression_index",
                include_str!("../migrations/postgres/data/0006_suppression_index.sql"),
            ),
            migration(
                7,
                "audit_key_ids",
                include_str!("../migrations/postgres/data/0007_audit_key_ids.sql"),
            ),
            migration(
                8,
                "sealed_texts",
                include_str!("../migrations/postgres/data/0008_sealed_texts.sql"),
            ),
        ],
        (Engine::Sqlite, Role::Keys) => vec![
            migration(
                1,
                "keys",
                include_str!("../migrations/sqlite/keys/0001_keys.sql"),
            ),
            migration(
                2,
                "erasures",
                include_str!("../migrations/sqlite/keys/0002_erasures.sql"),
            ),
            migration(
                3,
                "audit_signing_keys",
                include_str!("../migrations/sqlite/keys/0003_audit_signing_keys.sql"),
            ),
        ],
        (Engine::Postgres, Role::Keys) => vec![
            migration(
                1,
                "keys",
                include_str!("../migrations/postgres/keys/0001_keys.sql"),
            ),
            migration(
                2,
                "erasures",
                include_str!("../migrations/postgres/keys/0002_erasures.sql"),
            ),
            migration(
                3,
                "audit_signing_keys",
                include_str!("../migrations/postgres/keys/0003_audit_signing_keys.sql"),
            ),
        ],
    };
    if let Some(last) = last {
        list.retain(|m| m.version <= last);
    }
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

#[cfg(test)]
mod tests {
    use super::{connect, migrate, migrate_to, sqlite_file, Engine, Role};
    use sqlx::Row;

    /// Only a database that is a file on disk gets the writer's own
    /// connection.
    #[test]
    fn sqlite_file_is_only_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.db");
        let url = format!("sqlite://{}?mode=rwc", path.display());
        assert_eq!(sqlite_file(&url), None, "not created yet");
        std::fs::write(&path, b"").unwrap();
        assert_eq!(sqlite_file(&url), Some(path));
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("sqlite://?mode=memory"), None);
        assert_eq!(sqlite_file("sqlite:"), None);
    }

    /// A store custos creates is its owner's alone: the database file and
    /// the `-wal` and `-shm` files SQLite makes next to it are 0600.
    #[cfg(unix)]
    #[tokio::test]
    async fn a_new_sqlite_store_and_its_wal_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.db");
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let (pool, engine) = connect(&url, 2).await.unwrap();
        migrate(&pool, engine, Role::Data).await.unwrap();
        sqlx::query("CREATE TABLE t (x INTEGER)")
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&pool)
            .await
            .unwrap();
        for suffix in ["", "-wal", "-shm"] {
            let f = dir.path().join(format!("d.db{suffix}"));
            let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}: {mode:o}", f.display());
        }
        pool.close().await;
    }

    /// 0007 rebuilds the consent states clustered by their key: rows of a
    /// store at 0006 are kept, and events stay append-only.
    #[tokio::test]
    async fn consent_tables_keep_their_rows_when_clustered() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("d.db").display());
        let (pool, engine) = connect(&url, 1).await.unwrap();
        migrate_to(&pool, engine, Role::Data, Some(6))
            .await
            .unwrap();
        for i in 0..3 {
            sqlx::query(
                "INSERT INTO consent_events (id, tenant, subject, purpose, version, action, at_us, \
                 recorded_us, channel, affirmative, gpc, actor) \
                 VALUES ($1, 't', $2, 'news', 1, 'granted', $3, $3, 'api', 1, 0, 'k')",
            )
            .bind(format!("ev{i}"))
            .bind(format!("s{i}"))
            .bind(i64::from(i))
            .execute(&pool)
            .await
            .unwrap();
            sqlx::query(
                "INSERT INTO consent_state (tenant, subject, purpose, state, version, at_us, rank, event_id) \
                 VALUES ('t', $1, 'news', 'granted', 1, $2, 1, $3)",
            )
            .bind(format!("s{i}"))
            .bind(i64::from(i))
            .bind(format!("ev{i}"))
            .execute(&pool)
            .await
            .unwrap();
        }
        migrate(&pool, engine, Role::Data).await.unwrap();
        let count = |table: &'static str| {
            let pool = pool.clone();
            async move {
                sqlx::query(&format!("SELECT COUNT(*) FROM {table}"))
                    .fetch_one(&pool)
                    .await
                    .unwrap()
                    .try_get::<i64, _>(0)
                    .unwrap()
            }
        };
        assert_eq!(
            (count("consent_events").await, count("consent_state").await),
            (3, 3)
        );
        let sql: String = sqlx::query("SELECT sql FROM sqlite_master WHERE name = 'consent_state'")
            .fetch_one(&pool)
            .await
            .unwrap()
            .try_get(0)
            .unwrap();
        assert!(sql.contains("WITHOUT ROWID"), "{sql}");
        let update = sqlx::query("UPDATE consent_events SET action = 'withdrawn' WHERE id = 'ev1'")
            .execute(&pool)
            .await;
        assert!(update.is_err(), "events must stay append-only");
        let delete = sqlx::query("DELETE FROM consent_events WHERE id = 'ev1'")
            .execute(&pool)
            .await;
        assert!(delete.is_err(), "events must stay append-only");
        let state: String = sqlx::query("SELECT state FROM consent_state WHERE subject = 's2'")
            .fetch_one(&pool)
            .await
            .unwrap()
            .try_get(0)
            .unwrap();
        assert_eq!(state, "granted");
        pool.close().await;
    }

    #[test]
    fn values_placeholders_per_engine() {
        assert_eq!(Engine::Sqlite.values(2, 2), "(?, ?), (?, ?)");
        assert_eq!(Engine::Postgres.values(2, 2), "($1, $2), ($3, $4)");
    }
}
